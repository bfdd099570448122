"""Versioned schema migrations for the SQLite store, applied on open.

``MIGRATIONS`` is an ordered list of (version, description, statements). ``migrate`` applies
those above the stored version, each in its own transaction, and records the version in
``schema_migrations``. An existing database is upgraded in place, never recreated. A database
written by a newer Interlock (a version above the last one known here) is refused.

The statements are plain, portable SQL (CREATE TABLE with TEXT and INTEGER columns, INSERT), so
the PostgreSQL backend can run the same list. Append new migrations; never edit a released one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from executor.errors import SchemaTooNewError, StoreError


class Migration(NamedTuple):
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "generation counter, issuers, upstream servers and gateways",
        (
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            )""",
            "INSERT INTO meta (key, value) VALUES ('generation', 0)",
            """CREATE TABLE issuers (
                issuer TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL
            )""",
            """CREATE TABLE servers (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL,
                synced_at TEXT,
                last_error TEXT
            )""",
            """CREATE TABLE gateways (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "pinned tools of each upstream server",
        (
            """CREATE TABLE tools (
                server TEXT NOT NULL,
                name TEXT NOT NULL,
                definition TEXT NOT NULL,
                pinned_hash TEXT NOT NULL,
                status TEXT NOT NULL,
                live_definition TEXT,
                live_hash TEXT,
                updated_at TEXT,
                PRIMARY KEY (server, name)
            )""",
        ),
    ),
    Migration(
        3,
        "config-managed settings: the user side (claim grants), admin claim, policy rules",
        (
            """CREATE TABLE settings (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL
            )""",
            """CREATE TABLE providers (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                source TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "embedded OAuth issuer: keys, authorization codes, token families, refresh and access tokens",
        (
            """CREATE TABLE idp_keys (
                kid TEXT PRIMARY KEY,
                use TEXT NOT NULL,
                alg TEXT NOT NULL,
                jwk TEXT NOT NULL,
                created_at INTEGER NOT NULL
            )""",
            """CREATE TABLE idp_families (
                family TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                username TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                revoked_at INTEGER
            )""",
            """CREATE TABLE idp_codes (
                code_hash TEXT PRIMARY KEY,
                family TEXT NOT NULL,
                client_id TEXT NOT NULL,
                username TEXT NOT NULL,
                redirect_uri TEXT,
                scope TEXT NOT NULL,
                resource TEXT NOT NULL,
                code_challenge TEXT NOT NULL,
                code_challenge_method TEXT NOT NULL,
                auth_time INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at INTEGER
            )""",
            """CREATE TABLE idp_refresh_tokens (
                token_hash TEXT PRIMARY KEY,
                family TEXT NOT NULL,
                client_id TEXT NOT NULL,
                username TEXT NOT NULL,
                scope TEXT NOT NULL,
                resource TEXT NOT NULL,
                auth_time INTEGER NOT NULL,
                issued_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at INTEGER,
                revoked_at INTEGER
            )""",
            "CREATE INDEX idp_refresh_tokens_family ON idp_refresh_tokens (family)",
            """CREATE TABLE idp_access_tokens (
                jti TEXT PRIMARY KEY,
                family TEXT,
                client_id TEXT NOT NULL,
                subject TEXT NOT NULL,
                scope TEXT NOT NULL,
                resource TEXT NOT NULL,
                issued_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            )""",
            "CREATE INDEX idp_access_tokens_family ON idp_access_tokens (family)",
            """CREATE TABLE idp_revoked_tokens (
                jti TEXT PRIMARY KEY,
                expires_at INTEGER NOT NULL
            )""",
        ),
    ),
    Migration(
        5,
        "connections: third-party tokens per (agent, user, provider), sealed; pending authorization flows",
        (
            """CREATE TABLE connections (
                agent TEXT NOT NULL,
                issuer TEXT NOT NULL,
                subject TEXT NOT NULL,
                provider TEXT NOT NULL,
                sealed TEXT NOT NULL,
                scopes TEXT NOT NULL,
                expires_at REAL,
                created_at TEXT NOT NULL,
                refreshed_at TEXT NOT NULL,
                version INTEGER NOT NULL,
                PRIMARY KEY (agent, issuer, subject, provider)
            )""",
            """CREATE TABLE connect_flows (
                id TEXT PRIMARY KEY,
                agent TEXT NOT NULL,
                issuer TEXT NOT NULL,
                subject TEXT NOT NULL,
                provider TEXT NOT NULL,
                scopes TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                login_state TEXT,
                provider_state TEXT,
                sealed_verifier TEXT
            )""",
            "CREATE INDEX connect_flows_key ON connect_flows (agent, issuer, subject, provider, status)",
            "CREATE INDEX connect_flows_login_state ON connect_flows (login_state)",
            "CREATE INDEX connect_flows_provider_state ON connect_flows (provider_state)",
        ),
    ),
    Migration(
        6,
        "skills: published versions, immutable, with their digest; yanked ones kept for audit",
        (
            """CREATE TABLE skill_versions (
                name TEXT NOT NULL,
                version TEXT NOT NULL,
                digest TEXT NOT NULL,
                document TEXT NOT NULL,
                source TEXT NOT NULL,
                published_at TEXT NOT NULL,
                yanked_at TEXT,
                PRIMARY KEY (name, version)
            )""",
        ),
    ),
    Migration(
        7,
        "skill runs and their steps, persisted so a paused run resumes where it stopped",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                skill TEXT NOT NULL,
                version TEXT NOT NULL,
                digest TEXT NOT NULL,
                gateway TEXT NOT NULL,
                agent TEXT NOT NULL,
                issuer TEXT NOT NULL,
                subject TEXT NOT NULL,
                inputs_digest TEXT NOT NULL,
                inputs TEXT NOT NULL,
                status TEXT NOT NULL,
                next_step INTEGER NOT NULL,
                outputs TEXT,
                error TEXT,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            )""",
            "CREATE INDEX runs_resume ON runs (skill, version, gateway, agent, issuer, subject, inputs_digest, status)",
            """CREATE TABLE run_steps (
                run_id TEXT NOT NULL,
                step_index INTEGER NOT NULL,
                step_id TEXT NOT NULL,
                tool TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                output TEXT,
                error TEXT,
                started_at REAL NOT NULL,
                finished_at REAL NOT NULL,
                PRIMARY KEY (run_id, step_index)
            )""",
        ),
    ),
)

_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


def stored_version(db: Database) -> int:
    """The highest migration recorded in ``db``; 0 for a database without any."""
    if not _has_table(db, "schema_migrations"):
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS, *, name: str = "database") -> int:
    """Bring ``db`` up to the last of ``migrations`` and return that version.

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction (so two processes opening
    one file at once do not both apply it) and re-reads the version inside it. ``name`` is how
    the database is called in error messages. Raises as ``check_version`` does.
    """
    known = check_version(db, migrations, name=name)
    version = stored_version(db)
    for migration in migrations:
        if migration.version <= version:
            continue
        with immediate(db):
            db.execute(_BOOKKEEPING)
            current = stored_version(db)
            if current >= migration.version:
                version = current  # another process got here first
                continue
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.description, dt.datetime.now(dt.UTC).isoformat()],
            )
        version = migration.version
    return known


def check_version(
    db: Database, migrations: Sequence[Migration] = MIGRATIONS, *, name: str = "database"
) -> int:
    """Refuse, without writing anything, a database this code must not touch; return the
    version ``migrations`` lead to. ``SchemaTooNewError`` for a database written by a newer
    Interlock, ``StoreError`` for a SQLite file that Interlock did not create."""
    known = _check_order(migrations)
    version = stored_version(db)
    if version > known:
        raise SchemaTooNewError(
            f"database `{name}` was written by a newer interlock (schema {version}, this one knows "
            f"{known}); upgrade interlock"
        )
    if version == 0 and _user_tables(db):
        raise StoreError(
            f"database `{name}` is a SQLite file that interlock did not create; "
            "point `server.database` at a new file"
        )
    return known


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, ``ROLLBACK`` on any error.

    IMMEDIATE takes the write lock up front, so a writer waits (up to the busy timeout) for
    another process's write instead of failing: a deferred ``BEGIN`` that reads and then
    writes gets SQLITE_BUSY at once in WAL mode if someone else committed in between.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise


def _check_order(migrations: Sequence[Migration]) -> int:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")
    return len(versions)


def _has_table(db: Database, table: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
    return row is not None


def _user_tables(db: Database) -> list[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_migrations'"
    ).fetchall()
    return [r[0] for r in rows]
