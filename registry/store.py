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

from executor.connections import ConnectionStore
from executor.idp.records import (
    AccessTokenRecord,
    CodeRecord,
    CodeUse,
    KeyRecord,
    KeyUse,
    RefreshTokenRecord,
    RefreshUse,
)
from executor.runs import RunStore
from registry.config import Config, ProviderConfig
from registry.records import AccessPolicy, GatewayRecord, IssuerRecord, ServerRecord, ToolRecord


class Change(msgspec.Struct, frozen=True):
    kind: str
    """`issuer`, `server`, `gateway`, `setting`."""
    name: str
    action: str
    """`added`, `changed`, `removed`."""


class ApplyReport(msgspec.Struct, frozen=True):
    changes: list[Change]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class SkillVersionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One published version of a skill (``registry.skill_registry``). Immutable once stored,
    except for ``yanked_at``."""

    name: str
    version: str
    digest: str
    """`sha256:<hex>` of the canonical form of ``document``."""
    document: str
    """The parsed YAML as JSON, keys in the order written; ``digest`` is over its canonical form
    (sorted keys, ``executor.skill_format.canonical_json``)."""
    source: str
    """The YAML text as published (comments and all), for `interlock skills show`."""
    published_at: str
    yanked_at: str | None = None


class IssuerStore(Protocol):
    """What the embedded OAuth issuer (``executor.idp``) remembers. Codes and refresh tokens are
    stored by their SHA-256 only. Every method is one transaction; none bumps ``generation``."""

    # keys
    def idp_keys(self, use: KeyUse) -> list[KeyRecord]:
        """Keys of this use, newest first."""
        ...
    def ensure_idp_key(self, record: KeyRecord) -> list[KeyRecord]:
        """Store ``record`` unless a key of its use exists (first start; safe when replicas race).
        Returns the keys of that use, newest first."""
        ...
    def add_idp_key(self, record: KeyRecord, *, keep: int) -> list[KeyRecord]:
        """Store ``record`` and drop all but the ``keep`` newest keys of its use (rotation)."""
        ...

    # authorization codes
    def put_code(self, record: CodeRecord, now: int) -> None:
        """Store a new code and open its token family (and drop long-expired codes and tokens)."""
        ...
    def use_code(self, code_hash: str, now: int) -> CodeUse:
        """Consume a code, atomically: `ok` once; a second use is `replayed` and revokes the family."""
        ...

    # tokens
    def record_tokens(self, access: AccessTokenRecord, refresh: RefreshTokenRecord | None, now: int) -> bool:
        """Record issued tokens; False, writing nothing, when their family is revoked or unknown."""
        ...
    def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None: ...
    def use_refresh_token(self, token_hash: str, now: int) -> RefreshUse:
        """Consume a refresh token (rotation); using one twice is `reused` and revokes its family."""
        ...
    def get_access_token(self, jti: str) -> AccessTokenRecord | None: ...
    def revoke_family(self, family: str, now: int) -> None:
        """Revoke every refresh and access token of one authorization."""
        ...
    def revoke_access_token(self, jti: str, expires_at: int) -> None: ...
    def is_token_revoked(self, jti: str) -> bool:
        """One indexed read: the gateway asks this on every call with an embedded-issuer token."""
        ...


class Store(IssuerStore, ConnectionStore, RunStore, Protocol):
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
    def list_providers(self) -> list[ProviderConfig]: ...
    def get_access_policy(self) -> AccessPolicy:
        """The user-side grants, admin claim and policy rules last applied (empty when never)."""
        ...

    # skills
    def put_skill_version(self, record: SkillVersionRecord) -> SkillVersionRecord:
        """Store ``record`` unless its (name, version) exists, atomically; return the stored row
        (the existing one when there was one: the caller compares digests). Bumps ``generation``
        only when it inserted."""
        ...
    def get_skill_version(self, name: str, version: str) -> SkillVersionRecord | None: ...
    def list_skill_versions(self, name: str | None = None) -> list[SkillVersionRecord]:
        """Every version, yanked ones included, by name and then in publishing order."""
        ...
    def yank_skill_version(self, name: str, version: str, yanked_at: str) -> SkillVersionRecord | None:
        """Mark a version yanked (kept for audit, no longer served); None when it does not exist.
        Yanking a yanked version changes nothing. Bumps ``generation`` when it changed the row."""
        ...

    def apply_config(self, config: Config) -> ApplyReport:
        """Make the store's `config`-sourced issuers, servers and gateways equal the file, in one
        transaction. Idempotent: applying the same file twice reports no change and does not bump
        ``generation``. Rows with source `cli` are left alone."""
        ...

    def close(self) -> None: ...
