"""Skill templates: typed values, the sandbox, and the size, iteration and time limits."""

from __future__ import annotations

from typing import Any

import mcp.types as types
import pytest

from executor.skill_format import Skill
from executor.skill_templates import (
    OMIT,
    Limits,
    SkillTemplateError,
    StepState,
    TemplateDeniedError,
    TemplateLimitError,
    analyze_template,
    evaluate,
    skill_outputs,
    step_arguments,
    step_condition,
    step_output,
)

INPUTS = {"message_id": "m-1", "count": 3, "tags": ["a", "b"], "body": "hello", "flag": False,
          "nested": {"items": 5, "keys": "k"}}
STEPS = {"fetch": StepState(output={"id": "m-1", "thread_id": "t-9", "status": "open", "items": [1, 2]}),
         "skipped": StepState(status="skipped"),
         "failed": StepState(status="error", error="upstream timed out")}


def ev(source: Any, **kwargs: Any) -> Any:
    return evaluate(source, INPUTS, STEPS, **kwargs)


# -- values


@pytest.mark.parametrize(("source", "value"), [
    ("{{ inputs.count }}", 3),
    ("{{ inputs.count * 2 }}", 6),
    ("{{ inputs.tags }}", ["a", "b"]),
    ("{{ inputs.nested }}", {"items": 5, "keys": "k"}),
    ("{{ inputs.flag }}", False),
    ("{{ not inputs.flag }}", True),
    ("{{ none }}", None),
    ("{{ 1.5 }}", 1.5),
    ("{{ steps.fetch.output.status == 'open' }}", True),
    ("{{ inputs.tags | map('upper') }}", ["A", "B"]),
    ("{{ (1, 2) }}", [1, 2]),
    ("{{ range(3) }}", [0, 1, 2]),
    ("{{ {'a': inputs.count} }}", {"a": 3}),
    ("{{ inputs.count }}\n", 3),  # Jinja drops one trailing newline, as in a `|` block
])
def test_a_single_expression_yields_its_native_value(source: str, value: Any) -> None:
    result = ev(source)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(("source", "text"), [
    ("id={{ inputs.count }}", "id=3"),
    (" {{ inputs.count }}", " 3"),
    ("{{ inputs.count }}{{ inputs.count }}", "33"),
    ("tags: {{ inputs.tags }}", 'tags: ["a","b"]'),
    ("{{ inputs.flag }} / {{ none }}.", "false / ."),
    ("{% for t in inputs.tags %}[{{ t }}]{% endfor %}", "[a][b]"),
    ("{% if inputs.count > 2 %}many{% else %}few{% endif %}", "many"),
    ("Re: {{ steps.fetch.output.thread_id ~ '!' }}", "Re: t-9!"),
    ("no template here", "no template here"),
])
def test_mixed_text_renders_a_string(source: str, text: str) -> None:
    assert ev(source) == text


def test_attribute_access_on_mappings_reads_the_field_first() -> None:
    assert ev("{{ steps.fetch.output.items }}") == [1, 2]
    assert ev("{{ inputs.nested.keys }}") == "k"
    assert ev("{{ inputs.nested['items'] }}") == 5


def test_step_status_and_error_are_visible() -> None:
    assert ev("{{ steps.skipped.status }}") == "skipped"
    assert ev("{{ steps.skipped.output }}") is None
    assert ev("{{ steps.failed.error }}") == "upstream timed out"


def test_structures_are_evaluated_leaf_by_leaf_and_omit_drops_entries() -> None:
    value = {"id": "{{ inputs.message_id }}", "n": "{{ inputs.count }}", "fixed": 7,
             "cc": "{{ inputs.cc | default(omit) }}", "list": ["{{ inputs.count }}", "{{ omit }}", "x"]}
    assert ev(value) == {"id": "m-1", "n": 3, "fixed": 7, "list": [3, "x"]}
    assert ev("{{ omit }}") is OMIT


def test_step_arguments_condition_and_outputs() -> None:
    skill = Skill.from_data({
        "name": "s", "version": "1.0.0", "description": "d",
        "steps": [{"id": "send", "tool": "mail.send_reply", "if": "{{ steps.fetch.output.status == 'open' }}",
                   "with": {"thread_id": "{{ steps.fetch.output.thread_id }}", "body": "{{ inputs.body }}"}},
                  {"id": "plain", "tool": "mail.list_messages"}],
        "outputs": {"thread": "{{ steps.fetch.output.thread_id }}", "count": "{{ inputs.count }}"},
    })
    send, plain = skill.steps
    assert step_arguments(send, INPUTS, STEPS) == {"thread_id": "t-9", "body": "hello"}
    assert step_condition(send, INPUTS, STEPS) is True
    assert step_condition(send, INPUTS, {"fetch": StepState(output={"status": "answered"})}) is False
    assert step_condition(plain, INPUTS, STEPS) is True
    assert step_arguments(plain, INPUTS, STEPS) == {}
    assert skill_outputs(skill, INPUTS, STEPS) == {"thread": "t-9", "count": 3}


def test_an_undefined_value_is_an_error_naming_the_place() -> None:
    with pytest.raises(SkillTemplateError) as caught:
        ev({"thread": "{{ steps.fetch.output.thred }}"}, where="step `send` with")
    assert caught.value.code == "template_error"
    assert caught.value.message == ("step `send` with.thread: `{{ steps.fetch.output.thred }}`: a mapping has no "
                                    "field `thred`; use `| default(...)` for an optional one")


def test_a_failing_expression_is_a_template_error() -> None:
    with pytest.raises(SkillTemplateError) as caught:
        ev("{{ 1 / 0 }}")
    assert type(caught.value) is SkillTemplateError


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(SkillTemplateError):
        ev("{{ cycler(1, 2) }}")
    with pytest.raises(SkillTemplateError):
        ev("{{ 'abc'.upper }}")


# -- the sandbox


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ inputs.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ inputs['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ 'a'.format }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ ''|attr('format') }}",
    "{{ 'x'.ljust(10) }}",
    "{{ inputs.tags.append(1) }}",
    "{{ inputs.nested.update({'a': 1}) }}",
    "x {{ inputs.__class__ }} y",
])
def test_python_internals_are_denied(source: str) -> None:
    with pytest.raises(TemplateDeniedError) as caught:
        ev(source)
    assert caught.value.code == "template_denied"
    assert "is not available in skill templates" in caught.value.message


@pytest.mark.parametrize(("source", "tag"), [
    ("{% set x = 1 %}{{ x }}", "set"),
    ("{% macro m() %}x{% endmacro %}{{ m() }}", "macro"),
    ("{% include 'x' %}", "include"),
    ("{% import 'x' as y %}", "import"),
    ("{% with a = 1 %}{{ a }}{% endwith %}", "with"),
    ("{% filter upper %}x{% endfilter %}", "filter"),
])
def test_statements_beyond_if_and_for_are_denied(source: str, tag: str) -> None:
    with pytest.raises(TemplateDeniedError) as caught:
        ev(source)
    assert f"`{{% {tag} %}}` is not allowed" in caught.value.message


def test_recursive_loops_are_denied() -> None:
    with pytest.raises(TemplateDeniedError):
        ev("{% for x in inputs.tags recursive %}{{ loop(x) }}{% endfor %}")


def test_namespace_and_lipsum_are_not_available() -> None:
    for source in ("{{ namespace(a=1) }}", "{{ lipsum(5) }}"):
        with pytest.raises(SkillTemplateError, match="is undefined"):
            ev(source)


# -- limits: each must stop quickly (the timeout marks bound the wait; no clock asserts)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("source", [
    "{{ 'x' * 100000000 }}",
    "{{ 100000000 * 'x' }}",
    "{{ [1] * 100000000 }}",
    "{{ range(10**9) | list }}",
    "{{ range(10**9) }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100) %}{% for j in range(100) %}{% for k in range(100) %}{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{{ 'x' | center(1000000000) }}",
    "{{ 'x' | indent(1000000000, true) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '%*s' | format(999999999, 'x') }}",
    "{{ 'ab' | replace('', 'x' * 60000) }}",
    "{{ 'ab'.replace('', 'x' * 60000) }}",
    "{{ ('x' * 60000) ~ ('x' * 60000) }}",
    "{{ ('x' * 60000) + ('x' * 60000) }}",
    "{{ ('x' * 60000) | list | join('x' * 60000) }}",
    "{{ ('x' * 1000).join(['y' * 1000] * 100) }}",
    "{{ [1] | batch(1000000000, 0) | list }}",
    "{{ [1] | slice(1000000000) | list }}",
    "{{ 9 ** 99999999 }}",
    "{% for i in range(10000) %}{{ 'x' * 60000 }}{% endfor %}",
    "{{ inputs.tags | map('center', 1000000000) | list }}",
])
def test_huge_values_and_long_loops_are_stopped(source: str) -> None:
    with pytest.raises(TemplateLimitError) as caught:
        ev(source)
    assert caught.value.code == "template_limit"


def test_the_value_limit_applies_to_passed_through_values() -> None:
    big = {"blob": "x" * 70_000}
    with pytest.raises(TemplateLimitError):
        evaluate("{{ inputs.blob }}", big, {})
    assert evaluate("{{ inputs.blob }}", big, {}, limits=Limits(max_value_bytes=100_000)) == big["blob"]


def test_the_iteration_budget_is_shared_by_all_loops_of_one_evaluation() -> None:
    limits = Limits(max_iterations=5)
    assert evaluate("{% for t in inputs.tags %}{{ t }}{% endfor %}", INPUTS, {}, limits=limits) == "ab"
    with pytest.raises(TemplateLimitError):
        evaluate(["{% for i in range(3) %}{% endfor %}", "{% for i in range(3) %}{% endfor %}"], INPUTS, {},
                 limits=limits)


def test_an_evaluation_past_its_deadline_is_stopped() -> None:
    with pytest.raises(TemplateLimitError, match="longer than"):
        evaluate("{{ inputs.count }}", INPUTS, {}, limits=Limits(max_seconds=-1))


def test_over_long_templates_are_refused() -> None:
    with pytest.raises(TemplateLimitError):
        evaluate("{{ 1 }}" + " " * 9000, INPUTS, {})


# -- analysis (what validation reads)


def test_analysis_lists_references_and_whether_the_template_is_one_expression() -> None:
    analysis = analyze_template("{{ steps.fetch.output.id ~ inputs.body }}")
    assert analysis.single_expression
    assert analysis.issues == []
    assert [(r.root, r.name, r.attribute) for r in analysis.references] == [
        ("steps", "fetch", "output"), ("inputs", "body", None)]
    assert not analyze_template("x {{ inputs.body }}").single_expression


def test_loop_variables_are_known_names() -> None:
    assert analyze_template("{% for t in inputs.tags %}{{ t }}{{ loop.index }}{% endfor %}").issues == []


# -- step results


def test_step_output_prefers_structured_content() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text='{"a": 1}')],
                                  structured_content={"a": 2})
    assert step_output(result) == {"a": 2}
    assert step_output({"content": [], "structuredContent": {"a": 3}}) == {"a": 3}


def test_step_output_parses_a_single_json_text_else_keeps_the_text() -> None:
    assert step_output(types.CallToolResult(content=[types.TextContent(type="text", text='{"a": 1}')])) == {"a": 1}
    assert step_output({"content": [{"type": "text", "text": "[1, 2]"}]}) == [1, 2]
    assert step_output({"content": [{"type": "text", "text": "plain words"}]}) == "plain words"
    assert step_output({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}) == "a\nb"
    assert step_output({"content": []}) == ""
