"""The declarative config file: typed, validated once, every problem listed with its path.

One YAML file holds identity (trusted issuers), upstream servers and gateways
(agents bound to each, with the tool patterns each agent may use). It is
validated into the msgspec structs below; ``load_config`` reports *every*
problem at once, each prefixed with its path in the file, e.g.
``gateways[1].agents.cursor[0]: unknown tool pattern `jira.```.
"""

from __future__ import annotations

import msgspec

# Tool patterns are `server.tool` globs: `mail.*`, `mail.read_*`, `*.search`.
# Server names are what the exposed `server.tool` names are prefixed with.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


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


class IdentityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    issuers: list[IssuerConfig] = msgspec.field(default_factory=list)


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


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    description: str = ""
    agents: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """agent id (OAuth client_id) -> tool patterns that agent may use on this gateway."""


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    identity: IdentityConfig = msgspec.field(default_factory=IdentityConfig)
    upstreams: list[UpstreamConfig] = msgspec.field(default_factory=list)
    gateways: list[GatewayConfig] = msgspec.field(default_factory=list)
