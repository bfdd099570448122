"""The skill document: its msgspec structs, YAML parsing with positions, canonical form and digest.

A skill is one YAML file (see docs/skills.md)::

    name, version, description, instructions, license?, compatibility?, metadata?,
    inputs (JSON Schema of the arguments), steps[] (id, tool, with, if, on_error, retry), outputs

``parse_document`` reads the YAML into plain JSON-compatible data *and* a map from each
value's path (``("steps", 1, "with", "id")``) to its YAML node, so every problem found later
can be reported as ``file:line:column: message``. ``registry.skill_validate`` does the
checking; ``Skill.from_data`` converts data that validated.

The digest of a skill is ``sha256:<hex>`` of its canonical form: the parsed document as JSON
with sorted keys and no whitespace. Comments, key order, quoting and YAML anchors do not
change it; any change of a value does.

Errors (all ``InterlockError``, so the CLI exits 1, except the last which exits 3)::

    SkillError             skill_invalid     a skill did not validate; ``problems`` lists every one
    SkillNotFoundError     skill_not_found   no such skill or version (or none servable)
    SkillConflictError     skill_conflict    publishing a changed file under a published version,
                                             or republishing a yanked one
    SkillInternalError     (not an InterlockError) a bug while validating: exit status 3
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import yaml

from executor.errors import InterlockError

NAME_MAX = 64
DESCRIPTION_MAX = 1024
COMPATIBILITY_MAX = 500
MAX_STEPS = 100
MAX_DOCUMENT_CHARS = 1_048_576
MAX_DOCUMENT_VALUES = 100_000
"""Values after alias expansion: a few anchors must not expand into a billion values."""

NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
"""Agent Skills names: lowercase letters, digits and single inner hyphens (and at most 64 chars)."""

SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
"""SemVer 2.0.0 without build metadata (`+build` would make two versions rank equal)."""

STEP_ID_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
"""Step ids are identifiers, so templates can write `steps.<id>.output`."""

TOOL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\.[A-Za-z0-9_.-]{1,128}$")
"""An exposed tool name `server.tool` (server names as in the config, tool names as MCP allows)."""

RESERVED_METADATA_PREFIX = "interlock-"
"""Metadata keys Interlock writes when exporting to SKILL.md; a skill may not use them."""

OnError = Literal["fail", "continue", "retry"]
ON_ERROR_VALUES: tuple[str, ...] = ("fail", "continue", "retry")


class Retry(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    attempts: int = 3
    """Calls in all, the first included (1 to 10)."""
    backoff_ms: int = 200
    """Wait before the second call; doubled before each further one (0 to 60000)."""


class Step(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: str
    tool: str
    """The exposed tool name `server.tool` (as in `tools/list`)."""
    with_: dict[str, Any] = msgspec.field(default_factory=dict, name="with")
    """The tool's arguments; string values are templates."""
    if_: str | None = msgspec.field(default=None, name="if")
    """One `{{ expression }}`: the step runs only when it is true."""
    on_error: OnError = "fail"
    retry: Retry | None = None
    """Only with `on_error: retry`; defaults to `Retry()` there."""
    description: str = ""


class Skill(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    version: str
    description: str
    instructions: str = ""
    license: str | None = None
    compatibility: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    inputs: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    steps: list[Step]
    outputs: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Any) -> Skill:
        """Convert a parsed document that validated (``registry.skill_validate``)."""
        return msgspec.convert(data, cls)

    def step_retry(self, step: Step) -> Retry | None:
        """The retry policy in force for ``step`` (None unless `on_error: retry`)."""
        return (step.retry or Retry()) if step.on_error == "retry" else None


# --------------------------------------------------------------------------- problems and errors


class Problem(msgspec.Struct, frozen=True, order=True):
    """One validation problem. Line and column count from 1; 0 means "the file as a whole"."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SkillError(InterlockError):
    code = "skill_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        files = sorted({p.file for p in problems})
        lines = "\n".join(f"  {p}" for p in problems)
        what = ", ".join(f"`{f}`" for f in files) or "skill"
        super().__init__(f"{what} is invalid ({len(problems)} problem(s)); nothing was written:\n{lines}")


class SkillNotFoundError(InterlockError):
    code = "skill_not_found"


class SkillConflictError(InterlockError):
    code = "skill_conflict"


class SkillInternalError(Exception):
    """A bug, not bad input: the CLI's last-resort handler maps it to exit status 3."""

    code = "internal_error"


# --------------------------------------------------------------------------- yaml with positions

Path = tuple[str | int, ...]

_JSON_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


@dataclass(frozen=True)
class Document:
    """A parsed skill file: JSON-compatible ``data`` plus the YAML node of every value and key."""

    file: str
    text: str
    data: Any
    values: dict[Path, yaml.Node] = field(default_factory=dict)
    keys: dict[Path, yaml.Node] = field(default_factory=dict)

    def node(self, path: Path) -> yaml.Node | None:
        return self.values.get(path)

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value (or key) at ``path``, else of its nearest ancestor."""
        table = self.keys if key else self.values
        node = table.get(path)
        while node is None and path:
            path = path[:-1]
            node = self.values.get(path)
        if node is None:
            return (1, 1)
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, message)

    def locate(self, path: Path, line: int, column: int | None, snippet: str = "") -> tuple[int, int]:
        """Map a place inside the string at ``path`` (``line`` from 1 and ``column`` from 0 within
        the string) to the file. Exact for single-line plain and quoted scalars written without
        escapes, and for literal blocks (`|`); otherwise the start of the value."""
        fallback = self.position(path)
        node = self.values.get(path)
        value = _get(self.data, path)
        if not isinstance(node, yaml.ScalarNode) or not isinstance(value, str):
            return fallback
        if column is None:  # only the line is known: point at its start inside a literal block
            if node.style != "|":
                return fallback
            column, snippet = 0, ""
        lines = self.text.splitlines()
        start, end = node.start_mark, node.end_mark
        if node.style in (None, "", "'", '"') and "\n" not in value and line == 1:
            quote = 1 if node.style in ("'", '"') else 0
            raw = self.text[start.index + quote:end.index - quote]
            if raw != value:
                return fallback
            file_line, file_col = start.line, start.column + quote + column
        elif node.style == "|":
            file_line = start.line + line  # the block starts on the line after the `|`
            if file_line >= len(lines):
                return fallback
            content = lines[file_line]
            indent = len(content) - len(content.lstrip(" "))
            file_col = indent + column
        else:
            return fallback
        if file_line >= len(lines) or (snippet and not lines[file_line].startswith(snippet, file_col)):
            return fallback
        return (file_line + 1, file_col + 1)


def _get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def parse_document(text: str, file: str = "<skill>") -> tuple[Document | None, list[Problem]]:
    """Parse YAML ``text`` into a ``Document``; problems for YAML errors and non-JSON values.

    Returns ``(None, problems)`` when the text is not YAML at all. Mapping keys must be strings,
    duplicate keys are refused, timestamps stay strings, other YAML tags are refused.
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        return None, [Problem(file, 0, 0, f"file is larger than {MAX_DOCUMENT_CHARS} characters")]
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid yaml"
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
            return None, [Problem(file, line, column, f"invalid yaml: {problem}")]
        except yaml.YAMLError as exc:
            return None, [Problem(file, 0, 0, f"invalid yaml: {exc}")]
        if root is None:
            return None, [Problem(file, 0, 0, "file is empty; a skill needs `name`, `version`, "
                                              "`description` and `steps`")]
        builder = _Builder(loader, file)
        data = builder.build(root, ())
        return Document(file, text, data, builder.values, builder.keys), builder.problems
    finally:
        loader.dispose()


class _TooLarge(Exception):
    pass


class _Builder:
    """Build plain data from composed YAML nodes, remembering the node of every path."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.values: dict[Path, yaml.Node] = {}
        self.keys: dict[Path, yaml.Node] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def _problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(self.file, node.start_mark.line + 1, node.start_mark.column + 1, message))

    def build(self, node: yaml.Node, path: Path) -> Any:
        try:
            return self._build(node, path, 0)
        except _TooLarge:
            self._problem(node, f"document expands to more than {MAX_DOCUMENT_VALUES} values (check its anchors)")
            return None

    def _build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_DOCUMENT_VALUES or depth > 64:
            raise _TooLarge
        self.values.setdefault(path, node)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        self._problem(node, "unsupported yaml node")  # pragma: no cover - compose yields only the three
        return None

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _TIMESTAMP_TAG:
            return node.value  # a date stays the text it was written as
        if node.tag not in _JSON_TAGS:
            self._problem(node, f"unsupported yaml tag `{node.tag}`; skills hold JSON values only")
            return None
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            self._problem(node, f"`{node.value}` is not a finite number")
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        try:
            self.loader.flatten_mapping(node)  # `<<` merge keys
        except yaml.MarkedYAMLError as exc:
            self._problem(node, f"invalid yaml: {exc.problem}")
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "..."
                self._problem(key_node, f"key `{shown}` must be a string (quote it)")
                continue
            key = key_node.value
            if key in out:
                first = self.keys[(*path, key)].start_mark.line + 1
                self._problem(key_node, f"duplicate key `{key}` (first on line {first}); each key may appear once")
                continue
            self.keys[(*path, key)] = key_node
            out[key] = self._build(value_node, (*path, key), depth + 1)
        return out


# --------------------------------------------------------------------------- canonical form


def canonical_json(data: Any) -> bytes:
    """The canonical form: JSON, keys sorted, no whitespace, UTF-8."""
    return msgspec.json.encode(data, order="sorted")


def digest(data: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()


# --------------------------------------------------------------------------- versions


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key of SemVer 2.0.0 precedence: `1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0`.
    Raises ``ValueError`` for a version that is not SemVer."""
    match = SEMVER_RE.match(version)
    if match is None:
        raise ValueError(f"`{version}` is not a semantic version")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


def is_prerelease(version: str) -> bool:
    return "-" in version


# --------------------------------------------------------------------------- listing


def step_tools(skill: Skill) -> Iterator[str]:
    """Every tool the skill could call, in step order (a tool used twice appears twice)."""
    return (step.tool for step in skill.steps)


def skill_is_listable(skill: Skill, allowed: Callable[[str], bool]) -> bool:
    """A skill is listed for a principal only if every step it could run is allowed: each step's
    tool counts, whatever its `if` (invariant 8: skills are no loophole)."""
    return all(allowed(tool) for tool in step_tools(skill))
