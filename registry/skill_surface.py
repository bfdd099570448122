"""Skills as MCP primitives on a gateway.

- The skills extension ``io.modelcontextprotocol/skills`` (SEP-2640): ``skills/list`` (with the
  frontmatter and a ``sha256:`` digest per file), ``skills/get``, and ``skill://<name>/SKILL.md``
  resources rendering each skill as an Agent Skills document.
- For clients without the extension, each skill is also a tool ``skill.<name>`` (its input
  schema is the skill's) and a prompt holding its instructions.

Everything here lists only what ``Snapshot.skill_visible`` allows: a skill appears only where
every step it could run is allowed for the caller; calling it runs ``SkillRunner``, whose steps
go through ``Executor.call``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import mcp.types as types

from registry.agent_skills import render_skill_md
from registry.skill_registry import SkillVersion

EXTENSION = "io.modelcontextprotocol/skills"
TOOL_PREFIX = "skill."


def skill_uri(name: str) -> str:
    return f"skill://{name}/SKILL.md"


def skill_tool(version: SkillVersion) -> types.Tool:
    skill = version.skill
    return types.Tool(name=f"{TOOL_PREFIX}{skill.name}", title=skill.name, description=skill.description,
                      input_schema=skill.inputs, _meta={"io.interlock/skill": {"version": skill.version,
                                                                                 "digest": version.digest}})


def skill_prompt(version: SkillVersion) -> types.Prompt:
    return types.Prompt(name=f"{TOOL_PREFIX}{version.skill.name}", description=version.skill.description)


def prompt_result(version: SkillVersion) -> types.GetPromptResult:
    return types.GetPromptResult(description=version.skill.description, messages=[types.PromptMessage(
        role="user", content=types.TextContent(type="text", text=render_skill_md(version)))])


def skill_resource(version: SkillVersion) -> types.Resource:
    return types.Resource(uri=skill_uri(version.skill.name), name=version.skill.name, mime_type="text/markdown",
                          description=version.skill.description)


def skill_entry(version: SkillVersion) -> dict[str, Any]:
    """One `skills/list` entry: `{uri, frontmatter, resources: [{uri, digest, size}]}`."""
    body = render_skill_md(version).encode()
    frontmatter = {"name": version.skill.name, "description": version.skill.description,
                   "metadata": {**version.skill.metadata, "version": version.skill.version}}
    return {"uri": f"skill://{version.skill.name}", "frontmatter": frontmatter,
            "resources": [{"uri": skill_uri(version.skill.name), "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
                           "size": len(body)}]}


class SkillsListParams(types.PaginatedRequestParams):
    pass


class SkillsGetParams(types.RequestParams):
    uri: str


class SkillsListResult(types.Result):
    skills: list[dict[str, Any]]
    next_cursor: str | None = None


class SkillsGetResult(types.Result):
    skill: dict[str, Any]
    contents: list[dict[str, Any]]


def name_from_uri(uri: str) -> str | None:
    if not uri.startswith("skill://"):
        return None
    rest = uri.removeprefix("skill://").rstrip("/")
    name, _, file = rest.partition("/")
    return name if file in ("", "SKILL.md") else None
