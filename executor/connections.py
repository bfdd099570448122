"""Connections: one third-party token per (agent, user, provider), and pending authorization flows.

Plain records and the storage seam (a ``Protocol``); the vault and the connect flow use them,
the SQLite store implements them. The same user through two agents has two connections:
revoking one leaves the other working.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

FlowStatus = Literal["pending", "authenticating", "authorizing", "completed"]


class ConnectionKey(msgspec.Struct, frozen=True):
    agent: str
    issuer: str
    subject: str
    provider: str

    def aad(self) -> bytes:
        """Associated data for sealing: a sealed token only opens in its own row."""
        return "\x1f".join((self.agent, self.issuer, self.subject, self.provider)).encode()

    def describe(self) -> str:
        return f"agent `{self.agent}`, user `{self.issuer}#{self.subject}`, provider `{self.provider}`"


class ConnectionRow(msgspec.Struct, frozen=True, kw_only=True):
    key: ConnectionKey
    sealed: str
    """The provider's tokens, AES-GCM sealed (executor.sealing)."""
    scopes: list[str]
    expires_at: float | None
    created_at: str
    refreshed_at: str
    version: int = 1
    """Bumped by every refresh: a compare-and-set keeps concurrent refreshes from losing a rotation."""


class FlowRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    key: ConnectionKey
    scopes: list[str]
    status: FlowStatus
    created_at: float
    expires_at: float
    login_state: str | None = None
    """sha256 of the `state` of the user's login at the gateway's identity provider."""
    provider_state: str | None = None
    """sha256 of the `state` sent to the provider."""
    sealed_verifier: str | None = None
    """The PKCE verifier of the step in progress, sealed."""


class ConnectionStore(Protocol):
    def get_connection(self, key: ConnectionKey) -> ConnectionRow | None: ...
    def put_connection(self, row: ConnectionRow) -> None: ...
    def replace_connection(self, row: ConnectionRow, expected_version: int) -> bool:
        """Write ``row`` only if the stored row still has ``expected_version``."""
        ...
    def delete_connection(self, key: ConnectionKey) -> bool: ...
    def list_connections(self, *, agent: str | None = None, user: tuple[str, str] | None = None,
                         provider: str | None = None) -> list[ConnectionRow]: ...
    def pending_flow(self, key: ConnectionKey, now: float) -> FlowRow | None:
        """The unexpired, uncompleted flow for ``key``, if any (concurrent calls share it)."""
        ...
    def put_flow(self, row: FlowRow) -> None: ...
    def get_flow(self, flow_id: str) -> FlowRow | None: ...
    def flow_by_state(self, column: Literal["login_state", "provider_state"], state_hash: str) -> FlowRow | None: ...
    def delete_flows(self, key: ConnectionKey) -> None: ...
