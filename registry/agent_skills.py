"""Skills as Agent Skills documents (`SKILL.md`): render, export and import.

An Agent Skill (agentskills/agentskills `docs/specification.mdx`) is a folder `<name>/` holding
`SKILL.md`: YAML frontmatter (`name` matching the folder, `description`, optional `license`,
`compatibility`, and `metadata`, a string map) and a Markdown body. An Interlock skill maps to
it like this::

    ---
    name, description, license?, compatibility?           the skill's own fields
    metadata: {..., interlock-version, interlock-digest}   the skill's metadata plus two reserved keys
    ---
    <instructions, exactly>
    <!-- interlock:generated ... -->                       everything below is generated:
    ## Steps, ## Inputs, ## Outputs                        readable summaries for the agent
    ## Definition  ```yaml ...```                          the rest of the skill: version, inputs,
                                                           steps, outputs (and license, compatibility,
                                                           metadata as published)

Import reads name, description, license, compatibility and metadata from the frontmatter (an
edit there wins), the instructions from the body above the marker, and everything else from the
Definition block. Exporting a published version and importing it again gives back a document
with the same digest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from executor.skill_format import (
    RESERVED_METADATA_PREFIX,
    Problem,
    Skill,
    SkillError,
    SkillInternalError,
    canonical_json,
)
from registry.skill_registry import SkillVersion
from registry.skill_validate import TOP_FIELDS, load_skill

SKILL_FILE = "SKILL.md"
MARKER = "<!-- interlock:generated from the skill definition; everything below is replaced on export -->"
DEFINITION_HEADING = "## Definition"
FRONTMATTER_FIELDS = ("name", "description", "license", "compatibility", "metadata")
BODY_FIELDS = ("instructions",)


# --------------------------------------------------------------------------- yaml output


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})
_Dumper.add_representer(str, _str_representer)


def _dump(data: Any) -> str:
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000,
                     default_flow_style=False)
    assert isinstance(text, str)
    if yaml.safe_load(text) != data:  # literal blocks cannot hold every string; the dumper falls back
        raise SkillInternalError("yaml output does not read back as the same data")
    return text


def skill_yaml(document: dict[str, Any]) -> str:
    """A skill document as YAML, fields in the documented order, multi-line text as `|` blocks."""
    ordered = {k: document[k] for k in TOP_FIELDS if k in document}
    ordered.update({k: v for k, v in document.items() if k not in ordered})
    return _dump(ordered)


# --------------------------------------------------------------------------- rendering


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _code(text: Any) -> str:
    shown = text if isinstance(text, str) else canonical_json(text).decode()
    shown = " ".join(shown.split())
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{ticks}{pad}{shown}{pad}{ticks}"


def _step_lines(skill: Skill) -> list[str]:
    lines = []
    for i, step in enumerate(skill.steps, 1):
        head = f"{i}. `{step.id}`: call `{step.tool}`"
        if step.if_ is not None:
            head += f", only if {_code(step.if_)}"
        retry = skill.step_retry(step)
        if retry is not None:
            head += f"; on error, retry ({retry.attempts} attempts in all, {retry.backoff_ms} ms backoff), then fail"
        elif step.on_error == "continue":
            head += "; on error, continue with the next step"
        lines.append(head)
        if step.description:
            lines.append(f"   {' '.join(step.description.split())}")
        for arg, value in step.with_.items():
            lines.append(f"   - `{arg}`: {_code(value)}")
    return lines


def _input_lines(skill: Skill) -> list[str]:
    properties = skill.inputs.get("properties")
    required = set(skill.inputs.get("required") or [])
    if not isinstance(properties, dict) or not properties:
        return ["This skill takes no arguments."]
    lines = []
    for name, schema in properties.items():
        schema = schema if isinstance(schema, dict) else {}
        kind = schema.get("type", "any")
        kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
        flags = ", ".join([kind, "required" if name in required else "optional"])
        description = " ".join(str(schema.get("description", "")).split())
        lines.append(f"- `{name}` ({flags})" + (f": {description}" if description else ""))
    return lines


def render_skill_md(version: SkillVersion) -> str:
    """The skill as an Agent Skills `SKILL.md` (served as `skill://<name>/SKILL.md`, and written
    by ``export_skill``): frontmatter, the instructions, then generated sections."""
    skill, document = version.skill, version.document
    frontmatter: dict[str, Any] = {"name": skill.name, "description": skill.description}
    for key in ("license", "compatibility"):
        if key in document:
            frontmatter[key] = document[key]
    frontmatter["metadata"] = {**skill.metadata, f"{RESERVED_METADATA_PREFIX}version": skill.version,
                               f"{RESERVED_METADATA_PREFIX}digest": version.digest}
    definition = {k: v for k, v in document.items() if k not in ("name", "description", *BODY_FIELDS)}
    definition_yaml = skill_yaml(definition)
    fence = _fence(definition_yaml)
    outputs = [f"- `{name}`: {_code(value)}" for name, value in skill.outputs.items()] or ["None."]
    generated = [
        MARKER,
        "",
        "## Steps",
        "",
        f"Interlock runs this skill when you call the tool `skill.{skill.name}` with the inputs below. "
        "It makes these tool calls in order, each checked against your permissions when it runs; "
        "`{{ ... }}` are templates over `inputs` and earlier steps' `steps.<id>.output`.",
        "",
        *_step_lines(skill),
        "",
        "## Inputs",
        "",
        *_input_lines(skill),
        "",
        "## Outputs",
        "",
        *outputs,
        "",
        DEFINITION_HEADING,
        "",
        f"{fence}yaml",
        definition_yaml.rstrip("\n"),
        fence,
        "",
    ]
    return "---\n" + _dump(frontmatter) + "---\n" + skill.instructions + "\n" + "\n".join(generated)


def export_skill(version: SkillVersion, folder: str | Path) -> Path:
    """Write ``<folder>/<name>/SKILL.md``; returns its path."""
    directory = Path(folder) / version.name
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SKILL_FILE
    path.write_text(render_skill_md(version), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- import


def _split(text: str, file: str) -> tuple[Any, str]:
    """(frontmatter, body) of a `SKILL.md`."""
    text = text.replace("\r\n", "\n")
    if not text.startswith("---\n"):
        raise SkillError([Problem(file, 1, 1, "a SKILL.md starts with `---` and YAML frontmatter")])
    end = text.find("\n---\n", 3)
    if end < 0:
        raise SkillError([Problem(file, 1, 1, "the frontmatter is not closed by a `---` line")])
    try:
        frontmatter = yaml.safe_load(text[4:end + 1])
    except yaml.YAMLError as exc:
        raise SkillError([Problem(file, 2, 1, f"invalid yaml in the frontmatter: {exc}")]) from exc
    return frontmatter, text[end + 5:]


def _definition(generated: str, file: str, line: int) -> dict[str, Any]:
    heading = generated.rfind("\n" + DEFINITION_HEADING + "\n")
    match = re.search(r"^(`{3,})yaml\n(.*?)^\1\s*$", generated[heading:], re.S | re.M) if heading >= 0 else None
    if match is None:
        raise SkillError([Problem(file, line, 1, f"the generated section has no `{DEFINITION_HEADING}` yaml block")])
    try:
        definition = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        raise SkillError([Problem(file, line, 1, f"invalid yaml in `{DEFINITION_HEADING}`: {exc}")]) from exc
    if not isinstance(definition, dict):
        raise SkillError([Problem(file, line, 1, f"`{DEFINITION_HEADING}` must be a yaml mapping")])
    return definition


def import_skill(folder: str | Path) -> str:
    """The skill YAML of an exported Agent Skill folder (or its `SKILL.md`). Raises
    ``SkillError`` for a folder that is not an exported Interlock skill or does not validate."""
    path = Path(folder)
    if path.is_dir():
        path = path / SKILL_FILE
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkillError([Problem(file, 0, 0, f"cannot read `{SKILL_FILE}`: {exc}")]) from exc
    frontmatter, body = _split(text, file)
    if not isinstance(frontmatter, dict):
        raise SkillError([Problem(file, 2, 1, "the frontmatter must be a yaml mapping")])
    name = frontmatter.get("name")
    if name != path.parent.name:
        raise SkillError([Problem(file, 2, 1, f"frontmatter `name` `{name}` must match the folder name "
                                              f"`{path.parent.name}`")])
    cut = body.rfind("\n" + MARKER + "\n")
    if cut < 0:
        raise SkillError([Problem(file, 0, 0, "no interlock definition: this Agent Skill has no steps; export "
                                              "a published skill with interlock to get one")])
    instructions = body[:cut]
    marker_line = text.count("\n", 0, len(text) - len(body) + cut) + 2
    document = _definition(body[cut + 1:], file, marker_line)
    document["name"] = name
    document["description"] = frontmatter.get("description")
    if instructions:
        document["instructions"] = instructions
    for key in ("license", "compatibility"):
        if key in frontmatter:
            document[key] = frontmatter[key]
        else:
            document.pop(key, None)
    metadata = frontmatter.get("metadata") or {}
    if isinstance(metadata, dict):
        own = {k: v for k, v in metadata.items() if not str(k).startswith(RESERVED_METADATA_PREFIX)}
        if own or "metadata" in document:
            document["metadata"] = own
    else:
        document["metadata"] = metadata  # reported by the validation below
    result = skill_yaml(document)
    load_skill(result, file)  # the imported skill must be valid (tools are checked on publish)
    return result
