"""Skill validation: every problem in a skill file, each as `file:line:column: message`.

One pass over the parsed document (``executor.skill_format.parse_document``) records every
problem in file order rather than stopping at the first:

- the shape: known fields, types, required fields, Agent Skills name rules, SemVer version,
  description and compatibility lengths, reserved metadata keys;
- the input schema: a JSON Schema 2020-12 object (`type: object`), its `properties` and
  `required`, only local `$ref`s, and (when the `jsonschema` package is importable) the
  2020-12 meta-schema;
- the steps: ids (identifiers, unique), tools (`server.tool`, and ``known_tools`` says whether
  each is usable), `on_error`/`retry`;
- the templates in `with`, `if` and `outputs`: they parse, use only allowed statements and
  names, and refer only to declared inputs and to *earlier* steps (outputs may use any step).

``known_tools(name)`` returns None for a tool that is fine, else a reason ("unknown",
"not blessed", "quarantined"). Pass None to skip the tool check.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from executor.skill_format import (
    COMPATIBILITY_MAX,
    DESCRIPTION_MAX,
    MAX_STEPS,
    NAME_MAX,
    NAME_RE,
    ON_ERROR_VALUES,
    RESERVED_METADATA_PREFIX,
    SEMVER_RE,
    STEP_ID_RE,
    TOOL_RE,
    Document,
    Path,
    Problem,
    Skill,
    SkillError,
    SkillInternalError,
    digest,
    parse_document,
)
from executor.skill_templates import DEFAULT_LIMITS, Limits, analyze_template, is_template

KnownTools = Callable[[str], str | None]

_jsonschema: Any
try:  # jsonschema comes with the mcp SDK; without it only the structural checks run
    _jsonschema = importlib.import_module("jsonschema")  # untyped: imported by name
except ImportError:  # pragma: no cover - present in every supported install
    _jsonschema = None

TOP_FIELDS = ("name", "version", "description", "instructions", "license", "compatibility", "metadata",
              "inputs", "steps", "outputs")
REQUIRED_TOP = ("name", "version", "description", "steps")
STEP_FIELDS = ("id", "tool", "with", "if", "on_error", "retry", "description")
RETRY_FIELDS = ("attempts", "backoff_ms")
MAX_ATTEMPTS = 10
MAX_BACKOFF_MS = 60_000
JSON_SCHEMA_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Validated:
    """The outcome for one skill file: the skill when it has no problems."""

    file: str
    document: Document | None
    skill: Skill | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.skill is not None

    @property
    def digest(self) -> str:
        if self.document is None:
            raise ValueError("no document")
        return digest(self.document.data)


def validate_text(text: str, file: str = "<skill>", *, known_tools: KnownTools | None = None,
                  limits: Limits = DEFAULT_LIMITS) -> Validated:
    """Validate one skill given as YAML text. ``file`` is how problems name it."""
    try:
        document, problems = parse_document(text, file)
        if document is None:
            return Validated(file, None, None, sorted(problems))
        problems += _Checker(document, known_tools, limits).run()
        problems = sorted(set(problems))
        skill = Skill.from_data(document.data) if not problems else None
        return Validated(file, document, skill, problems)
    except Exception as exc:  # a bug in here, not a problem of the file: exit status 3
        raise SkillInternalError(f"validating `{file}` failed: {type(exc).__name__}: {exc}") from exc


def validate_file(path: str | FilePath, *, known_tools: KnownTools | None = None) -> Validated:
    file = str(path)
    try:
        text = FilePath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Validated(file, None, None, [Problem(file, 0, 0, "file does not exist")])
    except IsADirectoryError:
        return Validated(file, None, None, [Problem(file, 0, 0, "is a directory; give a skill file")])
    except UnicodeDecodeError as exc:
        return Validated(file, None, None, [Problem(file, 0, 0, f"file is not UTF-8 text ({exc.reason})")])
    except OSError as exc:
        return Validated(file, None, None, [Problem(file, 0, 0, f"cannot read the file: {exc.strerror or exc}")])
    return validate_text(text, file, known_tools=known_tools)


def skill_files(paths: Iterable[str | FilePath]) -> list[FilePath]:
    """The files named, with each directory replaced by its `*.yaml` and `*.yml` files (sorted)."""
    files: list[FilePath] = []
    for path in map(FilePath, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def validate_paths(paths: Iterable[str | FilePath], *, known_tools: KnownTools | None) -> list[Problem]:
    """Every problem of the skill files at ``paths`` (directories: their YAML files), in file
    order. Also refuses two files that define the same name and version differently."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for path in skill_files(paths):
        result = validate_file(path, known_tools=known_tools)
        problems += result.problems
        if result.skill is None or result.document is None:
            continue
        key = (result.skill.name, result.skill.version)
        first = seen.setdefault(key, (result.file, result.digest))
        if first[0] != result.file and first[1] != result.digest:
            problems.append(result.document.problem(
                ("version",), f"skill `{key[0]}` version `{key[1]}` is also defined, differently, in "
                              f"`{first[0]}`; a published version cannot change"))
    return problems


def load_skill(text: str, file: str = "<skill>", *, known_tools: KnownTools | None = None) -> Validated:
    """Validate, raising ``SkillError`` (every problem) unless the skill is valid."""
    result = validate_text(text, file, known_tools=known_tools)
    if not result.ok:
        raise SkillError(result.problems or [Problem(file, 0, 0, "not a skill")])
    return result


# --------------------------------------------------------------------------- the checker

_WORDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
          (list, "a list"), (dict, "a mapping"), (type(None), "null"))


def _kind(value: Any) -> str:
    return next((word for t, word in _WORDS if isinstance(value, t)), "an unsupported value")


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Every string inside ``value`` with its path, in document order."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))


class _Checker:
    def __init__(self, doc: Document, known_tools: KnownTools | None, limits: Limits) -> None:
        self.doc = doc
        self.known_tools = known_tools
        self.limits = limits
        self.problems: list[Problem] = []
        self.input_names: set[str] | None = None
        """Declared input properties; None when the input schema is too broken to tell."""
        self.step_index: dict[str, int] = {}

    def problem(self, path: Path, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, key=key))

    # -- shape helpers

    def fields(self, value: dict[str, Any], path: Path, allowed: tuple[str, ...], required: tuple[str, ...],
               what: str) -> None:
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"; did you mean `{close[0]}`?" if close else "; expected one of " + ", ".join(
                    f"`{f}`" for f in allowed)
                self.problem((*path, name), f"unknown field `{name}` in {what}{hint}", key=True)
        for name in required:
            if name not in value:
                self.problem(path, f"missing required field `{name}` in {what}")

    def expect(self, value: Any, path: Path, kind: type | tuple[type, ...], word: str) -> bool:
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)))
        if not ok:
            hint = ""
            if path == ("version",) and isinstance(value, int | float):
                hint = "; quote it, e.g. `version: \"1.0.0\"`"
            self.problem(path, f"expected {word}, got {_kind(value)}{hint}")
        return ok

    # -- the document

    def run(self) -> list[Problem]:
        data = self.doc.data
        if not isinstance(data, dict):
            self.problem((), f"a skill is a mapping with `name`, `version`, `description` and `steps`; "
                             f"got {_kind(data)}")
            return self.problems
        self.fields(data, (), TOP_FIELDS, REQUIRED_TOP, "a skill")
        if "name" in data:
            self.name(data["name"])
        if "version" in data and self.expect(data["version"], ("version",), str, "a string"):
            self.version(data["version"])
        if "description" in data and self.expect(data["description"], ("description",), str, "a string"):
            if not data["description"].strip():
                self.problem(("description",), "must say what the skill does and when to use it")
            elif len(data["description"]) > DESCRIPTION_MAX:
                self.problem(("description",), f"is {len(data['description'])} characters; at most "
                                               f"{DESCRIPTION_MAX} are allowed")
        for name in ("instructions", "license"):
            if name in data and self.expect(data[name], (name,), str, "a string") and data[name] == "":
                self.problem((name,), f"is empty; leave `{name}` out instead")
        if "compatibility" in data and self.expect(data["compatibility"], ("compatibility",), str, "a string") \
                and len(data["compatibility"]) > COMPATIBILITY_MAX:
            self.problem(("compatibility",), f"is longer than {COMPATIBILITY_MAX} characters")
        if "metadata" in data:
            self.metadata(data["metadata"])
        self.inputs(data.get("inputs", {"type": "object"}), "inputs" in data)
        steps = data.get("steps")
        if "steps" in data:
            self.steps(steps)
        if "outputs" in data and self.expect(data["outputs"], ("outputs",), dict, "a mapping"):
            self.templates(data["outputs"], ("outputs",), before=len(self.step_index) + 1, who="outputs")
        return self.problems

    def name(self, name: Any) -> None:
        if not self.expect(name, ("name",), str, "a string"):
            return
        if len(name) > NAME_MAX or not NAME_RE.match(name):
            self.problem(("name",), f"`{name}` is not a valid skill name; use 1 to {NAME_MAX} lowercase letters, "
                                    "digits and single hyphens, not starting or ending with a hyphen")

    def version(self, version: str) -> None:
        if "+" in version and SEMVER_RE.match(version.split("+", 1)[0]):
            self.problem(("version",), f"`{version}`: build metadata (`+...`) is not allowed; two versions "
                                       "differing only in it would rank equal")
        elif not SEMVER_RE.match(version):
            self.problem(("version",), f"`{version}` is not a semantic version (`MAJOR.MINOR.PATCH`, e.g. "
                                       "`1.0.0` or `1.1.0-rc.1`)")

    def metadata(self, metadata: Any) -> None:
        if not self.expect(metadata, ("metadata",), dict, "a mapping of strings"):
            return
        for key, value in metadata.items():
            if key.startswith(RESERVED_METADATA_PREFIX):
                self.problem(("metadata", key), f"metadata keys starting with `{RESERVED_METADATA_PREFIX}` "
                                                "are reserved for interlock", key=True)
            self.expect(value, ("metadata", key), str, "a string (quote it)")

    # -- the input schema

    def inputs(self, schema: Any, given: bool) -> None:
        path: Path = ("inputs",)
        if not isinstance(schema, dict):
            self.problem(path, f"the input schema must be a JSON Schema object (a mapping with `type: object`), "
                               f"got {_kind(schema)}")
            return
        before = len(self.problems)
        if schema.get("type") != "object":
            where = (*path, "type") if "type" in schema else path
            self.problem(where, "the input schema must have `type: object` (the skill's arguments)")
        if "$schema" in schema and schema["$schema"] != DRAFT_2020_12:
            self.problem((*path, "$schema"), f"input schemas are JSON Schema 2020-12; use `{DRAFT_2020_12}` "
                                             "or leave `$schema` out")
        properties = schema.get("properties", {})
        names: set[str] | None = set()
        if not isinstance(properties, dict):
            self.problem((*path, "properties"), f"expected a mapping of input names to schemas, got "
                                                f"{_kind(properties)}")
            names = None
        else:
            for name, sub in properties.items():
                if not isinstance(sub, dict | bool):
                    self.problem((*path, "properties", name), f"the schema of input `{name}` must be a mapping, "
                                                              f"got {_kind(sub)}")
            names = set(properties)
        required = schema.get("required", [])
        if not isinstance(required, list):
            self.problem((*path, "required"), f"expected a list of input names, got {_kind(required)}")
        else:
            for i, name in enumerate(required):
                if not isinstance(name, str):
                    self.problem((*path, "required", i), f"expected an input name, got {_kind(name)}")
                elif names is not None and name not in names:
                    self.problem((*path, "required", i), f"required input `{name}` is not in `properties`")
        for ref_path, ref in _refs(schema, path):
            if not ref.startswith("#"):
                self.problem(ref_path, f"`$ref` `{ref}` points outside the schema; only local references "
                                       "(`#/$defs/...`) are allowed")
        if _jsonschema is not None:
            self.meta_schema(schema, path, flagged={(p.line, p.column) for p in self.problems[before:]})
        self.input_names = names

    def meta_schema(self, schema: dict[str, Any], path: Path, flagged: set[tuple[int, int]]) -> None:
        assert _jsonschema is not None
        validator_class = _jsonschema.Draft202012Validator
        meta = validator_class(validator_class.META_SCHEMA)
        for error in meta.iter_errors(schema):
            where: Path = (*path, *error.absolute_path)
            if self.doc.position(where) in flagged:
                continue
            if error.validator == "anyOf" and where[-1:] == ("type",):
                shown = ", ".join(f"`{t}`" for t in JSON_SCHEMA_TYPES)
                message = f"`{error.instance}` is not a JSON Schema type; use one of {shown}"
            else:
                message = f"invalid JSON Schema: {error.message}"
            self.problem(where, message)

    # -- steps

    def steps(self, steps: Any) -> None:
        path: Path = ("steps",)
        if not self.expect(steps, path, list, "a list of steps"):
            return
        if not steps:
            self.problem(path, "a skill needs at least one step")
        if len(steps) > MAX_STEPS:
            self.problem(path, f"a skill has at most {MAX_STEPS} steps")
        first_seen: dict[str, int] = {}
        for i, step in enumerate(steps):
            if isinstance(step, dict) and isinstance(step.get("id"), str):
                sid = step["id"]
                if sid in first_seen:
                    line, _ = self.doc.position((*path, first_seen[sid], "id"))
                    self.problem((*path, i, "id"), f"duplicate step id `{sid}` (first on line {line})")
                else:
                    first_seen[sid] = i
        self.step_index = first_seen
        for i, step in enumerate(steps):
            self.step(step, i)

    def step(self, step: Any, i: int) -> None:
        path: Path = ("steps", i)
        if not self.expect(step, path, dict, "a step (a mapping with `id` and `tool`)"):
            return
        self.fields(step, path, STEP_FIELDS, ("id", "tool"), "a step")
        sid = step.get("id")
        if "id" in step and self.expect(sid, (*path, "id"), str, "a string") and not STEP_ID_RE.match(sid):
            self.problem((*path, "id"), f"`{sid}` is not a valid step id; use lowercase letters, digits and `_`, "
                                        "starting with a letter or `_` (templates read `steps.<id>.output`)")
        who = f"step `{sid}`" if isinstance(sid, str) else f"step {i + 1}"
        tool = step.get("tool")
        if "tool" in step and self.expect(tool, (*path, "tool"), str, "a string"):
            if not TOOL_RE.match(tool):
                self.problem((*path, "tool"), f"`{tool}` is not a tool name; write `server.tool`, "
                                              "e.g. `mail.send_reply`")
            elif self.known_tools is not None:
                reason = self.known_tools(tool)
                if reason is not None:
                    self.problem((*path, "tool"), f"tool `{tool}` is {reason}")
        if "with" in step and self.expect(step["with"], (*path, "with"), dict, "a mapping of tool arguments"):
            self.templates(step["with"], (*path, "with"), before=i, who=who)
        if "if" in step and self.expect(step["if"], (*path, "if"), str, "a string `{{ expression }}`"):
            self.condition(step["if"], (*path, "if"), before=i, who=who)
        on_error = step.get("on_error", "fail")
        if "on_error" in step and on_error not in ON_ERROR_VALUES:
            shown = ", ".join(f"`{v}`" for v in ON_ERROR_VALUES)
            self.problem((*path, "on_error"), f"`{on_error}` is not one of {shown}")
        if "retry" in step:
            self.retry(step["retry"], (*path, "retry"), on_error)
        if "description" in step:
            self.expect(step["description"], (*path, "description"), str, "a string")

    def retry(self, retry: Any, path: Path, on_error: Any) -> None:
        if on_error != "retry":
            self.problem(path, "`retry` applies only with `on_error: retry`", key=True)
        if not self.expect(retry, path, dict, "a mapping with `attempts` and `backoff_ms`"):
            return
        self.fields(retry, path, RETRY_FIELDS, (), "`retry`")
        for name, low, high in (("attempts", 1, MAX_ATTEMPTS), ("backoff_ms", 0, MAX_BACKOFF_MS)):
            if name in retry and self.expect(retry[name], (*path, name), int, "an integer") \
                    and not low <= retry[name] <= high:
                self.problem((*path, name), f"must be from {low} to {high}")

    # -- templates

    def condition(self, source: str, path: Path, *, before: int, who: str) -> None:
        before_count = len(self.problems)
        single = self.template(source, path, before=before, who=who)
        if not single and len(self.problems) == before_count:
            self.problem(path, "`if` must be a single `{{ expression }}`, e.g. "
                               "`\"{{ steps.fetch.output.status == 'open' }}\"`")

    def templates(self, value: dict[str, Any], path: Path, *, before: int, who: str) -> None:
        for leaf_path, text in _leaves(value, path):
            if is_template(text):
                self.template(text, leaf_path, before=before, who=who)

    def template(self, source: str, path: Path, *, before: int, who: str) -> bool:
        """Check one template; returns whether it is a single `{{ expression }}`."""
        if not is_template(source):
            return False
        analysis = analyze_template(source, limits=self.limits)
        for issue in analysis.issues:
            self.at(path, issue.line, issue.column, issue.snippet, issue.message)
        for ref in analysis.references:
            if ref.root == "inputs":
                if ref.name is not None and self.input_names is not None and ref.name not in self.input_names:
                    known = ", ".join(f"`{n}`" for n in sorted(self.input_names)) or "none"
                    self.at(path, ref.line, ref.column, ref.snippet,
                            f"unknown input `{ref.name}` (declared inputs: {known})")
                continue
            if ref.name is None:
                continue
            index = self.step_index.get(ref.name)
            if index is None:
                self.at(path, ref.line, ref.column, ref.snippet, f"unknown step `{ref.name}`")
            elif index == before:
                self.at(path, ref.line, ref.column, ref.snippet, f"{who} refers to itself (`steps.{ref.name}`); "
                                                                 "a step sees only earlier steps")
            elif index > before:
                self.at(path, ref.line, ref.column, ref.snippet,
                        f"{who} refers to step `{ref.name}`, which runs later; a step sees only earlier steps")
        return analysis.single_expression

    def at(self, path: Path, line: int, column: int | None, snippet: str, message: str) -> None:
        file_line, file_column = self.doc.locate(path, line, column, snippet)
        self.problems.append(Problem(self.doc.file, file_line, file_column, message))


def _refs(schema: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield (*path, key), value
            else:
                yield from _refs(value, (*path, key))
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _refs(item, (*path, i))
