"""Docs are tests: docs/skills.md documents every skill field, limit and registry command, and its
example skills validate."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from executor.skill_format import Retry, Skill, Step
from executor.skill_templates import Limits
from registry.skill_validate import validate_text

DOC = Path(__file__).resolve().parents[1] / "docs" / "skills.md"


def section(title: str) -> str:
    text = DOC.read_text()
    assert title in text
    return text.split(title, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def skill_blocks() -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if b.startswith("# interlock skill")]


def test_the_docs_show_a_skill() -> None:
    assert skill_blocks()


@pytest.mark.parametrize("block", skill_blocks())
def test_skills_shown_in_the_docs_validate(block: str) -> None:
    assert [str(p) for p in validate_text(block, "docs/skills.md").problems] == []


@pytest.mark.parametrize(("struct", "title"), [(Skill, "## Fields"), (Step, "### Steps"), (Retry, "### `retry`")])
def test_every_skill_field_is_documented(struct: type[msgspec.Struct], title: str) -> None:
    body = section(title)
    names = [f.encode_name for f in msgspec.structs.fields(struct)]
    assert [n for n in names if f"| `{n}` |" not in body] == []


def test_every_template_limit_is_documented() -> None:
    body = section("### Limits")
    assert [f for f in Limits.__struct_fields__ if f"| `{f}` |" not in body] == []


def test_every_registry_command_is_documented() -> None:
    text = DOC.read_text()
    for verb in ("validate", "publish", "list", "show", "versions", "yank"):
        assert f"interlock skills {verb}" in text
