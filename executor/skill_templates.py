"""Skill templates: Jinja2 expressions in an immutable sandbox, bounded in size and time.

A string value in a step's `with`, a step's `if` and the skill's `outputs` is a template when it
holds `{{`, `{%` or `{#`. Templates see two names::

    inputs                 the skill's arguments (validated against its input schema)
    steps.<id>.output      a finished step's tool result (``step_output``)
    steps.<id>.status      `ok`, `error` or `skipped`
    steps.<id>.error       the error message of a failed step, else none

A string that is exactly one `{{ expression }}` evaluates to the expression's native value
(number, list, mapping, boolean, none); any other template renders to a string. Attribute access
on a mapping reads its item first (`output.items` is the `items` field, not the dict method).

Defences, each enforced here rather than trusted to the author:

- ``ImmutableSandboxedEnvironment``: no `_`-prefixed attributes, no mutation of lists and dicts.
- Methods of strings, lists and mappings are a short allow-list (no `format`, `ljust`, ...).
- Statements are limited to `{% if %}` and (non-recursive) `{% for %}`: no `set`, `macro`,
  `include`, `import`, `call`, `filter`, `with`, `block`.
- Sizes are checked *before* anything large is built: `*`, `+`, `**`, `%`, `~`, and the filters
  and methods that grow text (`center`, `indent`, `join`, `replace`, `format`, `batch`, `slice`,
  `wordwrap`); every intermediate and final value is at most ``Limits.max_value_bytes``.
- Loops share one iteration budget per evaluation; `range` is capped by it.
- Every attribute read, call, operator and loop iteration checks the evaluation's deadline.

Errors (``SkillTemplateError`` and subclasses; all ``InterlockError``)::

    SkillTemplateError     template_error    the template failed: undefined name, type error, ...
    ├── TemplateDeniedError template_denied  the sandbox refused an attribute, method or statement
    └── TemplateLimitError  template_limit   a size, iteration or time limit was reached

Everything here is pure apart from reading a monotonic clock for the deadline.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgspec
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, pass_environment
from jinja2.utils import missing as _MISSING
from jinja2.visitor import NodeTransformer

from executor.errors import InterlockError
from executor.skill_format import Skill, Step


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    max_value_bytes: int = 65_536
    """Largest value one template may produce (UTF-8 bytes of a string, JSON bytes of a value),
    and largest string or list any operation inside it may build."""
    max_iterations: int = 10_000
    """Loop iterations per evaluation, all loops together; also the longest `range`."""
    max_seconds: float = 1.0
    """Time one evaluation may take."""
    max_template_chars: int = 8_192
    """Longest template source."""


DEFAULT_LIMITS = Limits()


class SkillTemplateError(InterlockError):
    code = "template_error"

    def __init__(self, message: str, *, where: str = "", template: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.template = template


class TemplateDeniedError(SkillTemplateError):
    code = "template_denied"


class TemplateLimitError(SkillTemplateError):
    code = "template_limit"


# --------------------------------------------------------------------------- step results


class StepState(msgspec.Struct, frozen=True, kw_only=True):
    """What later templates see of one finished step as `steps.<id>`."""

    output: Any = None
    status: Literal["ok", "error", "skipped"] = "ok"
    error: str | None = None


STEP_ATTRIBUTES = ("output", "status", "error")


def step_output(result: Any) -> Any:
    """The value of a tool result as `steps.<id>.output`: its structured content when present,
    else the parsed JSON of its single text content when that is JSON, else the text (several
    text contents are joined with newlines; non-text content is left out).

    ``result`` is an MCP ``CallToolResult`` as a model (``structured_content``/``content``) or
    as wire JSON (``structuredContent``/``content``)."""
    if isinstance(result, Mapping):
        structured = result.get("structuredContent")
        content = result.get("content") or []
    else:
        structured = getattr(result, "structured_content", None)
        content = getattr(result, "content", None) or []
    if structured is not None:
        return structured
    texts = [_text_of(block) for block in content]
    strings = [t for t in texts if t is not None]
    if len(strings) == 1 and len(content) == 1:
        try:
            return json.loads(strings[0])
        except ValueError:
            return strings[0]
    return "\n".join(strings)


def _text_of(block: Any) -> str | None:
    if isinstance(block, Mapping):
        return block.get("text") if block.get("type") == "text" else None
    return getattr(block, "text", None) if getattr(block, "type", None) == "text" else None


# --------------------------------------------------------------------------- budget


class _LimitExceeded(Exception):
    """Raised inside a template; becomes ``TemplateLimitError`` at the boundary."""


class _Budget:
    __slots__ = ("deadline", "iterations", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.iterations = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitExceeded(f"evaluation took longer than {self.limits.max_seconds:g} s")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise _LimitExceeded(f"loops ran more than {self.limits.max_iterations} iterations")
        self.check()

    def size(self, size: int, what: str = "value") -> None:
        if size > self.limits.max_value_bytes:
            raise _LimitExceeded(f"{what} would be larger than {self.limits.max_value_bytes} bytes")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("interlock_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    return budget if budget is not None else _Budget(DEFAULT_LIMITS)  # outside evaluate(): the defaults


def _sized(value: Any) -> int | None:
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    return None


def _bounded(value: Any) -> Any:
    size = _sized(value)
    if size is not None:
        _budget().size(size)
    return value


# --------------------------------------------------------------------------- the sandbox

_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isdecimal",
    "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "lower", "lstrip", "partition",
    "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper",
})
_ALLOWED_ATTRIBUTES: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _STR_METHODS),  # Markup (from `tojson`, `e`) too: its `center`, `format`, ... stay out
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"count", "index"})),
    (tuple, frozenset({"count", "index", "grouper", "list"})),  # `groupby` yields (grouper, list)
    (int, frozenset()),  # bool too
    (float, frozenset()),
    (type(None), frozenset()),
)
"""Plain data (what inputs and tool results are made of) offers only these attributes."""


def _allowed_attributes(obj: Any) -> frozenset[str] | None:
    """The attributes ``obj`` may offer, or None for objects that are not plain data (loop
    context, cycler: the sandbox's own rules apply)."""
    return next((names for kind, names in _ALLOWED_ATTRIBUTES if isinstance(obj, kind)), None)

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")


def _check_percent_format(fmt: str) -> None:
    """`'%999999999s' % x` would build a gigabyte: refuse `*` and widths over the limit."""
    limit = _budget().limits.max_value_bytes
    for width, precision, _ in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*":
                raise _LimitExceeded("`*` widths are not allowed in `%` formatting")
            if number and int(number) > limit:
                raise _LimitExceeded(f"a `%` format width of {number} is over the limit of {limit}")


def _growth(old: str, new: str, s: str, count: int | None = None) -> int:
    """The length of ``s.replace(old, new, count)``, computed without building it."""
    occurrences = len(s) + 1 if old == "" else s.count(old)
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(s) + occurrences * (len(new) - len(old))


def _joined_size(sep: str, parts: list[str]) -> int:
    return sum(len(p) for p in parts) + len(sep) * max(0, len(parts) - 1)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        allowed = _allowed_attributes(obj)
        return allowed is None or attr in allowed

    def wrap_str_format(self, value: Any) -> None:
        return None  # `format` and `format_map` are not on the allow-list at all

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        return self.undefined(
            f"`{attribute}` of {_kind(obj)} is not available in skill templates",
            name=attribute, obj=obj, exc=SecurityError)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _budget().check()
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]  # data first: `output.items` is the field, not dict.items
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _budget().check()
        if isinstance(argument, str) and _allowed_attributes(obj) is not None:
            if isinstance(obj, dict) and argument in obj:
                return obj[argument]
            return super().getattr(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.check()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str) and isinstance(times, int):
                    budget.size(len(seq) * max(times, 0))
                elif isinstance(seq, list | tuple) and isinstance(times, int):
                    # each copy shares the items: what counts is the size it would have as JSON
                    budget.size(_structure_size(seq) * max(times, 0))
        elif operator == "+":
            if isinstance(left, str) and isinstance(right, str):
                budget.size(len(left) + len(right))
            elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
                budget.size(_structure_size(left) + _structure_size(right))
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                budget.size(left.bit_length() * right // 8, "number")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return _bounded(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.check()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
                count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
                budget.size(_growth(args[0], args[1], owner, count))
            elif name == "join" and args:
                parts = list(args[0])
                budget.size(_joined_size(owner, [p if isinstance(p, str) else "" for p in parts]))
                args = (parts, *args[1:])
        return _bounded(super().call(__context, __obj, *args, **kwargs))


class _Undefined(StrictUndefined):
    """StrictUndefined with messages in our words: "a mapping has no field `x`"."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name, obj = self._undefined_name, self._undefined_obj
        if obj is _MISSING:
            return f"`{name}` is undefined"
        if isinstance(obj, dict):
            return f"{_kind(obj)} has no field `{name}`; use `| default(...)` for an optional one"
        return f"{_kind(obj)} has no {'element' if not isinstance(name, str) else 'attribute'} `{name}`"


_KIND_NAMES: tuple[tuple[type, str], ...] = (
    (str, "a string"), (dict, "a mapping"), (list, "a list"), (tuple, "a list"), (bool, "a boolean"),
    (int, "a number"), (float, "a number"), (type(None), "none"))


def _kind(value: Any) -> str:
    return next((name for kind, name in _KIND_NAMES if isinstance(value, kind)), "this value")


def _json_size(value: Any, limit: int) -> int:
    """About the JSON size of ``value``, raising as soon as it passes ``limit``: a mapping may
    hold one large string many times over, and its JSON must not be built to find out."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            raise _LimitExceeded(f"value would be larger than {limit} bytes")
    return total


def _structure_size(value: Any) -> int:
    return _json_size(value, _budget().limits.max_value_bytes)


def _checked(value: Any) -> Any:
    """A list, tuple or mapping a template builds: items may be shared (`[x, x]`), so one small
    template could nest them into something astronomical when printed; bound its JSON size."""
    _structure_size(value)
    return value


def _finalize(value: Any) -> Any:
    """How a `{{ }}` inside text renders: mappings and lists as JSON, none as nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        _json_size(value, _budget().limits.max_value_bytes)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return value


class _Omit:
    """`omit`: a `with` entry (or list item) whose value is exactly `omit` is left out."""

    def __repr__(self) -> str:
        return "omit"


OMIT = _Omit()


def _dict(**items: Any) -> dict[str, Any]:
    return _checked(items)  # type: ignore[no-any-return]


def _cycler(*items: Any) -> Cycler:
    return Cycler(*_checked(items))


def _joiner(sep: str = ", ") -> Joiner:
    return Joiner(sep)


def _range(*args: int) -> range:
    rng = range(*args)
    limit = _budget().limits.max_iterations
    if len(rng) > limit:
        raise _LimitExceeded(f"`range` of {len(rng)} items is over the limit of {limit}")
    return rng


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.iterate()
        yield item


def _concat(parts: list[Any]) -> str:
    texts = [str(_finalize(p)) for p in parts]  # as `{{ }}` renders; str() of an undefined raises
    _budget().size(sum(len(t) for t in texts))
    return "".join(texts)


def _guard(filter_fn: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    """Run ``check`` on a filter's own arguments (without the context, environment or eval context
    Jinja passes first to some filters) before the filter, and bound its result."""
    skip = 0 if getattr(filter_fn, "jinja_pass_arg", None) is None else 1  # set by @pass_context & co

    @functools.wraps(filter_fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().check()
        check(*args[skip:], **kwargs)
        return _bounded(filter_fn(*args, **kwargs))

    return guarded


def _width_check(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        _budget().size(len(str(value)) + max(width, 0))


def _indent_check(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    text = str(s)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _budget().size(len(text) + (text.count("\n") + 1) * max(pad, 0))


def _replace_check(s: Any, old: Any, new: Any, count: Any = None) -> None:
    if isinstance(old, str) and isinstance(new, str):
        _budget().size(_growth(old, new, str(s), count if isinstance(count, int) else None))


def _format_check(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent_format(str(value))


def _count_check(value: Any, count: Any = 1, fill_with: Any = None, *_: Any, **__: Any) -> None:
    if isinstance(count, int):
        _budget().size(count * (1 + (_structure_size(fill_with) if fill_with is not None else 0)),
                       "batch or slice")


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0) -> Any:
    items: Iterable[Any] = iterable
    if attribute is not None:
        items = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in _loop(items):
        if isinstance(total, str | list | tuple) and isinstance(item, str | list | tuple):
            _budget().size(_structure_size(total) + _structure_size(item))
        total = total + item
    return total


def _wordwrap_check(s: Any, width: Any = 79, break_long_words: Any = True,
                    wrapstring: Any = None, *_: Any, **__: Any) -> None:
    if isinstance(wrapstring, str) and isinstance(width, int) and width > 0:
        text = str(s)
        _budget().size(len(text) + (len(text) // width + text.count("\n") + 1) * len(wrapstring))


@pass_environment
def _join(environment: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items: Iterable[Any] = value
    if attribute is not None:
        items = map(make_attrgetter(environment, attribute), value)
    parts = [_finalize(item) if not isinstance(item, str) else item for item in _loop(items)]
    texts = [str(p) for p in parts]
    sep = str(d)
    _budget().size(_joined_size(sep, texts))
    return sep.join(texts)


def _filters() -> dict[str, Any]:
    filters = dict(FILTERS)
    del filters["random"]  # not deterministic
    filters["center"] = _guard(FILTERS["center"], _width_check)
    filters["indent"] = _guard(FILTERS["indent"], _indent_check)
    filters["replace"] = _guard(FILTERS["replace"], _replace_check)
    filters["format"] = _guard(FILTERS["format"], _format_check)
    filters["batch"] = _guard(FILTERS["batch"], _count_check)
    filters["slice"] = _guard(FILTERS["slice"], _count_check)
    filters["wordwrap"] = _guard(FILTERS["wordwrap"], _wordwrap_check)
    filters["join"] = _join
    filters["sum"] = _sum
    filters[_VALUE_FILTER] = _checked
    filters[_LOOP_FILTER] = _loop
    filters[_CONCAT_FILTER] = _concat
    return filters


# Names with a space cannot be written in a template: only the rewriting below uses them.
_LOOP_FILTER = "interlock loop"
_CONCAT_FILTER = "interlock concat"
_VALUE_FILTER = "interlock value"


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=_Undefined, autoescape=False, finalize=_finalize, optimized=False,
                   keep_trailing_newline=False, auto_reload=False, cache_size=0)
    env.filters = _filters()
    for name in ("lipsum", "namespace"):
        env.globals.pop(name, None)
    # Functions rather than the classes Jinja offers: a class has attributes (`dict.fromkeys`).
    env.globals.update(range=_range, dict=_dict, cycler=_cycler, joiner=_joiner)
    env.globals["omit"] = OMIT
    return env


_ENV = _make_env()
TEMPLATE_NAMES = frozenset({"inputs", "steps", "loop", *_ENV.globals})
"""Every name a template may read (besides its own loop variables)."""


# --------------------------------------------------------------------------- parsing and analysis

_ALLOWED_STATEMENTS = (nodes.Template, nodes.Output, nodes.If, nodes.For)
_STATEMENT_TAGS = {
    nodes.Assign: "set", nodes.AssignBlock: "set", nodes.Macro: "macro", nodes.CallBlock: "call",
    nodes.FilterBlock: "filter", nodes.With: "with", nodes.Block: "block", nodes.Include: "include",
    nodes.Import: "import", nodes.FromImport: "from", nodes.Extends: "extends",
    nodes.Scope: "scope", nodes.ExprStmt: "do",
}
_DENIED_EXPRESSIONS = (nodes.NSRef, nodes.ImportedName, nodes.InternalName, nodes.ContextReference,
                       nodes.DerivedContextReference)


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value or "{#" in value


class Issue(NamedTuple):
    """A problem inside one template: ``line`` counts from 1, ``column`` from 0 (None: unknown)."""

    line: int
    column: int | None
    message: str
    snippet: str = ""


class Reference(NamedTuple):
    """`inputs.<name>` or `steps.<name>.<attribute>` where the template reads it."""

    root: Literal["inputs", "steps"]
    name: str | None
    """None for `inputs` read as a whole (or by a computed key)."""
    attribute: str | None
    line: int
    column: int | None
    snippet: str


@dataclass(frozen=True)
class Analysis:
    single_expression: bool
    """The template is exactly one `{{ expression }}`: it evaluates to a native value."""
    references: list[Reference]
    issues: list[Issue]


def analyze_template(source: str, *, limits: Limits = DEFAULT_LIMITS) -> Analysis:
    """Check one template without running it: syntax, allowed statements and names, filters that
    exist, and every `inputs.X` / `steps.Y...` it reads (for the caller to check)."""
    if len(source) > limits.max_template_chars:
        return Analysis(False, [], [Issue(1, None, f"template is longer than {limits.max_template_chars} characters")])
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return Analysis(False, [], [Issue(exc.lineno or 1, None, f"template does not parse: {exc.message}")])
    lines = source.splitlines() or [""]
    issues = _structure_issues(ast, lines)
    refs, name_issues = _references(ast, lines)
    issues += name_issues
    if not issues:
        try:
            _ENV.compile(_rewrite(ast, _ENV))
        except TemplateSyntaxError as exc:  # an unknown filter or test
            issues.append(Issue(exc.lineno or 1, None, f"template does not compile: {exc.message}"))
    return Analysis(_single_expression(ast) is not None, refs, issues)


def _structure_issues(ast: nodes.Template, lines: list[str] | None = None) -> list[Issue]:
    issues = []
    for node in ast.find_all(nodes.Node):
        if isinstance(node, nodes.Stmt) and not isinstance(node, _ALLOWED_STATEMENTS):
            tag = _STATEMENT_TAGS.get(type(node), type(node).__name__.lower())
            issues.append(Issue(node.lineno, None, f"`{{% {tag} %}}` is not allowed in skill templates; "
                                                   "use expressions, `{% if %}` and `{% for %}`"))
        elif isinstance(node, nodes.For) and node.recursive:
            issues.append(Issue(node.lineno, None, "recursive loops are not allowed in skill templates"))
        elif isinstance(node, nodes.Getattr | nodes.Getitem) and _private(node):
            name = node.attr if isinstance(node, nodes.Getattr) else node.arg.as_const()
            column, snippet = _locate(lines or [], node.lineno, re.escape(str(name)))
            issues.append(Issue(node.lineno, column, f"`{name}` is not available in skill templates "
                                                     "(names starting with `_` are internal)", snippet))
        elif isinstance(node, _DENIED_EXPRESSIONS):
            issues.append(Issue(node.lineno, None, "this expression is not allowed in skill templates"))
    return issues


def _private(node: nodes.Getattr | nodes.Getitem) -> bool:
    if isinstance(node, nodes.Getattr):
        return str(node.attr).startswith("_")
    return isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) and node.arg.value.startswith("_")


def _locate(lines: list[str], lineno: int, pattern: str) -> tuple[int | None, str]:
    if not 1 <= lineno <= len(lines):
        return None, ""
    match = re.search(pattern, lines[lineno - 1])
    return (match.start(), match.group(0)) if match else (None, "")


def _key(parent: nodes.Node | None, node: nodes.Node) -> str | None:
    """The constant key read from ``node`` by ``parent`` (`x.key` or `x['key']`), if any."""
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        return str(parent.attr)
    if (isinstance(parent, nodes.Getitem) and parent.node is node and isinstance(parent.arg, nodes.Const)
            and isinstance(parent.arg.value, str)):
        return parent.arg.value
    return None


def _references(ast: nodes.Template, lines: list[str]) -> tuple[list[Reference], list[Issue]]:
    refs: list[Reference] = []
    issues: list[Issue] = []
    bound = {n.name for loop in ast.find_all(nodes.For)
             for n in (loop.target, *loop.target.find_all(nodes.Name)) if isinstance(n, nodes.Name)}
    if isinstance(ast, nodes.Name):  # pragma: no cover - a Template is never a Name
        return refs, issues

    def visit(node: nodes.Node, chain: tuple[nodes.Node, ...]) -> None:
        if isinstance(node, nodes.Name) and node.ctx == "load":
            name = node.name
            parent = chain[-1] if chain else None
            grandparent = chain[-2] if len(chain) > 1 else None
            if name in bound and name not in ("inputs", "steps"):
                pass
            elif name in ("inputs", "steps") and (_key(parent, node) or "").startswith("_"):
                pass  # reported as an internal name by _structure_issues
            elif name == "inputs":
                key = _key(parent, node)
                pattern = (rf"inputs\s*(?:\.\s*{re.escape(key)}\b|\[\s*['\"]{re.escape(key)}['\"]\s*\])"
                           if key else r"\binputs\b")
                column, snippet = _locate(lines, node.lineno, pattern)
                refs.append(Reference("inputs", key, None, node.lineno, column, snippet))
            elif name == "steps":
                key = _key(parent, node)
                pattern = (rf"steps\s*(?:\.\s*{re.escape(key)}\b|\[\s*['\"]{re.escape(key)}['\"]\s*\])"
                           if key else r"\bsteps\b")
                column, snippet = _locate(lines, node.lineno, pattern)
                if key is None:
                    issues.append(Issue(node.lineno, column, "refer to a step by its id: `steps.<id>.output`",
                                        snippet))
                else:
                    assert parent is not None
                    attribute = _key(grandparent, parent)
                    if attribute not in STEP_ATTRIBUTES:
                        shown = f"`steps.{key}.{attribute}`" if attribute else f"`steps.{key}` alone"
                        issues.append(Issue(node.lineno, column, f"{shown} is not a value; use "
                                            f"`steps.{key}.output`, `.status` or `.error`", snippet))
                    refs.append(Reference("steps", key, attribute, node.lineno, column, snippet))
            elif name not in TEMPLATE_NAMES:
                column, snippet = _locate(lines, node.lineno, rf"\b{re.escape(name)}\b")
                issues.append(Issue(node.lineno, column, f"unknown name `{name}`; templates read `inputs` "
                                                         "and `steps.<id>.output`", snippet))
        for child in node.iter_child_nodes():
            visit(child, (*chain, node))

    visit(ast, ())
    return refs, issues


def _single_expression(ast: nodes.Template) -> nodes.Expr | None:
    if len(ast.body) == 1 and isinstance(ast.body[0], nodes.Output):
        parts = ast.body[0].nodes
        if len(parts) == 1 and not isinstance(parts[0], nodes.TemplateData):
            expr = parts[0]
            return expr if isinstance(expr, nodes.Expr) else None
    return None


class _Rewriter(NodeTransformer):
    """`a ~ b` → bounded concatenation; `[...]`, `(...)`, `{...}` → bounded structures;
    `for x in xs` → `xs` counted against the loop budget."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, _CONCAT_FILTER, [], [], None, None, lineno=node.lineno)

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _VALUE_FILTER, [], [], None, None, lineno=node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":  # `for a, b in ...` assigns to a tuple of names
            return self.generic_visit(node)
        return self._literal(node)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node


def _rewrite(ast: nodes.Template, env: _Sandbox) -> nodes.Template:
    rewritten = _Rewriter().visit(ast)
    assert isinstance(rewritten, nodes.Template)
    rewritten.set_environment(env)
    return rewritten


@dataclass(frozen=True)
class _Compiled:
    source: str
    native: bool
    template: Any
    """A ``jinja2.Template``: for a native template it assigns the value to `result`."""


@functools.lru_cache(maxsize=2048)
def _compile(source: str, max_template_chars: int) -> _Compiled:
    if len(source) > max_template_chars:
        raise TemplateLimitError(f"template is longer than {max_template_chars} characters", template=source)
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise SkillTemplateError(f"template does not parse: {exc.message}", template=source) from exc
    problems = _structure_issues(ast)
    if problems:
        raise TemplateDeniedError(problems[0].message, template=source)
    expr = _single_expression(ast)
    if expr is not None:
        target = nodes.Name("result", "store", lineno=expr.lineno)
        ast = nodes.Template([nodes.Assign(target, expr, lineno=expr.lineno)], lineno=1)
    try:
        template = _ENV.from_string(_rewrite(ast, _ENV))
    except TemplateSyntaxError as exc:
        raise SkillTemplateError(f"template does not compile: {exc.message}", template=source) from exc
    return _Compiled(source, expr is not None, template)


# --------------------------------------------------------------------------- evaluation


def template_context(inputs: Mapping[str, Any], steps: Mapping[str, StepState]) -> dict[str, Any]:
    """The names templates see, as plain data."""
    return {
        "inputs": dict(inputs),
        "steps": {sid: {"output": s.output, "status": s.status, "error": s.error} for sid, s in steps.items()},
    }


def _shown(source: str) -> str:
    flat = " ".join(source.split())
    return f"`{flat if len(flat) <= 80 else flat[:77] + '...'}`"


@contextlib.contextmanager
def _evaluation(limits: Limits) -> Iterator[_Budget]:
    budget = _Budget(limits)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _run(source: str, variables: dict[str, Any], limits: Limits, where: str) -> Any:
    compiled = _compile(source, limits.max_template_chars)
    label = f"{where}: {_shown(source)}" if where else _shown(source)
    try:
        if compiled.native:
            context = compiled.template.new_context(variables)
            for _ in compiled.template.root_render_func(context):
                pass
            value = context.vars["result"]
            if isinstance(value, Undefined):
                str(value)  # raises the undefined's own error (StrictUndefined)
            return value
        size = 0
        chunks = []
        for chunk in compiled.template.generate(variables):
            size += len(chunk.encode())
            if size > limits.max_value_bytes:
                raise _LimitExceeded(f"rendered text is larger than {limits.max_value_bytes} bytes")
            chunks.append(chunk)
        return "".join(chunks)
    except SkillTemplateError:
        raise
    except _LimitExceeded as exc:
        raise TemplateLimitError(str(exc), where=label, template=source) from exc
    except (MemoryError, RecursionError, OverflowError) as exc:
        raise TemplateLimitError(f"too large to evaluate ({exc})", where=label, template=source) from exc
    except SecurityError as exc:
        raise TemplateDeniedError(exc.message or "denied by the sandbox", where=label, template=source) from exc
    except UndefinedError as exc:
        raise SkillTemplateError(exc.message or "undefined", where=label, template=source) from exc
    except TemplateError as exc:
        raise SkillTemplateError(exc.message or "template failed", where=label, template=source) from exc
    except Exception as exc:  # anything the expression itself raised (1/0, 'a' + 1, ...)
        raise SkillTemplateError(str(exc) or "template failed", where=label, template=source) from exc


def _to_json(value: Any, limits: Limits, label: str, source: str, depth: int = 0) -> Any:
    """A native value as JSON data (lists for tuples, ranges and generators); refuses the rest."""
    if depth > 64:
        raise TemplateLimitError("value is nested deeper than 64 levels", where=label, template=source)
    if isinstance(value, Undefined):
        _guarded_items([value], label, source, str)  # raises the undefined's own error
    if value is None or isinstance(value, bool | int | str):
        return str(value) if type(value) is not str and isinstance(value, str) else value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SkillTemplateError(f"`{value}` is not a finite number", where=label, template=source)
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SkillTemplateError(f"mapping key `{key}` is not a string", where=label, template=source)
            out[key] = _to_json(item, limits, label, source, depth + 1)
        return out
    if isinstance(value, list | tuple | range) or type(value).__name__ in ("generator", "map", "filter"):
        return [_to_json(item, limits, label, source, depth + 1) for item in _guarded_items(value, label, source)]
    if isinstance(value, Mapping | Iterable) and type(value).__name__.startswith("dict_"):
        return [_to_json(item, limits, label, source, depth + 1) for item in value]
    raise SkillTemplateError(f"evaluates to {type(value).__name__}, which is not a JSON value",
                             where=label, template=source)


def _guarded_items(value: Iterable[Any], label: str, source: str, each: Callable[[Any], Any] = lambda x: x
                   ) -> list[Any]:
    """Materialise a lazy value (a generator from `map`, ...): its items run template code."""
    try:
        return [each(item) for item in value]
    except SkillTemplateError:
        raise
    except _LimitExceeded as exc:
        raise TemplateLimitError(str(exc), where=label, template=source) from exc
    except SecurityError as exc:
        raise TemplateDeniedError(exc.message or "denied by the sandbox", where=label, template=source) from exc
    except UndefinedError as exc:
        raise SkillTemplateError(exc.message or "undefined", where=label, template=source) from exc
    except Exception as exc:
        raise SkillTemplateError(str(exc) or "template failed", where=label, template=source) from exc


class _Evaluator:
    def __init__(self, variables: dict[str, Any], limits: Limits) -> None:
        self.variables = variables
        self.limits = limits

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            return self.string(value, where)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                evaluated = self.value(item, f"{where}.{key}" if where else key)
                if evaluated is not OMIT:
                    out[key] = evaluated
            return out
        if isinstance(value, list):
            items = (self.value(item, f"{where}[{i}]") for i, item in enumerate(value))
            return [item for item in items if item is not OMIT]
        return value

    def string(self, source: str, where: str) -> Any:
        if not is_template(source):
            return source
        raw = _run(source, self.variables, self.limits, where)
        if raw is OMIT:
            return OMIT
        label = f"{where}: {_shown(source)}" if where else _shown(source)
        value = _to_json(raw, self.limits, label, source)
        try:
            _json_size(value, self.limits.max_value_bytes)
        except _LimitExceeded as exc:
            raise TemplateLimitError(str(exc), where=label, template=source) from exc
        try:
            size = len(msgspec.json.encode(value))
        except (OverflowError, msgspec.EncodeError) as exc:
            raise TemplateLimitError(f"value cannot be encoded ({exc})", where=label, template=source) from exc
        if size > self.limits.max_value_bytes:
            raise TemplateLimitError(f"value is {size} bytes, over the limit of {self.limits.max_value_bytes}",
                                     where=label, template=source)
        return value


def evaluate(value: Any, inputs: Mapping[str, Any], steps: Mapping[str, StepState], *,
             limits: Limits = DEFAULT_LIMITS, where: str = "") -> Any:
    """Evaluate every template in ``value`` (a string, or mappings and lists holding strings),
    within one budget of ``limits``. Entries whose value is `omit` are dropped. Raises
    ``SkillTemplateError`` (or a subclass) naming ``where`` and the template."""
    with _evaluation(limits):
        return _Evaluator(template_context(inputs, steps), limits).value(value, where)


def step_arguments(step: Step, inputs: Mapping[str, Any], steps: Mapping[str, StepState], *,
                   limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The arguments of ``step``'s tool call: its `with`, evaluated."""
    result = evaluate(step.with_, inputs, steps, limits=limits, where=f"step `{step.id}` with")
    assert isinstance(result, dict)
    return result


def step_condition(step: Step, inputs: Mapping[str, Any], steps: Mapping[str, StepState], *,
                   limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether ``step`` runs: its `if` evaluated (a step without `if` always runs). The value
    counts as true as in Python: `false`, none, 0, empty text, lists and mappings are false."""
    if step.if_ is None:
        return True
    return bool(evaluate(step.if_, inputs, steps, limits=limits, where=f"step `{step.id}` if"))


def skill_outputs(skill: Skill, inputs: Mapping[str, Any], steps: Mapping[str, StepState], *,
                  limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The skill's result: its `outputs`, evaluated once every step has finished or was skipped."""
    result = evaluate(skill.outputs, inputs, steps, limits=limits, where="outputs")
    assert isinstance(result, dict)
    return result
