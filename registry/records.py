"""Plain records the store reads and writes. No I/O here."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from registry.config import AdminConfig, GatewayConfig, IssuerConfig, PolicyConfig, UpstreamConfig, UserGrant

Source = Literal["config", "cli"]
"""Who owns a row: `interlock apply` manages only `config` rows; CLI-blessed rows are left alone."""

ToolStatus = Literal["pinned", "quarantined", "pending", "removed"]
"""
pinned       served; the live definition matches the pinned hash
quarantined  the upstream changed the definition: not listed, not callable until `interlock tools bless`
pending      appeared after the server was blessed: not served until `interlock tools bless`
removed      the upstream no longer offers it
"""


class ServerRecord(msgspec.Struct, frozen=True, kw_only=True):
    spec: UpstreamConfig
    source: Source
    synced_at: str | None = None
    last_error: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name


class ToolRecord(msgspec.Struct, frozen=True, kw_only=True):
    server: str
    name: str
    """The upstream's own tool name; agents see ``f"{server}.{name}"``."""
    definition: dict[str, Any]
    """The pinned definition (what agents are served), as the upstream's MCP JSON (camelCase)."""
    pinned_hash: str
    status: ToolStatus
    live_definition: dict[str, Any] | None = None
    """What the upstream offers now, when it differs from the pinned one."""
    live_hash: str | None = None
    updated_at: str | None = None

    @property
    def exposed_name(self) -> str:
        return f"{self.server}.{self.name}"


class GatewayRecord(msgspec.Struct, frozen=True, kw_only=True):
    spec: GatewayConfig
    source: Source = "config"

    @property
    def name(self) -> str:
        return self.spec.name


class IssuerRecord(msgspec.Struct, frozen=True, kw_only=True):
    spec: IssuerConfig
    source: Source = "config"


class AccessPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of the config the decision reads besides gateways: stored, so a change made by
    `interlock apply` reaches every worker on its next request."""

    user_grants: list[UserGrant] = msgspec.field(default_factory=list)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    policy: PolicyConfig = msgspec.field(default_factory=PolicyConfig)
