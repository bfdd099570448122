"""Skill validation: every problem class, each reported at its exact file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.skill_format import Problem, SkillError, SkillInternalError
from registry import skill_validate
from registry.skill_validate import load_skill, validate_paths, validate_text

SKILLS = Path(__file__).resolve().parents[1] / "skills"
DEMO_TOOLS = {"mail.list_messages", "mail.read_message", "mail.send_reply", "billing.lookup_customer",
              "billing.issue_credit"}


def demo_tools(name: str) -> str | None:
    return None if name in DEMO_TOOLS else "unknown"


def problems(text: str, **kwargs: object) -> list[str]:
    return [str(p) for p in validate_text(text, "s.yaml", **kwargs).problems]  # type: ignore[arg-type]


GOOD = """\
name: reply-to-email
version: 1.0.0
description: Reply to an email.
inputs:
  type: object
  properties:
    message_id: {type: string}
    body: {type: string}
  required: [message_id, body]
steps:
  - id: fetch
    tool: mail.read_message
    with: {id: "{{ inputs.message_id }}"}
  - id: send
    tool: mail.send_reply
    if: "{{ steps.fetch.output.status == 'open' }}"
    with: {thread_id: "{{ steps.fetch.output.thread_id }}", body: "{{ inputs.body }}"}
outputs:
  reply_id: "{{ steps.send.output.id }}"
"""


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def test_a_good_skill_has_no_problems() -> None:
    result = validate_text(GOOD, "s.yaml", known_tools=demo_tools)
    assert result.problems == []
    assert result.ok
    assert result.skill is not None
    assert [s.id for s in result.skill.steps] == ["fetch", "send"]
    assert result.skill.steps[1].if_ == "{{ steps.fetch.output.status == 'open' }}"


@pytest.mark.parametrize("path", sorted(SKILLS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_skills_validate_against_the_demo_tools(path: Path) -> None:
    assert validate_paths([path], known_tools=demo_tools) == []


def test_the_shipped_skills_are_reply_to_email_and_issue_credit() -> None:
    assert sorted(p.stem for p in SKILLS.glob("*.yaml")) == ["issue-credit", "reply-to-email"]


def test_a_problem_prints_as_file_line_column_message() -> None:
    assert str(Problem("a.yaml", 3, 7, "bad")) == "a.yaml:3:7: bad"
    assert str(Problem("a.yaml", 0, 0, "file does not exist")) == "a.yaml: file does not exist"


# -- shape and names


def test_yaml_syntax_errors_have_their_position() -> None:
    assert problems("name: [unclosed\nversion: 1.0.0\n") == [
        "s.yaml:2:8: invalid yaml: expected ',' or ']', but got ':'"]


def test_duplicate_keys_are_refused_at_the_second_key() -> None:
    assert problems(replace("version: 1.0.0\n", "version: 1.0.0\nversion: 1.0.1\n")) == [
        "s.yaml:3:1: duplicate key `version` (first on line 2); each key may appear once"]


@pytest.mark.parametrize(("name", "why"), [
    ("Reply", "uppercase"), ("reply--email", "double hyphen"), ("-reply", "leading hyphen"),
    ("reply-", "trailing hyphen"), ("reply_email", "underscore"), ("a" * 65, "too long"),
])
def test_names_follow_the_agent_skills_rules(name: str, why: str) -> None:
    assert problems(replace("name: reply-to-email", f"name: {name}")) == [
        f"s.yaml:1:7: `{name}` is not a valid skill name; use 1 to 64 lowercase letters, digits and single "
        "hyphens, not starting or ending with a hyphen"]


def test_a_64_character_name_is_fine() -> None:
    assert problems(replace("name: reply-to-email", "name: " + "a" * 64)) == []


@pytest.mark.parametrize(("version", "message"), [
    ("1.0", "`1.0` is not a semantic version (`MAJOR.MINOR.PATCH`, e.g. `1.0.0` or `1.1.0-rc.1`)"),
    ("v1.0.0", "`v1.0.0` is not a semantic version (`MAJOR.MINOR.PATCH`, e.g. `1.0.0` or `1.1.0-rc.1`)"),
    ("01.0.0", "`01.0.0` is not a semantic version (`MAJOR.MINOR.PATCH`, e.g. `1.0.0` or `1.1.0-rc.1`)"),
    ("1.0.0+build.5", "`1.0.0+build.5`: build metadata (`+...`) is not allowed; two versions differing only "
                      "in it would rank equal"),
])
def test_versions_are_semver(version: str, message: str) -> None:
    assert problems(replace("version: 1.0.0", f"version: '{version}'")) == [f"s.yaml:2:10: {message}"]


def test_a_prerelease_version_is_fine() -> None:
    assert problems(replace("version: 1.0.0", "version: 1.1.0-rc.1")) == []


def test_an_unquoted_number_version_says_to_quote_it() -> None:
    assert problems(replace("version: 1.0.0", "version: 1.0")) == [
        's.yaml:2:10: expected a string, got a number; quote it, e.g. `version: "1.0.0"`']


def test_description_is_at_most_1024_characters() -> None:
    assert problems(replace("description: Reply to an email.", "description: " + "x" * 1025)) == [
        "s.yaml:3:14: is 1025 characters; at most 1024 are allowed"]
    assert problems(replace("description: Reply to an email.", "description: " + "x" * 1024)) == []


def test_unknown_and_missing_fields() -> None:
    text = replace("description: Reply to an email.\n", "descripton: Reply to an email.\n")
    assert problems(text) == [
        "s.yaml:1:1: missing required field `description` in a skill",
        "s.yaml:3:1: unknown field `descripton` in a skill; did you mean `description`?",
    ]


def test_reserved_metadata_keys_are_refused() -> None:
    text = replace("description: Reply to an email.\n",
                   "description: Reply to an email.\nmetadata:\n  interlock-version: '2'\n  team: 7\n")
    assert problems(text) == [
        "s.yaml:5:3: metadata keys starting with `interlock-` are reserved for interlock",
        "s.yaml:6:9: expected a string (quote it), got an integer",
    ]


# -- the input schema


def test_the_input_schema_must_be_an_object_schema() -> None:
    assert problems(replace("  type: object\n", "  type: array\n")) == [
        "s.yaml:5:9: the input schema must have `type: object` (the skill's arguments)"]
    assert problems(GOOD.replace("inputs:\n  type: object\n", "inputs:\n", 1).replace(
        "  properties:", "  x: 1\n  properties:", 1)) == [
        "s.yaml:5:3: the input schema must have `type: object` (the skill's arguments)"]


def test_input_schema_structure_is_checked() -> None:
    text = replace("    message_id: {type: string}", "    message_id: {type: strin, minLength: -1}")
    text = text.replace("required: [message_id, body]", "required: [message_id, body, cc]")
    assert problems(text) == [
        "s.yaml:7:24: `strin` is not a JSON Schema type; use one of `string`, `number`, `integer`, `boolean`, "
        "`object`, `array`, `null`",
        "s.yaml:7:42: invalid JSON Schema: -1 is less than the minimum of 0",
        "s.yaml:9:32: required input `cc` is not in `properties`",
    ]


def test_remote_refs_are_refused() -> None:
    text = replace("    body: {type: string}", "    body: {$ref: 'https://example.com/s.json'}")
    assert problems(text) == [
        "s.yaml:8:18: `$ref` `https://example.com/s.json` points outside the schema; only local references "
        "(`#/$defs/...`) are allowed"]


def test_the_meta_schema_check_can_be_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(skill_validate, "_jsonschema", None)
    assert problems(replace("    message_id: {type: string}", "    message_id: {type: string, minLength: -1}")) == []


# -- steps


def test_duplicate_step_ids() -> None:
    assert problems(replace("  - id: send", "  - id: fetch").replace("steps.send.", "steps.fetch.")) == [
        "s.yaml:14:9: duplicate step id `fetch` (first on line 11)"]


def test_step_ids_are_identifiers() -> None:
    text = replace("  - id: send", "  - id: send-it").replace("steps.send.", "steps.fetch.")
    assert problems(text) == [
        "s.yaml:14:9: `send-it` is not a valid step id; use lowercase letters, digits and `_`, starting with a "
        "letter or `_` (templates read `steps.<id>.output`)"]


def test_unknown_or_unblessed_tools_carry_the_reason() -> None:
    def known(name: str) -> str | None:
        return {"mail.send_reply": "quarantined", "mail.read_message": None}.get(name, "unknown")

    assert problems(GOOD, known_tools=known) == ["s.yaml:15:11: tool `mail.send_reply` is quarantined"]
    assert problems(replace("tool: mail.read_message", "tool: read_message")) == [
        "s.yaml:12:11: `read_message` is not a tool name; write `server.tool`, e.g. `mail.send_reply`"]


def test_without_known_tools_the_tool_check_is_skipped() -> None:
    assert problems(GOOD, known_tools=None) == []


def test_on_error_and_retry_shape() -> None:
    text = replace("    with: {id: \"{{ inputs.message_id }}\"}\n",
                   "    with: {id: \"{{ inputs.message_id }}\"}\n    on_error: later\n"
                   "    retry: {attempts: 0, backoff_ms: 200, jitter: true}\n")
    assert problems(text) == [
        "s.yaml:14:15: `later` is not one of `fail`, `continue`, `retry`",
        "s.yaml:15:5: `retry` applies only with `on_error: retry`",
        "s.yaml:15:23: must be from 1 to 10",
        "s.yaml:15:43: unknown field `jitter` in `retry`; expected one of `attempts`, `backoff_ms`",
    ]


def test_retry_with_on_error_retry_is_fine() -> None:
    text = replace("    with: {id: \"{{ inputs.message_id }}\"}\n",
                   "    with: {id: \"{{ inputs.message_id }}\"}\n    on_error: retry\n    retry: {attempts: 3}\n")
    result = validate_text(text, "s.yaml")
    assert result.problems == []
    assert result.skill is not None
    assert result.skill.step_retry(result.skill.steps[0]) is not None


def test_a_skill_needs_steps() -> None:
    text = GOOD.split("steps:")[0] + "steps: []\n"
    assert problems(text) == ["s.yaml:10:8: a skill needs at least one step"]


# -- templates


def test_unknown_inputs_are_reported_at_the_reference() -> None:
    assert problems(replace("{{ inputs.message_id }}", "{{ inputs.mesage_id }}")) == [
        "s.yaml:13:20: unknown input `mesage_id` (declared inputs: `body`, `message_id`)"]


def test_unknown_steps_are_reported_at_the_reference() -> None:
    assert problems(replace("{{ steps.send.output.id }}", "{{ steps.sent.output.id }}")) == [
        "s.yaml:19:17: unknown step `sent`"]


def test_forward_references_and_self_references_are_refused() -> None:
    text = replace('with: {id: "{{ inputs.message_id }}"}', 'with: {id: "{{ steps.send.output.id }}"}')
    text = text.replace("if: \"{{ steps.fetch.output.status == 'open' }}\"",
                        "if: \"{{ steps.send.status == 'ok' }}\"")
    assert problems(text) == [
        "s.yaml:13:20: step `fetch` refers to step `send`, which runs later; a step sees only earlier steps",
        "s.yaml:16:13: step `send` refers to itself (`steps.send`); a step sees only earlier steps",
    ]


def test_step_references_need_an_attribute() -> None:
    assert problems(replace("{{ steps.send.output.id }}", "{{ steps.send.id }}")) == [
        "s.yaml:19:17: `steps.send.id` is not a value; use `steps.send.output`, `.status` or `.error`"]
    assert problems(replace("{{ steps.send.output.id }}", "{{ steps['send'].output }}")) == []


def test_templates_that_do_not_parse() -> None:
    # Jinja knows only the line of a syntax error: the problem points at the start of the value
    assert problems(replace("{{ inputs.body }}", "{{ inputs.body")) == [
        "s.yaml:17:67: template does not parse: unexpected end of template, expected 'end of print statement'."]


def test_if_must_be_one_expression() -> None:
    text = replace("if: \"{{ steps.fetch.output.status == 'open' }}\"",
                   "if: \"status {{ steps.fetch.output.status }}\"")
    assert problems(text) == [
        "s.yaml:16:9: `if` must be a single `{{ expression }}`, e.g. "
        "`\"{{ steps.fetch.output.status == 'open' }}\"`"]


def test_disallowed_statements_unknown_names_and_internals_are_reported() -> None:
    text = GOOD.replace('outputs:\n  reply_id: "{{ steps.send.output.id }}"\n', """\
outputs:
  note: |
    Sent {{ steps.send.output.id }}
    {% set x = 1 %}
    {{ bogus }} {{ inputs.__class__ }}
""")
    assert problems(text) == [
        "s.yaml:21:5: `{% set %}` is not allowed in skill templates; use expressions, `{% if %}` and `{% for %}`",
        "s.yaml:22:8: unknown name `bogus`; templates read `inputs` and `steps.<id>.output`",
        "s.yaml:22:27: `__class__` is not available in skill templates (names starting with `_` are internal)",
    ]
    text = GOOD.replace('  reply_id: "{{ steps.send.output.id }}"\n', '  size: "{{ inputs.body | nosuchfilter }}"\n')
    assert problems(text) == ["s.yaml:19:9: template does not compile: No filter named 'nosuchfilter'."]


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (replace("name: reply-to-email", "name: Reply")
            .replace("{{ inputs.message_id }}", "{{ inputs.nope }}")
            .replace("tool: mail.send_reply", "tool: mail.nope"))
    found = validate_text(text, "s.yaml", known_tools=demo_tools).problems
    assert [(p.line, p.column) for p in found] == [(1, 7), (13, 20), (15, 11)]


# -- files, directories, errors


def test_validate_paths_reads_directories_and_reports_missing_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text(replace("name: reply-to-email", "name: B"))
    (tmp_path / "notes.txt").write_text("not a skill")
    found = validate_paths([tmp_path, tmp_path / "missing.yaml"], known_tools=None)
    assert [str(p) for p in found] == [
        f"{tmp_path / 'b.yml'}:1:7: `B` is not a valid skill name; use 1 to 64 lowercase letters, digits and "
        "single hyphens, not starting or ending with a hyphen",
        f"{tmp_path / 'missing.yaml'}: file does not exist",
    ]


def test_the_same_version_defined_differently_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(replace("Reply to an email.", "Reply to one email."))
    (tmp_path / "c.yaml").write_text(GOOD)
    assert [str(p) for p in validate_paths([tmp_path], known_tools=None)] == [
        f"{tmp_path / 'b.yaml'}:2:10: skill `reply-to-email` version `1.0.0` is also defined, differently, in "
        f"`{tmp_path / 'a.yaml'}`; a published version cannot change"]


def test_load_skill_raises_an_interlock_error_listing_every_problem() -> None:
    with pytest.raises(SkillError) as caught:
        load_skill(replace("name: reply-to-email", "name: Reply"), "s.yaml")
    assert caught.value.code == "skill_invalid"
    assert [p.line for p in caught.value.problems] == [1]


def test_a_bug_while_validating_is_an_internal_error_not_invalid_input() -> None:
    def broken(name: str) -> str | None:
        raise RuntimeError("boom")

    with pytest.raises(SkillInternalError):
        validate_text(GOOD, "s.yaml", known_tools=broken)
    assert not issubclass(SkillInternalError, SkillError)


def test_non_json_yaml_values_are_refused() -> None:
    assert problems(replace("description: Reply to an email.", "description: !!binary aGk=")) == [
        "s.yaml:3:14: expected a string, got null",
        "s.yaml:3:14: unsupported yaml tag `tag:yaml.org,2002:binary`; skills hold JSON values only",
    ]
    assert problems(replace("version: 1.0.0\n", "version: 1.0.0\n1: x\n")) == [
        "s.yaml:3:1: key `1` must be a string (quote it)"]


def test_alias_bombs_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True))
    assert "s.yaml:1:1: document expands to more than 100000 values (check its anchors)" in problems(bomb)
