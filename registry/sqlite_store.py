"""The SQLite backend of ``Store`` (the embedded default), through sqlite-utils.

One file, WAL mode, a 5 second busy timeout: the CLI and the server process may use the same
file at once. Every write is one ``BEGIN IMMEDIATE`` transaction that also bumps the
``generation`` counter, so a reader that sees the new generation sees the whole write.

Threads: one connection, opened with ``check_same_thread=False`` and guarded by a lock, so
the event loop thread and worker threads may share one ``SQLiteStore``. A call waits while
another thread's call holds the lock (a write waits at most the busy timeout for another
process). Records are msgspec structs; specs and tool definitions are stored as JSON text.

    meta       (key, value)                                     the `generation` counter
    issuers    (issuer, spec, source)
    servers    (name, spec, source, synced_at, last_error)
    tools      (server, name, definition, pinned_hash, status,
                live_definition, live_hash, updated_at)         primary key (server, name)
    gateways   (name, spec, source)
    skill_versions (name, version, digest, document, source,
                published_at, yanked_at)                        primary key (name, version)
    schema_migrations (version, description, applied_at)        see ``registry.migrations``
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from sqlite_utils import Database

from executor.errors import StoreError
from registry.config import Config, GatewayConfig, IssuerConfig, ProviderConfig, UpstreamConfig
from registry.migrations import MIGRATIONS, Migration, check_version, immediate, migrate, stored_version
from registry.records import AccessPolicy, GatewayRecord, IssuerRecord, ServerRecord, ToolRecord
from registry.sqlite_connection_store import SQLiteConnectionStore
from registry.sqlite_issuer_store import SQLiteIssuerStore
from registry.sqlite_run_store import SQLiteRunStore
from registry.store import ApplyReport, Change, SkillVersionRecord

BUSY_TIMEOUT_SECONDS = 5.0
_SQLITE_MAGIC = b"SQLite format 3\x00"

Tracer = Callable[[str, Any], None]


def open_store(
    path: str | Path, *, tracer: Tracer | None = None, migrations: Sequence[Migration] = MIGRATIONS
) -> SQLiteStore:
    """Open (creating if needed) and migrate the database at ``path``.

    Raises ``StoreError`` for a file that is not an Interlock database (it is left untouched)
    and ``SchemaTooNewError`` for one written by a newer Interlock. ``tracer`` is called with
    ``(sql, parameters)`` for every statement (tests assert on it).
    """
    name = str(path)
    _refuse_foreign_file(Path(path), name)
    try:
        conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database `{name}`: {exc}; check the path and its permissions") from exc
    try:
        db = Database(conn, tracer=tracer, execute_plugins=False)
        check_version(db, migrations, name=name)  # before anything writes to the file
        db.enable_wal()
        migrate(db, migrations, name=name)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"database `{name}` is unreadable ({exc}); restore it from a backup or point "
            "`server.database` at a new file"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return SQLiteStore(db, name)


def _refuse_foreign_file(path: Path, name: str) -> None:
    """Refuse, before SQLite touches it, a file that is not a SQLite database."""
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreError(f"database `{name}` is a directory; point `server.database` at a file") from None
    except OSError as exc:
        raise StoreError(f"cannot read database `{name}`: {exc.strerror or exc}") from exc
    if header and header != _SQLITE_MAGIC:
        raise StoreError(
            f"`{name}` is not an interlock database (not a SQLite file); it was left untouched: "
            "point `server.database` at another file"
        )


class _Kind(NamedTuple):
    """The SQL apply_config sends for one kind of config-managed row."""

    kind: str
    spec_type: type[msgspec.Struct]
    select: str
    insert: str
    update: str
    delete: str


_ISSUERS = _Kind(
    "issuer",
    IssuerConfig,
    "SELECT issuer, spec, source FROM issuers",
    "INSERT INTO issuers (issuer, spec, source) VALUES (?, ?, 'config')",
    "UPDATE issuers SET spec = ?, source = 'config' WHERE issuer = ?",
    "DELETE FROM issuers WHERE issuer = ?",
)
_SERVERS = _Kind(
    "server",
    UpstreamConfig,
    "SELECT name, spec, source FROM servers",
    "INSERT INTO servers (name, spec, source) VALUES (?, ?, 'config')",
    "UPDATE servers SET spec = ?, source = 'config' WHERE name = ?",
    "DELETE FROM servers WHERE name = ?",
)
_GATEWAYS = _Kind(
    "gateway",
    GatewayConfig,
    "SELECT name, spec, source FROM gateways",
    "INSERT INTO gateways (name, spec, source) VALUES (?, ?, 'config')",
    "UPDATE gateways SET spec = ?, source = 'config' WHERE name = ?",
    "DELETE FROM gateways WHERE name = ?",
)

_SETTINGS = _Kind(
    "setting",
    AccessPolicy,
    "SELECT name, spec, source FROM settings WHERE name = 'access'",
    "INSERT INTO settings (name, spec, source) VALUES (?, ?, 'config')",
    "UPDATE settings SET spec = ?, source = 'config' WHERE name = ?",
    "DELETE FROM settings WHERE name = ?",
)

_PROVIDERS = _Kind(
    "provider",
    ProviderConfig,
    "SELECT name, spec, source FROM providers",
    "INSERT INTO providers (name, spec, source) VALUES (?, ?, 'config')",
    "UPDATE providers SET spec = ?, source = 'config' WHERE name = ?",
    "DELETE FROM providers WHERE name = ?",
)

_SKILL_COLUMNS = "name, version, digest, document, source, published_at, yanked_at"
_SELECT_SKILL = f"SELECT {_SKILL_COLUMNS} FROM skill_versions"

_INSERT_TOOL = (
    "INSERT INTO tools (server, name, definition, pinned_hash, status, live_definition, live_hash, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_TOOLS = (
    "SELECT server, name, definition, pinned_hash, status, live_definition, live_hash, updated_at FROM tools"
)


class SQLiteStore(SQLiteIssuerStore, SQLiteConnectionStore, SQLiteRunStore):
    """``Store`` over one SQLite file. Build it with ``open_store``."""

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self._lock = threading.RLock()

    # -- plumbing

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Database]:
        with self._lock:
            try:
                yield self.db
            except sqlite3.Error as exc:
                hint = "; another process holds the database" if "locked" in str(exc) else ""
                raise StoreError(f"database `{self.name}`: {exc}{hint}") from exc
            except msgspec.DecodeError as exc:
                raise StoreError(
                    f"database `{self.name}` holds a row this interlock cannot read: {exc}"
                ) from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Database]:
        """One write transaction; the caller bumps the generation inside it when it wrote."""
        with self._reading() as db, immediate(db):
            yield db

    def _bump(self) -> None:
        self.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

    def _require_server(self, server: str) -> None:
        if self.db.execute("SELECT 1 FROM servers WHERE name = ?", [server]).fetchone() is None:
            raise StoreError(f"unknown server `{server}`; bless it first")

    # -- Store

    def generation(self) -> int:
        with self._reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        with self._reading() as db:
            return stored_version(db)

    def list_servers(self) -> list[ServerRecord]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT spec, source, synced_at, last_error FROM servers ORDER BY name"
            ).fetchall()
            return [_server(*row) for row in rows]

    def get_server(self, name: str) -> ServerRecord | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT spec, source, synced_at, last_error FROM servers WHERE name = ?", [name]
            ).fetchone()
            return None if row is None else _server(*row)

    def put_server(self, record: ServerRecord) -> None:
        with self._writing() as db:
            db.execute(
                "INSERT INTO servers (name, spec, source, synced_at, last_error) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, source = excluded.source, "
                "synced_at = excluded.synced_at, last_error = excluded.last_error",
                [record.name, _encode(record.spec), record.source, record.synced_at, record.last_error],
            )
            self._bump()

    def delete_server(self, name: str) -> bool:
        with self._writing() as db:
            db.execute("DELETE FROM tools WHERE server = ?", [name])
            deleted = db.execute("DELETE FROM servers WHERE name = ?", [name]).rowcount > 0
            if deleted:
                self._bump()
            return deleted

    def record_sync(self, server: str, tools: list[ToolRecord], synced_at: str) -> None:
        strays = sorted({t.server for t in tools} - {server})
        if strays:
            raise StoreError(f"sync of `{server}` was given tools of {', '.join(f'`{s}`' for s in strays)}")
        with self._writing() as db:
            self._require_server(server)
            db.execute("DELETE FROM tools WHERE server = ?", [server])
            for tool in tools:
                db.execute(_INSERT_TOOL, _tool_row(tool))
            db.execute(
                "UPDATE servers SET synced_at = ?, last_error = NULL WHERE name = ?", [synced_at, server]
            )
            self._bump()

    def record_sync_error(self, server: str, error: str) -> None:
        with self._writing() as db:
            self._require_server(server)
            db.execute("UPDATE servers SET last_error = ? WHERE name = ?", [error, server])
            self._bump()

    def list_tools(self, server: str | None = None) -> list[ToolRecord]:
        with self._reading() as db:
            if server is None:
                rows = db.execute(_SELECT_TOOLS + " ORDER BY server, name").fetchall()
            else:
                rows = db.execute(_SELECT_TOOLS + " WHERE server = ? ORDER BY name", [server]).fetchall()
            return [_tool(*row) for row in rows]

    def put_tool(self, record: ToolRecord) -> None:
        with self._writing() as db:
            self._require_server(record.server)
            db.execute(
                _INSERT_TOOL + " ON CONFLICT (server, name) DO UPDATE SET definition = excluded.definition, "
                "pinned_hash = excluded.pinned_hash, status = excluded.status, "
                "live_definition = excluded.live_definition, live_hash = excluded.live_hash, "
                "updated_at = excluded.updated_at",
                _tool_row(record),
            )
            self._bump()

    def list_gateways(self) -> list[GatewayRecord]:
        with self._reading() as db:
            rows = db.execute("SELECT spec, source FROM gateways ORDER BY name").fetchall()
            return [
                GatewayRecord(spec=msgspec.json.decode(spec, type=GatewayConfig), source=source)
                for spec, source in rows
            ]

    def list_issuers(self) -> list[IssuerRecord]:
        with self._reading() as db:
            rows = db.execute("SELECT spec, source FROM issuers ORDER BY issuer").fetchall()
            return [
                IssuerRecord(spec=msgspec.json.decode(spec, type=IssuerConfig), source=source)
                for spec, source in rows
            ]

    def list_providers(self) -> list[ProviderConfig]:
        with self._reading() as db:
            rows = db.execute("SELECT spec FROM providers ORDER BY name").fetchall()
            return [msgspec.json.decode(spec, type=ProviderConfig) for (spec,) in rows]

    def get_access_policy(self) -> AccessPolicy:
        with self._reading() as db:
            row = db.execute("SELECT spec FROM settings WHERE name = 'access'").fetchone()
            return AccessPolicy() if row is None else msgspec.json.decode(row[0], type=AccessPolicy)

    def put_skill_version(self, record: SkillVersionRecord) -> SkillVersionRecord:
        with self._writing() as db:
            key = [record.name, record.version]
            row = db.execute(_SELECT_SKILL + " WHERE name = ? AND version = ?", key).fetchone()
            if row is not None:
                return _skill_version(*row)
            db.execute(
                f"INSERT INTO skill_versions ({_SKILL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [record.name, record.version, record.digest, record.document, record.source, record.published_at,
                 record.yanked_at],
            )
            self._bump()
            return record

    def get_skill_version(self, name: str, version: str) -> SkillVersionRecord | None:
        with self._reading() as db:
            row = db.execute(_SELECT_SKILL + " WHERE name = ? AND version = ?", [name, version]).fetchone()
            return None if row is None else _skill_version(*row)

    def list_skill_versions(self, name: str | None = None) -> list[SkillVersionRecord]:
        with self._reading() as db:
            if name is None:
                rows = db.execute(_SELECT_SKILL + " ORDER BY name, published_at, version").fetchall()
            else:
                rows = db.execute(_SELECT_SKILL + " WHERE name = ? ORDER BY published_at, version", [name]).fetchall()
            return [_skill_version(*row) for row in rows]

    def yank_skill_version(self, name: str, version: str, yanked_at: str) -> SkillVersionRecord | None:
        with self._writing() as db:
            changed = db.execute(
                "UPDATE skill_versions SET yanked_at = ? WHERE name = ? AND version = ? AND yanked_at IS NULL",
                [yanked_at, name, version],
            ).rowcount > 0
            if changed:
                self._bump()
            row = db.execute(_SELECT_SKILL + " WHERE name = ? AND version = ?", [name, version]).fetchone()
            return None if row is None else _skill_version(*row)

    def apply_config(self, config: Config) -> ApplyReport:
        with self._writing():
            changes = [
                *self._apply(_ISSUERS, {i.issuer: i for i in config.identity.issuers}),
                *self._apply(_SERVERS, {u.name: u for u in config.upstreams}),
                *self._apply(_GATEWAYS, {g.name: g for g in config.gateways}),
                *self._apply(_PROVIDERS, {p.name: p for p in config.providers}),
                *self._apply(_SETTINGS, {"access": AccessPolicy(
                    user_grants=config.identity.user_grants, admin=config.identity.admin, policy=config.policy)}),
            ]
            if changes:
                self._bump()
        return ApplyReport(changes)

    def _apply(self, kind: _Kind, desired: dict[str, Any]) -> list[Change]:
        """Make the `config` rows of one kind equal ``desired``; a `cli` row of the same name
        is taken over by the file. Changes come in file order, then removals by name."""
        existing = {key: (spec, source) for key, spec, source in self.db.execute(kind.select).fetchall()}
        changes = []
        for key, spec in desired.items():
            if key not in existing:
                self.db.execute(kind.insert, [key, _encode(spec)])
                changes.append(Change(kind.kind, key, "added"))
            elif existing[key][1] != "config" or not _same_spec(existing[key][0], spec, kind.spec_type):
                self.db.execute(kind.update, [_encode(spec), key])
                changes.append(Change(kind.kind, key, "changed"))
        for key in sorted(existing):
            if existing[key][1] == "config" and key not in desired:
                if kind is _SERVERS:
                    self.db.execute("DELETE FROM tools WHERE server = ?", [key])
                self.db.execute(kind.delete, [key])
                changes.append(Change(kind.kind, key, "removed"))
        return changes

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(value: Any) -> str:
    # Key order is kept: a tool's inputSchema properties are served in the upstream's order.
    return msgspec.json.encode(value).decode()


def _same_spec(stored: str, spec: msgspec.Struct, spec_type: type[msgspec.Struct]) -> bool:
    """Compare as structs, not text, so key order in the file is not a change. A stored spec
    this version cannot read counts as different: the file wins."""
    try:
        return bool(msgspec.json.decode(stored, type=spec_type) == spec)
    except msgspec.DecodeError:
        return False


def _server(spec: str, source: str, synced_at: str | None, last_error: str | None) -> ServerRecord:
    return msgspec.convert(
        {
            "spec": msgspec.json.decode(spec),
            "source": source,
            "synced_at": synced_at,
            "last_error": last_error,
        },
        ServerRecord,
    )


def _tool(
    server: str,
    name: str,
    definition: str,
    pinned_hash: str,
    status: str,
    live_definition: str | None,
    live_hash: str | None,
    updated_at: str | None,
) -> ToolRecord:
    return msgspec.convert(
        {
            "server": server,
            "name": name,
            "definition": msgspec.json.decode(definition),
            "pinned_hash": pinned_hash,
            "status": status,
            "live_definition": None if live_definition is None else msgspec.json.decode(live_definition),
            "live_hash": live_hash,
            "updated_at": updated_at,
        },
        ToolRecord,
    )


def _skill_version(name: str, version: str, digest: str, document: str, source: str, published_at: str,
                   yanked_at: str | None) -> SkillVersionRecord:
    return SkillVersionRecord(name=name, version=version, digest=digest, document=document, source=source,
                              published_at=published_at, yanked_at=yanked_at)


def _tool_row(t: ToolRecord) -> list[Any]:
    live = None if t.live_definition is None else _encode(t.live_definition)
    return [t.server, t.name, _encode(t.definition), t.pinned_hash, t.status, live, t.live_hash, t.updated_at]
