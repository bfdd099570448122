"""The store: a narrow interface over what Interlock remembers.

Two backends are planned: SQLite (embedded default, ``registry.sqlite_store``)
and PostgreSQL (multi-replica). Callers depend only on ``Store``. Every write
bumps ``generation`` in the same transaction, so each worker can tell with one
cheap read whether its in-memory snapshot is stale (invariant 1: a change
applies on the next call, on every worker).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from registry.config import Config
from registry.records import GatewayRecord, IssuerRecord, ServerRecord, ToolRecord


class Change(msgspec.Struct, frozen=True):
    kind: str
    """`issuer`, `server`, `gateway`."""
    name: str
    action: str
    """`added`, `changed`, `removed`."""


class ApplyReport(msgspec.Struct, frozen=True):
    changes: list[Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Store(Protocol):
    def generation(self) -> int:
        """A counter bumped by every write; cheap enough to read on every request."""
        ...

    def schema_version(self) -> int: ...

    # upstream servers
    def list_servers(self) -> list[ServerRecord]: ...
    def get_server(self, name: str) -> ServerRecord | None: ...
    def put_server(self, record: ServerRecord) -> None: ...
    def delete_server(self, name: str) -> bool:
        """Remove the server and all its tools. False when it did not exist."""
        ...
    def record_sync(self, server: str, tools: list[ToolRecord], synced_at: str) -> None:
        """Replace the server's tool rows with ``tools`` and stamp ``synced_at``, atomically."""
        ...
    def record_sync_error(self, server: str, error: str) -> None: ...

    # tools
    def list_tools(self, server: str | None = None) -> list[ToolRecord]: ...
    def put_tool(self, record: ToolRecord) -> None: ...

    # gateways and issuers
    def list_gateways(self) -> list[GatewayRecord]: ...
    def list_issuers(self) -> list[IssuerRecord]: ...

    def apply_config(self, config: Config) -> ApplyReport:
        """Make the store's `config`-sourced issuers, servers and gateways equal the file, in one
        transaction. Idempotent: applying the same file twice reports no change and does not bump
        ``generation``. Rows with source `cli` are left alone."""
        ...

    def close(self) -> None: ...
