"""The declarative config file: typed, validated once, every problem listed with its path.

One YAML file holds identity (trusted issuers), upstream servers and gateways
(agents bound to each, with the tool patterns each agent may use). It is
validated into the msgspec structs below; ``load_config`` reports *every*
problem at once, each prefixed with its path in the file, e.g.
``gateways[1].agents.cursor[0]: unknown tool pattern `jira.```.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import typing
import urllib.parse
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import yaml

from executor.errors import ConfigError
from executor.idp.passwords import hash_problem
from executor.idp.redirects import is_loopback_host, redirect_uri_problem

# Tool patterns are `server.tool` globs: `mail.*`, `mail.read_*`, `*.search`.
# Server names are what the exposed `server.tool` names are prefixed with.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

ANNOTATION_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
"""The MCP ToolAnnotations hints a policy rule may match."""

DEFAULT_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    """Base URL agents reach us at; a gateway's resource URI (the token audience) is
    ``{public_url}/mcp/{gateway}``. Defaults to ``http://{host}:{port}``."""
    database: str = "interlock.db"
    dev_mode: bool = False
    sync_interval_seconds: float = 300.0
    """How often blessed upstreams are re-synced to catch drift (0 = only at start and on demand)."""

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class IssuerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    issuer: str
    jwks_uri: str | None = None
    """Skip discovery and read keys from here."""
    algorithms: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    leeway_seconds: int = 30
    preset: Preset = "generic"
    """How this issuer's claims map to (agent, user, permissions): see executor/claims.py."""
    login_client_id: str | None = None
    """Interlock's own client at this issuer, used when a user must prove who they are before a
    third-party connection is made (`/connect`). Not needed for the embedded issuer."""
    login_client_secret_env: str | None = None
    """Environment variable holding that client's secret, if it is confidential."""


Preset = typing.Literal["generic", "entra", "okta", "keycloak", "salesforce"]


class UserConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A user of the embedded issuer (dev and small installs; production uses an outside IdP)."""

    username: str
    password_hash: str
    """`scrypt$...` as printed by `interlock users hash-password`; never a plain password."""
    claims: dict[str, typing.Any] = msgspec.field(default_factory=dict)
    """Extra claims carried in this user's tokens, e.g. `{roles: [Mail.Read], groups: [support]}`."""


class ClientConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """An agent registered with the embedded issuer."""

    client_id: str
    name: str = ""
    redirect_uris: list[str] = msgspec.field(default_factory=list)
    secret_env: str | None = None
    """Name of the environment variable holding this client's secret (confidential client)."""
    secret_file: str | None = None
    """Path of a file holding this client's secret (confidential client)."""
    grant_types: list[str] = msgspec.field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scopes: list[str] = msgspec.field(default_factory=list)
    """Scopes this client may ask for; empty means any scope the issuer knows."""


class EmbeddedIssuerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The OAuth 2.1 issuer built into Interlock, served at `{public_url}/idp` and trusted automatically."""

    enabled: bool = False
    users: list[UserConfig] = msgspec.field(default_factory=list)
    clients: list[ClientConfig] = msgspec.field(default_factory=list)
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "offline_access", "actions:destructive"])
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 2_592_000
    client_metadata_documents: bool = True
    """Accept an https URL as `client_id` (a client ID metadata document); http on loopback in dev mode only."""


class UserGrant(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The user side: one identity-provider permission and the tools it grants.

    Exactly one of `role`, `group`, `permission` (Salesforce custom permission or permission set)."""

    role: str | None = None
    group: str | None = None
    permission: str | None = None
    issuer: str | None = None
    """Only for tokens from this issuer; default: any trusted issuer."""
    tools: list[str] = msgspec.field(default_factory=list)


class AdminConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Who may curate: a user holding this role or group, acting through one of these clients."""

    role: str | None = None
    group: str | None = None
    clients: list[str] = msgspec.field(default_factory=list)


class IdentityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    issuers: list[IssuerConfig] = msgspec.field(default_factory=list)
    embedded: EmbeddedIssuerConfig = msgspec.field(default_factory=EmbeddedIssuerConfig)
    user_grants: list[UserGrant] = msgspec.field(default_factory=list)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)


class PolicyRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A rule that can only take away: deny outright, or demand a token scope (step-up).

    It matches a call when every given condition holds: the tool matches one of `tools`, the
    tool's annotations (with the MCP defaults applied) equal `annotations`, and the agent and
    gateway are among `agents` / `gateways` when those are given."""

    tools: list[str] = msgspec.field(default_factory=lambda: ["*.*"])
    annotations: dict[str, bool] = msgspec.field(default_factory=dict)
    agents: list[str] = msgspec.field(default_factory=list)
    gateways: list[str] = msgspec.field(default_factory=list)
    deny: bool = False
    require_scope: str | None = None
    description: str = ""


class PolicyConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    rules: list[PolicyRule] = msgspec.field(default_factory=list)


class UpstreamConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    url: str | None = None
    """A streamable-HTTP MCP endpoint."""
    command: list[str] | None = None
    """A stdio MCP server: argv of the process to start."""
    env: dict[str, str] = msgspec.field(default_factory=dict)
    timeout_seconds: float = 30.0
    """Longest a single upstream request may take before it becomes a tool error."""
    connect_timeout_seconds: float = 10.0
    provider: str | None = None
    """The provider whose token this upstream needs, held per (agent, user, provider)."""
    scopes: list[str] = msgspec.field(default_factory=list)
    """Provider scopes every tool of this upstream needs."""
    tool_scopes: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Extra provider scopes per tool (the upstream's own tool name)."""


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    description: str = ""
    agents: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """agent id (OAuth client_id) -> tool patterns that agent may use on this gateway."""
    skills: list[str] = msgspec.field(default_factory=list)
    """Skill name patterns this gateway exposes (`reply-*`, `*`). A skill is listed and runnable
    only where every step it could run is allowed for the caller."""
    record_arguments: bool = False
    """Audit the raw tool arguments (minus `redact_fields`) instead of only their digest."""
    redact_fields: list[str] = msgspec.field(default_factory=list)
    """Argument field names replaced by `[redacted]` in the audit when `record_arguments` is on."""


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A third-party OAuth 2.1 authorization server; Interlock is its client."""

    name: str
    issuer: str | None = None
    """Discover the endpoints from `{issuer}/.well-known/oauth-authorization-server` (RFC 8414)."""
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    revocation_endpoint: str | None = None
    client_id: str
    client_secret_env: str | None = None
    """Environment variable holding the client secret (never the secret itself in this file)."""
    client_secret_file: str | None = None
    """File holding the client secret."""
    scopes: list[str] = msgspec.field(default_factory=list)
    """Scopes asked for on every authorization."""
    resource: str | None = None
    """RFC 8707 resource to ask tokens for (usually the upstream's MCP URL)."""
    refresh_ahead_seconds: int = 60
    """Refresh a token this long before it expires."""


class VaultConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Where the keys that encrypt connections (AES-GCM) come from."""

    key_env: str = "INTERLOCK_VAULT_KEYS"
    """Environment variable with `kid:base64key[,kid:base64key...]`; the first key encrypts, all decrypt."""
    key_file: str | None = None
    """Or a file with one `kid:base64key` per line, first line encrypts. With neither set, a key file is
    generated beside the database (development only)."""


class AuditConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The audit trail: append-only, hash-chained, with signed checkpoints."""

    database: str = "interlock-audit.db"
    """Where events are kept (SQLite), relative to the working folder."""
    checkpoint_every: int = 1000
    """Write a signed checkpoint after this many events."""
    signing_key_file: str | None = None
    """PEM file of the Ed25519 key that signs checkpoints; generated beside the database if absent."""
    retention_days: int = 0
    """Delete segments older than this, only ever up to a checkpoint (0 keeps everything)."""


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    identity: IdentityConfig = msgspec.field(default_factory=IdentityConfig)
    upstreams: list[UpstreamConfig] = msgspec.field(default_factory=list)
    gateways: list[GatewayConfig] = msgspec.field(default_factory=list)
    policy: PolicyConfig = msgspec.field(default_factory=PolicyConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
    providers: list[ProviderConfig] = msgspec.field(default_factory=list)
    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)


# --------------------------------------------------------------------------- loading

_NAME_RE = re.compile(NAME_PATTERN)
_TOOL_GLOB_RE = re.compile(r"[A-Za-z0-9_.*-]+")
_RESERVED_SERVER_NAMES = frozenset({"skill"})
"""`skill.<name>` is how skills are exposed as tools, so no upstream may be called `skill`."""

_TYPE_WORDS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "array": "list",
    "object": "mapping",
    "null": "null",
    "datetime": "date and time",
    "date": "date",
    "time": "time",
}


def load_config(path: str | Path, *, known_servers: Iterable[str] | None = ()) -> Config:
    """Read and validate the config file at ``path``.

    Raises ``ConfigError`` listing every problem found, each prefixed with its path in the
    file. ``known_servers`` are server names that exist outside the file (blessed with the
    CLI); tool patterns may name them. ``None`` accepts any server name in tool patterns (for
    callers that only learn the blessed servers from the store that the config points at;
    they then call ``check_tool_patterns``).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"file `{source}` does not exist"], source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"file `{source}` is not UTF-8 text ({exc.reason})"], source=source) from exc
    except OSError as exc:
        raise ConfigError([f"cannot read `{source}`: {exc.strerror or exc}"], source=source) from exc
    return parse_config(text, source, known_servers=known_servers)


def parse_config(text: str, source: str = "config", *, known_servers: Iterable[str] | None = ()) -> Config:
    """Validate YAML ``text`` into a ``Config``; see ``load_config``."""
    data = _parse_yaml(text, source)
    if data is None:
        data = {}
    problems = _Validator(data, known_servers).run()
    if problems:
        raise ConfigError(problems, source=source)
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:  # the piecewise checks should have caught this
        raise ConfigError([_translate(str(exc), "")], source=source) from exc


def default_config() -> Config:
    """The built-in config: one gateway, `default`, no upstreams and no issuers."""
    text = resources.files("registry").joinpath("default_config.yaml").read_text(encoding="utf-8")
    return parse_config(text, "built-in default config")


def check_tool_patterns(config: Config, known_servers: Iterable[str] = ()) -> list[str]:
    """Problems with the tool patterns of ``config``'s gateways, given the servers that exist
    (the file's upstreams plus ``known_servers``). Empty when every pattern is valid."""
    servers = {u.name for u in config.upstreams} | set(known_servers)
    places: list[tuple[str, list[str]]] = [
        (_join(f"gateways[{i}].agents", agent), patterns)
        for i, gateway in enumerate(config.gateways) for agent, patterns in gateway.agents.items()]
    places += [(f"identity.user_grants[{i}].tools", g.tools) for i, g in enumerate(config.identity.user_grants)]
    places += [(f"policy.rules[{i}].tools", r.tools) for i, r in enumerate(config.policy.rules)]
    return [f"{path}[{j}]: {problem}" for path, patterns in places for j, pattern in enumerate(patterns)
            if (problem := _pattern_problem(pattern, servers))]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a tool pattern `server.tool` into a regex over exposed names `server.tool`.

    Only `*` is special. In the server part (before the first `.`) `*` matches any one
    server name: `*.search` matches `mail.search` but not `mail.x.search`. In the tool part `*`
    matches any run of characters, dots included: `mail.*` matches `mail.read` and
    `mail.read.x`; `mail.read_*` matches `mail.read_inbox`. Matching is case-sensitive and
    anchored at both ends. Raises ``ValueError`` for a pattern that is not `server.tool`, or
    whose server part mixes `*` with other characters (`m*l.read`).
    """
    server, dot, tool = pattern.partition(".")
    if not dot or not server or not tool or ("*" in server and server != "*"):
        raise ValueError(f"tool pattern `{pattern}` is not of the form `server.tool`")
    server_re = "[^.]+" if server == "*" else re.escape(server)
    tool_re = ".*".join(re.escape(part) for part in tool.split("*"))
    return re.compile(rf"\A{server_re}\.{tool_re}\Z")


# --------------------------------------------------------------------------- yaml


def _construct_unique_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
    """Build a mapping, refusing duplicate keys instead of keeping the last one: a second
    `agents:` silently replacing the first would change who may do what."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: the base class reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key `{key}`; each key may appear only once", key_node.start_mark
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


# Built with type() so the module type-checks with and without the PyYAML stubs.
_UniqueKeyLoader: Any = type(
    "_UniqueKeyLoader", (yaml.SafeLoader,), {"construct_mapping": _construct_unique_mapping}
)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid yaml"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError([f"{where}invalid yaml: {problem}"], source=source) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid yaml: {exc}"], source=source) from exc


# --------------------------------------------------------------------------- validation

_INVALID: Any = object()
"""Stands in for a value that did not validate (its problem is already recorded)."""


class _Validator:
    """One pass over the parsed YAML that records every problem, in file order.

    msgspec stops at the first error, so structs, lists and dicts are walked here and only
    the leaves go through ``msgspec.convert``. After each struct-shaped mapping is walked,
    its semantic check runs over the fields that did validate (the others are ``_INVALID``),
    so one bad field does not hide the problems of its neighbours.
    """

    def __init__(self, data: Any, known_servers: Iterable[str] | None) -> None:
        self.data = data
        self.problems: list[str] = []
        top = data if isinstance(data, dict) else {}
        server = top.get("server")
        self.dev_mode = isinstance(server, dict) and server.get("dev_mode") is True
        # Upstream names are read from the raw items, so an upstream with an unrelated problem
        # does not also make every tool pattern naming it "unknown".
        upstreams = top.get("upstreams")
        declared = {
            u["name"]
            for u in (upstreams if isinstance(upstreams, list) else [])
            if isinstance(u, dict) and isinstance(u.get("name"), str)
        }
        self.servers = None if known_servers is None else declared | set(known_servers)
        self.seen: dict[str, dict[str, str]] = {"issuer": {}, "upstream": {}, "gateway": {}, "provider": {}}
        self.seen.update(user={}, client={})
        self.checks = {
            ServerConfig: self._server,
            IssuerConfig: self._issuer,
            UpstreamConfig: self._upstream,
            GatewayConfig: self._gateway,
            UserGrant: self._user_grant,
            AdminConfig: self._admin,
            PolicyRule: self._rule,
            UserConfig: self._embedded_user,
            ClientConfig: self._embedded_client,
            EmbeddedIssuerConfig: self._embedded,
            ProviderConfig: self._provider,
            AuditConfig: self._audit,
        }

    def run(self) -> list[str]:
        self._walk(self.data, Config, "")
        self._cross_check()
        return self.problems

    def _cross_check(self) -> None:
        """References between sections, once every section has been read."""
        upstreams = self.data.get("upstreams") if isinstance(self.data, dict) else None
        providers = set(self.seen["provider"])
        for i, up in enumerate(upstreams if isinstance(upstreams, list) else []):
            provider = up.get("provider") if isinstance(up, dict) else None
            if isinstance(provider, str) and provider not in providers:
                self._problem(f"upstreams[{i}].provider", f"no provider named `{provider}`; declare it under "
                                                          "`providers`")

    def _problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def _walk(self, value: Any, tp: Any, path: str) -> Any:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self._walk_struct(value, tp, path)
        origin = typing.get_origin(tp)
        if origin is list and isinstance(value, list):
            (item_type,) = typing.get_args(tp)
            return [self._walk(item, item_type, f"{path}[{i}]") for i, item in enumerate(value)]
        if origin is dict and isinstance(value, dict):
            _, item_type = typing.get_args(tp)
            out = {}
            for key, item in value.items():
                if isinstance(key, str):
                    out[key] = self._walk(item, item_type, _join(path, key))
                else:
                    self._problem(path, f"key `{key}` must be a string (quote it)")
            return out
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            self.problems.append(_translate(str(exc), path))
            return _INVALID

    def _walk_struct(self, value: Any, tp: type[msgspec.Struct], path: str) -> Any:
        if not isinstance(value, dict):
            self._problem(path, f"expected a mapping, got {_kind(value)}")
            return _INVALID
        fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in fields:
                out[key] = self._walk(item, fields[key].type, _join(path, key))
            else:
                self._unknown_field(key, list(fields), path)
        for name, field in fields.items():
            if name in out:
                continue
            if field.required:
                self._problem(path, f"missing required field `{name}`")
                out[name] = _INVALID
            elif field.default_factory is not msgspec.NODEFAULT:
                out[name] = field.default_factory()
            else:
                out[name] = field.default
        check = self.checks.get(tp)
        if check is not None:
            check(out, path)
        return out

    def _unknown_field(self, key: Any, fields: list[str], path: str) -> None:
        message = f"unknown field `{key}`" if path else f"unknown top-level field `{key}`"
        close = difflib.get_close_matches(str(key), fields, n=1)
        if close:
            self._problem(path, f"{message}; did you mean `{close[0]}`?")
        else:
            self._problem(path, f"{message}; expected one of " + ", ".join(f"`{f}`" for f in fields))

    # Semantic checks: ``f`` maps each field to its validated value or ``_INVALID``.

    def _server(self, f: dict[str, Any], path: str) -> None:
        if f["host"] == "":
            self._problem(f"{path}.host", "must not be empty")
        if f["port"] is not _INVALID and not 0 <= f["port"] <= 65535:
            self._problem(f"{path}.port", f"`{f['port']}` is not a port number (0 to 65535)")
        if f["public_url"] not in (None, _INVALID):
            self._url(f["public_url"], f"{path}.public_url", allow_http=True)
        if f["database"] == "":
            self._problem(f"{path}.database", "must not be empty")
        interval = f["sync_interval_seconds"]
        if interval is not _INVALID and not (math.isfinite(interval) and interval >= 0):
            self._problem(
                f"{path}.sync_interval_seconds",
                "must be a number of seconds, 0 or more (0: sync only at start)",
            )

    def _issuer(self, f: dict[str, Any], path: str) -> None:
        issuer = f["issuer"]
        if issuer is not _INVALID and self._url(
            issuer, f"{path}.issuer", allow_http=self.dev_mode, issuer=True
        ):
            self._unique(issuer, "issuer", f"{path}.issuer")
        if f["jwks_uri"] not in (None, _INVALID):
            self._url(f["jwks_uri"], f"{path}.jwks_uri", allow_http=self.dev_mode)
        algorithms = f["algorithms"]
        if algorithms == []:
            self._problem(f"{path}.algorithms", "must list at least one algorithm")
        for j, alg in enumerate(algorithms if isinstance(algorithms, list) else []):
            if alg is not _INVALID and alg not in DEFAULT_ALGORITHMS:
                supported = ", ".join(f"`{a}`" for a in DEFAULT_ALGORITHMS)
                self._problem(f"{path}.algorithms[{j}]", f"`{alg}` is not supported; use one of {supported}")
        if f["leeway_seconds"] is not _INVALID and f["leeway_seconds"] < 0:
            self._problem(f"{path}.leeway_seconds", "must be 0 or more")

    def _upstream(self, f: dict[str, Any], path: str) -> None:
        name = f["name"]
        if name is not _INVALID and self._name(name, "upstream", f"{path}.name"):
            if name in _RESERVED_SERVER_NAMES:
                self._problem(f"{path}.name", f"`{name}` is reserved (skills are exposed as `{name}.<name>`)")
            self._unique(name, "upstream", f"{path}.name")
        url, command = f["url"], f["command"]
        if url is not None and command is not None:
            self._problem(path, "set either `url` or `command`, not both")
        elif url is None and command is None:
            self._problem(path, "set `url` (an HTTP MCP endpoint) or `command` (a stdio MCP server to start)")
        if url not in (None, _INVALID):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self._problem(f"{path}.url", f"`{url}` is not an absolute http or https URL")
        if isinstance(command, list) and (not command or command[0] in ("", _INVALID)):
            self._problem(f"{path}.command", "must name the program to run, e.g. `[npx, some-mcp-server]`")
        for field in ("timeout_seconds", "connect_timeout_seconds"):
            seconds = f[field]
            if seconds is not _INVALID and not (math.isfinite(seconds) and seconds > 0):
                self._problem(f"{path}.{field}", "must be a number of seconds greater than 0")

    def _gateway(self, f: dict[str, Any], path: str) -> None:
        name = f["name"]
        if name is not _INVALID and self._name(name, "gateway", f"{path}.name"):
            self._unique(name, "gateway", f"{path}.name")
        agents = f["agents"]
        for agent, patterns in agents.items() if isinstance(agents, dict) else ():
            if agent == "":
                self._problem(f"{path}.agents", "an agent id must not be empty")
            self._patterns(patterns, _join(f"{path}.agents", agent))

    def _patterns(self, patterns: Any, path: str) -> None:
        for j, pattern in enumerate(patterns if isinstance(patterns, list) else []):
            problem = None if pattern is _INVALID else _pattern_problem(pattern, self.servers)
            if problem:
                self._problem(f"{path}[{j}]", problem)

    def _user_grant(self, f: dict[str, Any], path: str) -> None:
        given = [k for k in ("role", "group", "permission") if f[k] is not None]
        if len(given) != 1:
            self._problem(path, "name exactly one of `role`, `group` or `permission` (the identity-provider "
                                "permission that grants these tools)")
        if f["tools"] == []:
            self._problem(f"{path}.tools", "must list at least one tool pattern")
        self._patterns(f["tools"], f"{path}.tools")

    def _admin(self, f: dict[str, Any], path: str) -> None:
        if f["role"] is not None and f["group"] is not None:
            self._problem(path, "name either `role` or `group`, not both")
        if (f["role"] is not None or f["group"] is not None) and not f["clients"]:
            self._problem(f"{path}.clients", "list the admin clients: admin actions need an admin user "
                                             "acting through an admin client")

    def _rule(self, f: dict[str, Any], path: str) -> None:
        if f["deny"] is not True and f["require_scope"] is None:
            self._problem(path, "a rule must `deny: true` or `require_scope: <scope>`")
        if f["deny"] is True and f["require_scope"] is not None:
            self._problem(path, "a rule either denies or requires a scope, not both")
        annotations = f["annotations"]
        for name in annotations if isinstance(annotations, dict) else ():
            if name not in ANNOTATION_HINTS:
                hints = ", ".join(f"`{h}`" for h in ANNOTATION_HINTS)
                self._problem(f"{path}.annotations.{name}", f"unknown annotation hint; use one of {hints}")
        self._patterns(f["tools"], f"{path}.tools")

    def _provider(self, f: dict[str, Any], path: str) -> None:
        name = f["name"]
        if name is not _INVALID and self._name(name, "provider", f"{path}.name"):
            self._unique(name, "provider", f"{path}.name")
        endpoints = [f[k] for k in ("authorization_endpoint", "token_endpoint")]
        if f["issuer"] is None and None in endpoints:
            self._problem(path, "set `issuer` (endpoints are discovered) or both `authorization_endpoint` and "
                                "`token_endpoint`")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint", "resource"):
            if f[key] not in (None, _INVALID):
                self._url(f[key], f"{path}.{key}", allow_http=self.dev_mode)
        if f["client_secret_env"] is not None and f["client_secret_file"] is not None:
            self._problem(path, "set `client_secret_env` or `client_secret_file`, not both")

    def _embedded_user(self, f: dict[str, Any], path: str) -> None:
        if f["username"] == "":
            self._problem(f"{path}.username", "must not be empty")
        elif f["username"] is not _INVALID:
            self._unique(f["username"], "user", f"{path}.username")
        if f["password_hash"] is not _INVALID:
            problem = hash_problem(f["password_hash"])
            if problem:
                self._problem(f"{path}.password_hash", problem)
        claims = f["claims"]
        for name in sorted(set(claims) & EMBEDDED_RESERVED_CLAIMS if isinstance(claims, dict) else ()):
            self._problem(f"{path}.claims.{name}", "is set by the issuer itself and cannot be configured")

    def _embedded_client(self, f: dict[str, Any], path: str) -> None:
        client_id = f["client_id"]
        if client_id == "":
            self._problem(f"{path}.client_id", "must not be empty")
        elif client_id is not _INVALID:
            if client_id.startswith(("https://", "http://")):
                self._problem(f"{path}.client_id", "a URL client id is a client ID metadata document and needs no "
                                                   "registration; register a plain id such as `cursor`")
            self._unique(client_id, "client", f"{path}.client_id")
        uris = f["redirect_uris"]
        for j, uri in enumerate(uris if isinstance(uris, list) else []):
            problem = None if uri is _INVALID else redirect_uri_problem(uri)
            if problem:
                self._problem(f"{path}.redirect_uris[{j}]", problem)
        grants = f["grant_types"] if isinstance(f["grant_types"], list) else []
        if f["grant_types"] == []:
            self._problem(f"{path}.grant_types", "must list at least one grant type")
        for j, grant in enumerate(grants):
            if grant is not _INVALID and grant not in EMBEDDED_GRANT_TYPES:
                known = ", ".join(f"`{g}`" for g in EMBEDDED_GRANT_TYPES)
                self._problem(f"{path}.grant_types[{j}]", f"`{grant}` is not supported; use {known}")
        if "authorization_code" in grants and uris == []:
            self._problem(f"{path}.redirect_uris", "list at least one redirect URI for the `authorization_code` grant")
        env, file = f["secret_env"], f["secret_file"]
        if env is not None and file is not None:
            self._problem(path, "set either `secret_env` or `secret_file`, not both")
        elif env is None and file is None and "client_credentials" in grants:
            self._problem(path, "`client_credentials` is for confidential clients: set `secret_env` (an environment "
                                "variable) or `secret_file` holding the client's secret")
        if isinstance(env, str) and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            self._problem(f"{path}.secret_env", f"`{env}` is not an environment variable name")
        if file == "":
            self._problem(f"{path}.secret_file", "must not be empty")

    def _embedded(self, f: dict[str, Any], path: str) -> None:
        scopes = f["scopes"] if isinstance(f["scopes"], list) else []
        for j, scope in enumerate(scopes):
            if scope is not _INVALID and not _SCOPE_RE.fullmatch(scope):
                self._problem(f"{path}.scopes[{j}]", f"`{scope}` is not a scope (printable, no spaces or quotes)")
        for name in ("access_token_ttl_seconds", "refresh_token_ttl_seconds"):
            if f[name] is not _INVALID and f[name] <= 0:
                self._problem(f"{path}.{name}", "must be a number of seconds greater than 0")
        for i, client in enumerate(f["clients"] if isinstance(f["clients"], list) else []):
            wanted = client.get("scopes") if isinstance(client, dict) else None
            for j, scope in enumerate(wanted if isinstance(wanted, list) else []):
                if scope is not _INVALID and scope not in scopes:
                    self._problem(f"{path}.clients[{i}].scopes[{j}]", f"`{scope}` is not in `{path}.scopes`")
        if f["enabled"] is True and not self.dev_mode and self._plain_http_off_loopback():
            self._problem(f"{path}.enabled", "the embedded issuer needs https: set `server.public_url` to the "
                                             "https URL agents reach, or `server.dev_mode: true` for development")

    def _audit(self, f: dict[str, Any], path: str) -> None:
        database = f["database"]
        if database == "":
            self._problem(f"{path}.database", "must not be empty")
        server = self.data.get("server") if isinstance(self.data, dict) else None
        store = server.get("database", "interlock.db") if isinstance(server, dict) else "interlock.db"
        if isinstance(database, str) and database == store:
            self._problem(f"{path}.database", f"`{database}` is the config store (`server.database`); the audit "
                                              "trail needs its own file, e.g. `interlock-audit.db`")
        if f["checkpoint_every"] is not _INVALID and f["checkpoint_every"] < 1:
            self._problem(f"{path}.checkpoint_every", "must be 1 or more (events between signed checkpoints)")
        if f["retention_days"] is not _INVALID and f["retention_days"] < 0:
            self._problem(f"{path}.retention_days", "must be 0 (keep everything) or a number of days")
        if f["signing_key_file"] == "":
            self._problem(f"{path}.signing_key_file", "must not be empty; leave it out to keep the key beside "
                                                      "the database")

    def _plain_http_off_loopback(self) -> bool:
        server = self.data.get("server") if isinstance(self.data, dict) else None
        server = server if isinstance(server, dict) else {}
        try:
            parts = urllib.parse.urlsplit(str(server.get("public_url") or f"http://{server.get('host', '127.0.0.1')}"))
            return parts.scheme == "http" and not is_loopback_host(parts.hostname)
        except ValueError:
            return False  # the server section reports the bad URL

    def _name(self, name: str, kind: str, path: str) -> bool:
        if _NAME_RE.match(name):
            return True
        self._problem(
            path,
            f"`{name}` is not a valid {kind} name; use 1 to 63 lowercase letters, digits, `-` and `_`, "
            "starting with a letter or digit",
        )
        return False

    def _unique(self, name: str, kind: str, path: str) -> None:
        seen = self.seen[kind]
        if name in seen:
            self._problem(path, f"duplicate {kind} `{name}` (first at {seen[name]})")
        else:
            seen[name] = path

    def _url(self, url: str, path: str, *, allow_http: bool, issuer: bool = False) -> bool:
        """Is ``url`` an absolute https URL (http: for loopback hosts, or when allowed)?"""
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
            parts = urllib.parse.urlsplit("")
        if parts.scheme not in ("https", "http") or not host:
            self._problem(path, f"`{url}` is not an absolute https URL")
        elif parts.scheme == "http" and not allow_http and not _is_loopback(host):
            self._problem(
                path,
                f"`{url}` must use https (http is allowed only for loopback hosts or with "
                "`server.dev_mode: true`)",
            )
        elif issuer and (parts.query or parts.fragment):
            self._problem(path, f"`{url}` must not have a query or fragment")
        else:
            return True
        return False


EMBEDDED_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
EMBEDDED_RESERVED_CLAIMS = frozenset({
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "scope", "scp", "auth_time", "act", "cnf",
    "cid", "appid", "oid", "uid",
})
"""Claims the embedded issuer sets itself, or that name the agent or user in some preset: a user's
configured `claims` may not contain them."""
_SCOPE_RE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pattern_problem(pattern: str, servers: set[str] | None) -> str | None:
    server, dot, tool = pattern.partition(".")
    if not dot or not server or not _TOOL_GLOB_RE.fullmatch(tool) or ("*" in server and server != "*"):
        return (
            f"unknown tool pattern `{pattern}`; write `server.tool`, where `server` is an upstream "
            "name or `*` and `tool` may use `*` (e.g. `mail.*`)"
        )
    if server != "*" and servers is not None and server not in servers:
        return (
            f"unknown tool pattern `{pattern}`: no upstream named `{server}`; declare it under "
            "`upstreams` or bless it with the CLI"
        )
    return None


def _join(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (dict, "mapping"),
    (type(None), "null"),
)


def _kind(value: Any) -> str:
    return next((word for t, word in _KINDS if isinstance(value, t)), type(value).__name__)


def _translate(message: str, path: str) -> str:
    """msgspec's ``Expected `float`, got `str` - at `$[1]``` -> ``path[1]: expected number, got string``."""
    where = re.search(r" - at `\$(.*)`$", message)
    if where:
        path = f"{path}{where.group(1)}".lstrip(".")
        message = message[: where.start()]
    expected = re.fullmatch(r"Expected `([^`]*)`, got `([^`]*)`", message)
    if expected:
        wanted = [_TYPE_WORDS.get(t, t) for t in expected.group(1).split(" | ") if t != "null"]
        got = _TYPE_WORDS.get(expected.group(2), expected.group(2))
        message = f"expected {' or '.join(wanted) or 'null'}, got {got}"
    else:
        message = message[:1].lower() + message[1:]
    return f"{path}: {message}" if path else message
