"""The skill registry on a real SQLite store: publish, immutability, digests, versions, yank, latest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.errors import InterlockError
from executor.skill_format import (
    Skill,
    SkillConflictError,
    SkillError,
    SkillNotFoundError,
    digest,
    semver_key,
    skill_is_listable,
)
from registry.config import UpstreamConfig
from registry.records import ServerRecord, ToolRecord
from registry.skill_registry import (
    exposed_on,
    known_tools_from_store,
    latest,
    list_skills,
    publish,
    resolve,
    show,
    versions,
    yank,
)
from registry.sqlite_store import SQLiteStore, open_store

SKILLS = Path(__file__).resolve().parents[1] / "skills"
NOW = "2026-01-01T00:00:00+00:00"


def anything(name: str) -> str | None:
    return None


SKILL = """\
# a comment that is not part of the digest
name: greet
version: {version}
description: {description}
inputs: {{type: object, properties: {{body: {{type: string}}}}}}
steps:
  - id: hello
    tool: mail.send_reply
    with: {{thread_id: t, body: "{{{{ inputs.body | default('hi') }}}}"}}
"""


def text(version: str = "1.0.0", description: str = "Say hello.") -> str:
    return SKILL.format(version=version, description=description)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with open_store(tmp_path / "interlock.db") as s:
        yield s


def test_publish_stores_the_version_with_its_digest_and_bumps_the_generation(store: SQLiteStore) -> None:
    before = store.generation()
    published = publish(store, text(), known_tools=anything, now=NOW)
    assert published.created
    assert (published.name, published.version, published.published_at, published.yanked) == (
        "greet", "1.0.0", NOW, False)
    assert published.digest.startswith("sha256:") and len(published.digest) == 71
    assert published.source == text()
    assert store.generation() == before + 1
    assert show(store, "greet") == published.__class__(**{**_fields(published), "created": False})


def _fields(v: object) -> dict[str, object]:
    return {f: getattr(v, f) for f in v.__struct_fields__}  # type: ignore[attr-defined]


def test_the_digest_ignores_comments_key_order_and_quoting(store: SQLiteStore) -> None:
    published = publish(store, text(), known_tools=anything, now=NOW)
    reordered = ('description: "Say hello."\nversion: "1.0.0"\nname: greet\n'
                 'inputs: {properties: {body: {type: string}}, type: object}\nsteps:\n'
                 '  - {tool: mail.send_reply, id: hello, with: {body: "{{ inputs.body | default(\'hi\') }}", '
                 'thread_id: t}}\n')
    again = publish(store, reordered, known_tools=anything)
    assert again.digest == published.digest
    assert not again.created


def test_republishing_the_identical_file_is_a_no_op(store: SQLiteStore, tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(text())
    first = publish(store, path, known_tools=anything, now=NOW)
    generation = store.generation()
    second = publish(store, str(path), known_tools=anything, now="2027-01-01T00:00:00+00:00")
    assert not second.created
    assert second.published_at == NOW
    assert second.digest == first.digest
    assert store.generation() == generation


def test_a_changed_file_under_a_published_version_is_refused(store: SQLiteStore) -> None:
    publish(store, text(), known_tools=anything)
    generation = store.generation()
    with pytest.raises(SkillConflictError) as caught:
        publish(store, text(description="Say hello, loudly."), known_tools=anything)
    assert caught.value.code == "skill_conflict"
    assert "`greet@1.0.0` is already published with different contents" in caught.value.message
    assert "e.g. `1.0.1`" in caught.value.message
    assert store.generation() == generation
    assert show(store, "greet").skill.description == "Say hello."


def test_an_invalid_file_is_refused_with_every_problem(store: SQLiteStore) -> None:
    with pytest.raises(SkillError) as caught:
        publish(store, text(version="1.0"), known_tools=anything)
    assert [(p.file, p.line, p.column) for p in caught.value.problems] == [("<skill>", 3, 10)]
    assert str(caught.value.problems[0]).startswith("<skill>:3:10: expected a string, got a number")
    assert store.list_skill_versions() == []


def test_publish_checks_tools_against_the_store_by_default(store: SQLiteStore) -> None:
    with pytest.raises(SkillError) as caught:
        publish(store, text())
    assert [p.message for p in caught.value.problems] == ["tool `mail.send_reply` is unknown: no blessed server `mail`"]
    store.put_server(ServerRecord(spec=UpstreamConfig(name="mail", url="https://mail.example/mcp"), source="cli"))
    store.put_tool(ToolRecord(server="mail", name="send_reply", definition={"name": "send_reply"},
                              pinned_hash="sha256:x", status="quarantined"))
    with pytest.raises(SkillError) as caught:
        publish(store, text())
    assert caught.value.problems[0].message.startswith("tool `mail.send_reply` is quarantined")
    store.put_tool(ToolRecord(server="mail", name="send_reply", definition={"name": "send_reply"},
                              pinned_hash="sha256:x", status="pinned"))
    assert publish(store, text()).created


def test_known_tools_from_store_explains_each_status(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=UpstreamConfig(name="mail", url="https://mail.example/mcp"), source="cli"))
    for name, status in (("a", "pinned"), ("b", "pending"), ("c", "removed")):
        store.put_tool(ToolRecord(server="mail", name=name, definition={"name": name}, pinned_hash="h",
                                  status=status))  # type: ignore[arg-type]
    known = known_tools_from_store(store)
    assert known("mail.a") is None
    assert known("mail.b") == "not blessed yet; bless it: `interlock tools bless mail.b`"
    assert known("mail.c") == "removed upstream"
    assert known("mail.d") == "unknown: server `mail` has no such tool"
    assert known("crm.a") == "unknown: no blessed server `crm`"


def test_versions_are_listed_in_semver_order_and_latest_is_the_highest_release(store: SQLiteStore) -> None:
    for v in ("1.10.0", "1.2.0", "2.0.0-rc.1", "1.9.9"):
        publish(store, text(version=v), known_tools=anything)
    assert [v.version for v in versions(store, "greet")] == ["1.2.0", "1.9.9", "1.10.0", "2.0.0-rc.1"]
    assert show(store, "greet").version == "1.10.0"
    assert [v.version for v in list_skills(store)] == ["1.10.0"]


def test_a_yanked_version_is_not_served_but_kept(store: SQLiteStore) -> None:
    publish(store, text("1.0.0"), known_tools=anything)
    publish(store, text("1.1.0", "Say hello again."), known_tools=anything)
    generation = store.generation()
    yanked = yank(store, "greet", "1.1.0", now=NOW)
    assert yanked.yanked_at == NOW
    assert store.generation() == generation + 1
    assert show(store, "greet").version == "1.0.0"
    assert resolve(store, "greet").version == "1.0.0"
    assert show(store, "greet", "1.1.0").yanked  # still there, for audit
    with pytest.raises(SkillNotFoundError):
        resolve(store, "greet", "1.1.0")
    assert [(v.version, v.yanked) for v in versions(store, "greet")] == [("1.0.0", False), ("1.1.0", True)]
    # yanking again changes nothing
    assert yank(store, "greet", "1.1.0", now="2030-01-01T00:00:00+00:00").yanked_at == NOW
    assert store.generation() == generation + 1


def test_a_yanked_version_cannot_be_published_again(store: SQLiteStore) -> None:
    publish(store, text(), known_tools=anything)
    yank(store, "greet", "1.0.0")
    with pytest.raises(SkillConflictError, match="was yanked"):
        publish(store, text(), known_tools=anything)


def test_a_skill_with_every_version_yanked_is_not_listed(store: SQLiteStore) -> None:
    publish(store, text(), known_tools=anything)
    yank(store, "greet", "1.0.0")
    assert list_skills(store) == []
    assert [v.version for v in list_skills(store, include_yanked=True)] == ["1.0.0"]
    with pytest.raises(SkillNotFoundError, match="every version of skill `greet` is yanked"):
        show(store, "greet")


def test_unknown_skills_and_versions_are_not_found(store: SQLiteStore) -> None:
    for call in (lambda: show(store, "nope"), lambda: versions(store, "nope"),
                 lambda: show(store, "nope", "1.0.0"), lambda: yank(store, "nope", "1.0.0")):
        with pytest.raises(SkillNotFoundError) as caught:
            call()
        assert caught.value.code == "skill_not_found"
        assert isinstance(caught.value, InterlockError)


def test_the_shipped_skills_publish(store: SQLiteStore) -> None:
    for path in sorted(SKILLS.glob("*.yaml")):
        publish(store, path, known_tools=anything)
    assert [v.name for v in list_skills(store)] == ["issue-credit", "reply-to-email"]


def test_two_openers_see_each_others_publishes(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as a, open_store(tmp_path / "s.db") as b:
        generation = b.generation()
        publish(a, text(), known_tools=anything)
        assert b.generation() == generation + 1
        assert show(b, "greet").version == "1.0.0"


def test_publishing_reads_a_missing_file_as_invalid_input(store: SQLiteStore, tmp_path: Path) -> None:
    with pytest.raises(SkillError) as caught:
        publish(store, tmp_path / "missing.yaml")
    assert str(caught.value.problems[0]).endswith("missing.yaml: file does not exist")


# -- pure helpers


def test_semver_precedence() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=semver_key) == ordered


def test_latest_prefers_releases_and_skips_yanked(store: SQLiteStore) -> None:
    assert latest([]) is None
    publish(store, text("2.0.0-rc.1"), known_tools=anything)
    assert show(store, "greet").version == "2.0.0-rc.1"  # only a prerelease: it is latest


def test_a_skill_is_listable_only_when_every_step_is_allowed() -> None:
    skill = Skill.from_data({"name": "s", "version": "1.0.0", "description": "d", "steps": [
        {"id": "a", "tool": "billing.lookup_customer"},
        {"id": "b", "tool": "billing.issue_credit", "if": "{{ false }}"}]})
    assert skill_is_listable(skill, lambda tool: True)
    assert not skill_is_listable(skill, lambda tool: tool != "billing.issue_credit")  # even behind `if`


def test_gateway_skill_patterns() -> None:
    assert exposed_on(["reply-*"], "reply-to-email")
    assert exposed_on(["*"], "issue-credit")
    assert not exposed_on(["reply-*"], "issue-credit")
    assert not exposed_on([], "issue-credit")


def test_digest_is_sha256_of_sorted_compact_json() -> None:
    import hashlib

    assert digest({"b": 1, "a": [1, "x"]}) == "sha256:" + hashlib.sha256(b'{"a":[1,"x"],"b":1}').hexdigest()
