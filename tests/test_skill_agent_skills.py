"""Skills as Agent Skills: SKILL.md rendering, export, and import back to the same digest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from executor.skill_format import SkillError
from registry.agent_skills import MARKER, export_skill, import_skill, render_skill_md
from registry.skill_registry import SkillVersion, publish
from registry.skill_validate import validate_text
from registry.sqlite_store import SQLiteStore, open_store

SKILLS = Path(__file__).resolve().parents[1] / "skills"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with open_store(tmp_path / "interlock.db") as s:
        yield s


def published(store: SQLiteStore, text: str | Path) -> SkillVersion:
    return publish(store, text, known_tools=lambda _: None)


def frontmatter(md: str) -> dict[str, object]:
    head = md.split("---\n", 2)[1]
    loaded = yaml.safe_load(head)
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("path", sorted(SKILLS.glob("*.yaml")), ids=lambda p: p.name)
def test_export_then_import_gives_back_the_same_digest(store: SQLiteStore, tmp_path: Path, path: Path) -> None:
    version = published(store, path)
    skill_md = export_skill(version, tmp_path / "out")
    assert skill_md == tmp_path / "out" / version.name / "SKILL.md"
    text = import_skill(skill_md.parent)
    result = validate_text(text)
    assert result.digest == version.digest
    assert result.skill == version.skill
    assert import_skill(skill_md) == text  # the SKILL.md path works too


def test_the_frontmatter_follows_the_agent_skills_format(store: SQLiteStore) -> None:
    version = published(store, SKILLS / "reply-to-email.yaml")
    md = render_skill_md(version)
    meta = frontmatter(md)
    assert meta["name"] == "reply-to-email"
    assert meta["description"] == version.skill.description
    assert meta["license"] == "Apache-2.0"
    assert meta["metadata"] == {"author": "interlock", "interlock-version": "1.0.0",
                                "interlock-digest": version.digest}
    assert all(isinstance(v, str) for v in meta["metadata"].values())  # type: ignore[union-attr]


def test_the_body_is_the_instructions_then_the_steps(store: SQLiteStore) -> None:
    version = published(store, SKILLS / "reply-to-email.yaml")
    body = render_skill_md(version).split("---\n", 2)[2]
    assert body.startswith(version.skill.instructions + "\n" + MARKER + "\n")
    assert "1. `fetch`: call `mail.read_message`; on error, retry (3 attempts in all, 200 ms backoff)" in body
    assert "2. `send`: call `mail.send_reply`, only if `{{ steps.fetch.output.status == 'open' }}`" in body
    assert "   - `thread_id`: `{{ steps.fetch.output.thread_id }}`" in body
    assert "- `message_id` (string, required): the id of the message to answer" in body
    assert "## Definition" in body


GREET = """\
name: greet
version: 2.1.0-beta.1
description: "Say hello: in ``code`` too"
compatibility: any
instructions: "no trailing newline, and a `tick` and ```fence```"
steps:
  - id: hello
    tool: mail.send_reply
    with: {thread_id: t, body: "```{{ 'x' }}```", n: 3, flag: true, none: null, list: [1, "two"]}
"""


@pytest.mark.parametrize("text", [
    GREET,
    GREET.replace('instructions: "no trailing newline, and a `tick` and ```fence```"\n', ""),
    GREET.replace('instructions: "no trailing newline', 'instructions: "\\n\\nleading blank lines\\n\\n\\n'),
    GREET.replace("compatibility: any\n", "metadata: {}\n"),
    GREET.replace("compatibility: any\n", "license: MIT\nmetadata: {team: mail, version: '7'}\n"),
])
def test_round_trips_are_exact_for_awkward_documents(store: SQLiteStore, tmp_path: Path, text: str) -> None:
    version = published(store, text)
    export_skill(version, tmp_path)
    assert validate_text(import_skill(tmp_path / "greet")).digest == version.digest


def test_edits_to_the_frontmatter_and_instructions_win_on_import(store: SQLiteStore, tmp_path: Path) -> None:
    version = published(store, GREET)
    path = export_skill(version, tmp_path)
    md = path.read_text()
    md = re.sub(r"^description: .*$", "description: Say hi.", md, count=1, flags=re.M)
    md = md.replace("no trailing newline, and a `tick` and ```fence```", "Be brief.\n")
    md = md.replace("compatibility: any\n", "")
    path.write_text(md)
    result = validate_text(import_skill(path.parent))
    assert result.skill is not None
    assert (result.skill.description, result.skill.instructions, result.skill.compatibility) == (
        "Say hi.", "Be brief.\n", None)
    assert result.skill.steps == version.skill.steps


def test_the_folder_must_be_named_after_the_skill(store: SQLiteStore, tmp_path: Path) -> None:
    path = export_skill(published(store, GREET), tmp_path)
    path.parent.rename(tmp_path / "other")
    with pytest.raises(SkillError, match="must match the folder name `other`"):
        import_skill(tmp_path / "other")


def test_a_plain_agent_skill_without_steps_is_not_importable(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "SKILL.md").write_text("---\nname: plain\ndescription: A skill.\n---\n# Do things\n")
    with pytest.raises(SkillError) as caught:
        import_skill(folder)
    assert "no interlock definition" in caught.value.problems[0].message


def test_an_imported_skill_must_validate(store: SQLiteStore, tmp_path: Path) -> None:
    path = export_skill(published(store, GREET), tmp_path)
    path.write_text(path.read_text().replace("name: greet", "name: Greet"))
    (tmp_path / "Greet").mkdir()
    path.rename(tmp_path / "Greet" / "SKILL.md")
    with pytest.raises(SkillError) as caught:
        import_skill(tmp_path / "Greet")
    assert "is not a valid skill name" in caught.value.problems[0].message


def test_a_missing_skill_md_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(SkillError):
        import_skill(tmp_path / "nothing")
