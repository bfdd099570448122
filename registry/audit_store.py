"""The SQLite backend of ``AuditLog``: the audit trail, in its own database file.

Its own file (``audit.database``, default `interlock-audit.db`) so audit writes never contend
with the config store, and a full audit disk is the audit's failure alone. WAL mode,
``synchronous=NORMAL`` (a commit survives a crash of the process; a power cut may lose the
last few), a 5 second busy timeout. One connection guarded by a lock, like ``SQLiteStore``.

Appends are serialized across processes: the head of the chain is read and the events
inserted inside one ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front.

    audit_events      (seq, prev_hash, hash, <one column per Event field>)   indexed by user and by agent
    audit_head        (id = 1, seq, hash)                                     the chain's newest link
    audit_checkpoints (seq, hash, time, key_id, signature)                    Ed25519 over the head at seq
    schema_migrations (version, description, applied_at)                     see ``registry.migrations``

Time has no index of its own (one less page written per append): events are appended in time
order, so the checkpoints, which record when they were signed, map a time range to a range of
sequence numbers (give or take ``CLOCK_SLACK``), and the time filter runs within it. Retention
cuts at the newest checkpoint signed before the cutoff.

The SQL is plain and portable (the PostgreSQL backend will run the same statements). The
signing key: see ``executor.audit_keys``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlite_utils import Database

from executor.audit import (
    EVENT_FIELDS,
    JSON_FIELDS,
    AuditLog,
    AuditQuery,
    AuditRecord,
    AuditUnavailableError,
    Checkpoint,
    Event,
    RetentionReport,
    Segment,
    VerifyReport,
    canonical_json,
)
from executor.audit_chain import GENESIS, ChainRow, key_id, link_hash, raw_public_key, sign_checkpoint, verify_chain
from executor.audit_keys import default_key_file, load_signing_key
from executor.audit_recorder import DIGEST_ONLY, ArgumentPolicy, now_iso
from executor.errors import StoreError
from registry.config import AuditConfig
from registry.migrations import Migration, check_version, immediate, migrate, stored_version
from registry.store import Store

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 5.0
CLOCK_SLACK = timedelta(minutes=1)
"""How far out of time order two appends may land (their clocks are read before the write lock)."""

_COLUMNS = ", ".join(EVENT_FIELDS)
_DDL_TYPES = {"latency_ms": "DOUBLE PRECISION"}
AUDIT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "audit events (hash-chained), the chain head, signed checkpoints",
        (
            "CREATE TABLE audit_events (\n    seq INTEGER PRIMARY KEY,\n    prev_hash TEXT NOT NULL,\n"
            "    hash TEXT NOT NULL,\n"
            + ",\n".join(f"    {f} {_DDL_TYPES.get(f, 'TEXT')}{' NOT NULL' if f in ('kind', 'time') else ''}"
                         for f in EVENT_FIELDS)
            + "\n)",
            "CREATE INDEX audit_events_user ON audit_events (user_subject, seq)",
            "CREATE INDEX audit_events_agent ON audit_events (agent, seq)",
            """CREATE TABLE audit_head (
                id INTEGER PRIMARY KEY,
                seq INTEGER NOT NULL,
                hash TEXT NOT NULL
            )""",
            f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')",
            """CREATE TABLE audit_checkpoints (
                seq INTEGER PRIMARY KEY,
                hash TEXT NOT NULL,
                time TEXT NOT NULL,
                key_id TEXT NOT NULL,
                signature TEXT NOT NULL
            )""",
        ),
    ),
)

SELECT_HEAD = "SELECT seq, hash FROM audit_head WHERE id = 1"
INSERT_EVENT = (f"INSERT INTO audit_events (seq, prev_hash, hash, {_COLUMNS}) "
                f"VALUES ({', '.join('?' * (len(EVENT_FIELDS) + 3))})")
UPDATE_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"
_SELECT = f"SELECT seq, prev_hash, hash, {_COLUMNS} FROM audit_events"
INSERT_CHECKPOINT = "INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)"
_SELECT_CHECKPOINTS = "SELECT seq, hash, time, key_id, signature FROM audit_checkpoints"
_JSON_AT = tuple(i for i, f in enumerate(EVENT_FIELDS) if f in JSON_FIELDS)
_FILTERS = (("agent", "agent"), ("user", "user_subject"), ("issuer", "user_issuer"), ("gateway", "gateway"),
            ("tool", "tool"), ("decision", "decision"), ("kind", "kind"), ("request_id", "request_id"))


def open_configured(config: AuditConfig, *, database: str | None = None, create_key: bool = True) -> SQLiteAuditLog:
    """Open the trail an ``AuditConfig`` describes (``database`` overrides its file)."""
    return open_audit_log(database or config.database, key_file=config.signing_key_file,
                          checkpoint_every=config.checkpoint_every, create_key=create_key)


def open_audit_log(path: str | Path, *, key_file: str | Path | None = None, checkpoint_every: int = 1000,
                   create_key: bool = True, tracer: Callable[[str, Any], None] | None = None,
                   clock: Callable[[], str] = now_iso) -> SQLiteAuditLog:
    """Open (creating and migrating if needed) the audit database at ``path``.

    Opening writes nothing to an up-to-date database, so a read-only file opens (and then
    refuses every append). The signing key is loaded from ``key_file`` (default: beside the
    database); it is generated only for a trail that has no checkpoint yet, and only when
    ``create_key``. Readers may open without a key (``create_key=False``): they can read and
    verify (given public keys) but not sign. Raises ``StoreError``.
    """
    name = str(path)
    try:
        conn = sqlite3.connect(name, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open audit database `{name}`: {exc}; check the path and its permissions") from exc
    try:
        db = Database(conn, tracer=tracer, execute_plugins=False)
        check_version(db, AUDIT_MIGRATIONS, name=name)
        if stored_version(db) and not db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").fetchone():
            raise StoreError(f"`{name}` is not an audit database; point `audit.database` at its own file")
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        migrate(db, AUDIT_MIGRATIONS, name=name)
        has_checkpoints = db.execute("SELECT 1 FROM audit_checkpoints LIMIT 1").fetchone() is not None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"audit database `{name}` is unreadable ({exc}); point `audit.database` at another file "
                         "or restore it") from exc
    except BaseException:
        conn.close()
        raise
    keyfile = Path(key_file) if key_file else default_key_file(path)
    try:
        key = load_signing_key(keyfile, create=create_key and not has_checkpoints)
    except StoreError:
        if create_key:
            conn.close()
            raise
        key = None
    return SQLiteAuditLog(db, name, key, checkpoint_every, clock)


def event_row(seq: int, prev_hash: str, hash_: str, event: Event) -> tuple[Any, ...]:
    """The parameters of ``INSERT_EVENT`` for one chained event."""
    values = list(msgspec.structs.astuple(event))
    for i in _JSON_AT:
        if values[i] is not None:
            values[i] = canonical_json(values[i]).decode()
    return (seq, prev_hash, hash_, *values)


def _record(row: Sequence[Any]) -> AuditRecord:
    seq, prev_hash, hash_ = row[0], row[1], row[2]
    return AuditRecord(seq=seq, prev_hash=prev_hash, hash=hash_, event=_event(row[3:]))


def _event(values: Sequence[Any]) -> Event:
    fields = dict(zip(EVENT_FIELDS, values, strict=True))
    for name in JSON_FIELDS:
        if fields[name] is not None:
            fields[name] = msgspec.json.decode(fields[name])
    return Event(**fields)


def _chain_row(row: Sequence[Any]) -> ChainRow:
    try:
        event: Event | None = _event(row[3:])
    except (msgspec.DecodeError, TypeError, ValueError):
        event = None
    return ChainRow(row[0], row[1], row[2], event)


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(seq=row[0], hash=row[1], time=row[2], key_id=row[3], signature=row[4])


class SQLiteAuditLog:
    """``AuditLog`` over one SQLite file. Build it with ``open_audit_log``."""

    def __init__(self, db: Database, name: str, key: Ed25519PrivateKey | None, checkpoint_every: int,
                 clock: Callable[[], str]) -> None:
        self.db = db
        self.name = name
        self.key = key
        self.checkpoint_every = checkpoint_every
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def public_keys(self) -> dict[str, bytes]:
        """The signing key's public half, by key id (empty when opened without the key)."""
        if self.key is None:
            return {}
        raw = raw_public_key(self.key)
        return {key_id(raw): raw}

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Database]:
        with self._lock:
            try:
                yield self.db
            except sqlite3.Error as exc:
                raise StoreError(f"audit database `{self.name}`: {exc}") from exc

    # -- writing

    def append(self, events: Sequence[Event]) -> int:
        bodies = [(canonical_json(e), e) for e in events]
        try:
            with self._lock, immediate(self.db):
                seq, prev = self.db.execute(SELECT_HEAD).fetchone()
                start = seq
                for body, event in bodies:
                    seq, hash_ = seq + 1, link_hash(prev, body)
                    self.db.execute(INSERT_EVENT, event_row(seq, prev, hash_, event))
                    prev = hash_
                self.db.execute(UPDATE_HEAD, [seq, prev])
                if self.key is not None and seq // self.checkpoint_every > start // self.checkpoint_every:
                    self._sign(seq, prev)
        except sqlite3.Error as exc:
            raise AuditUnavailableError(f"audit database `{self.name}` refused the write: {exc}") from exc
        return int(seq)

    def _sign(self, seq: int, hash_: str) -> Checkpoint:
        assert self.key is not None
        cp = sign_checkpoint(self.key, seq, hash_, self._clock())
        self.db.execute(INSERT_CHECKPOINT, [cp.seq, cp.hash, cp.time, cp.key_id, cp.signature])
        return cp

    def checkpoint(self) -> Checkpoint | None:
        if self.key is None:
            raise StoreError(f"cannot sign a checkpoint of `{self.name}` without its signing key")
        try:
            with self._lock, immediate(self.db):
                seq, hash_ = self.db.execute(SELECT_HEAD).fetchone()
                row = self.db.execute(_SELECT_CHECKPOINTS + " WHERE seq = ?", [seq]).fetchone()
                if seq == 0:
                    return None
                return _checkpoint(row) if row else self._sign(seq, hash_)
        except sqlite3.Error as exc:
            raise AuditUnavailableError(f"audit database `{self.name}` refused the write: {exc}") from exc

    def prune(self, cutoff: str) -> RetentionReport:
        """Delete the segments closed by a checkpoint signed before ``cutoff``, one segment per
        transaction, so the trail always starts right after a signed checkpoint; then record
        what was cut."""
        deleted, through = 0, None
        while True:
            try:
                with self._lock, immediate(self.db):
                    first = self.db.execute("SELECT MIN(seq) FROM audit_events").fetchone()[0]
                    if first is None:
                        break
                    cut = self.db.execute("SELECT MIN(seq) FROM audit_checkpoints WHERE seq >= ? AND time < ?",
                                          [first, cutoff]).fetchone()[0]
                    if cut is None:
                        break
                    deleted += self.db.execute("DELETE FROM audit_events WHERE seq <= ?", [cut]).rowcount
                    self.db.execute("DELETE FROM audit_checkpoints WHERE seq < ?", [cut])
                    through = cut
            except sqlite3.Error as exc:
                raise AuditUnavailableError(f"audit database `{self.name}` refused the write: {exc}") from exc
        if through is not None:
            self.append([Event(kind="retention", time=self._clock(), action="prune", target=f"seq {through}",
                               detail={"deleted": deleted, "through_seq": through, "cutoff": cutoff})])
        return RetentionReport(deleted, through)

    # -- reading

    def head(self) -> tuple[int, str]:
        with self._reading() as db:
            seq, hash_ = db.execute(SELECT_HEAD).fetchone()
        return int(seq), str(hash_)

    def query(self, query: AuditQuery) -> list[AuditRecord]:
        with self._reading() as db:
            where, params = self._where(query)
            sql = f"{_SELECT}{where} ORDER BY seq {'DESC' if query.newest_first else 'ASC'}"
            if query.limit is not None:
                sql += " LIMIT ?"
                params.append(query.limit)
            return [_record(r) for r in db.execute(sql, params).fetchall()]

    def _where(self, query: AuditQuery) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for attr, column in _FILTERS:
            value = getattr(query, attr)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        # The checkpoints narrow a time range to a range of seqs (every event up to a checkpoint is
        # older than it); the time filter itself runs within that range.
        for bound, event_filter, checkpoint, seq_filter, shift in (
                (query.since, "time >= ?", "SELECT MAX(seq) FROM audit_checkpoints WHERE time < ?", "seq > ?",
                 -CLOCK_SLACK),
                (query.until, "time < ?", "SELECT MIN(seq) FROM audit_checkpoints WHERE time >= ?", "seq <= ?",
                 CLOCK_SLACK)):
            if bound is None:
                continue
            edge = (datetime.fromisoformat(bound) + shift).isoformat(timespec="microseconds")
            seq = self.db.execute(checkpoint, [edge]).fetchone()[0]
            if seq is not None:
                clauses.append(seq_filter)
                params.append(seq)
            clauses.append(event_filter)
            params.append(bound)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def records(self, first: int | None = None, last: int | None = None) -> Iterator[AuditRecord]:
        after = (first or 1) - 1
        while True:
            with self._reading() as db:
                rows = db.execute(f"{_SELECT} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1000",
                                  [after, last if last is not None else 2**62]).fetchall()
            if not rows:
                return
            yield from (_record(r) for r in rows)
            after = rows[-1][0]

    def checkpoints(self) -> list[Checkpoint]:
        with self._reading() as db:
            return [_checkpoint(r) for r in db.execute(_SELECT_CHECKPOINTS + " ORDER BY seq").fetchall()]

    def verify(self, keys: Mapping[str, bytes] | None = None) -> VerifyReport:
        """Walk the chain in one read transaction (a consistent snapshot while others append)."""
        trusted = self.public_keys if keys is None else keys
        with self._reading() as db:
            db.execute("BEGIN")
            try:
                head = db.execute(SELECT_HEAD).fetchone()
                checkpoints = [_checkpoint(r) for r in db.execute(_SELECT_CHECKPOINTS + " ORDER BY seq")]
                rows = (_chain_row(r) for r in db.execute(f"{_SELECT} ORDER BY seq"))

                def locate(hash_: str) -> int | None:
                    found = db.execute("SELECT seq FROM audit_events WHERE hash = ?", [hash_]).fetchone()
                    return None if found is None else int(found[0])

                return verify_chain(rows, checkpoints=checkpoints, keys=trusted, head=(head[0], head[1]),
                                    locate=locate)
            finally:
                db.execute("COMMIT")

    def segment(self, since: str | None = None, until: str | None = None) -> Segment:
        with self._reading() as db:
            where, params = self._where(AuditQuery(since=since, until=until))
            first, last = db.execute(f"SELECT MIN(seq), MAX(seq) FROM audit_events{where}", params).fetchone()
            if first is None:
                return Segment([], [])
            end = db.execute("SELECT MIN(seq) FROM audit_checkpoints WHERE seq >= ?", [last]).fetchone()[0]
        if end is None:
            made = self.checkpoint()
            assert made is not None
            end = made.seq
        records = list(self.records(first, end))
        checkpoints = [c for c in self.checkpoints() if first - 1 <= c.seq <= end]
        return Segment(records, checkpoints)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> SQLiteAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GatewayArguments:
    """How each gateway's arguments are audited, read from the config store (its `record_arguments`
    and `redact_fields`) and re-read whenever the store's generation moves, so an `interlock
    apply` that stops recording arguments takes effect on the next call."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._generation = -1
        self._policies: dict[str, ArgumentPolicy] = {}

    def __call__(self, gateway: str) -> ArgumentPolicy:
        generation = self._store.generation()
        if generation != self._generation:
            self._policies = {g.name: ArgumentPolicy(g.spec.record_arguments, frozenset(g.spec.redact_fields))
                              for g in self._store.list_gateways()}
            self._generation = generation
        return self._policies.get(gateway, DIGEST_ONLY)


RETENTION_INTERVAL_SECONDS = 3600.0


def retention_cutoff(days: int, now: datetime | None = None) -> str:
    """The time before which events are old enough to delete, in the trail's format."""
    return ((now or datetime.now(UTC)) - timedelta(days=days)).isoformat(timespec="microseconds")


async def retention_watch(trail: AuditLog, days: int, interval: float = RETENTION_INTERVAL_SECONDS) -> None:
    """Apply retention now and every ``interval`` seconds (in a worker thread: a prune deletes
    one checkpoint segment per transaction, so appends wait at most for one segment)."""
    while days > 0:
        try:
            report = await anyio.to_thread.run_sync(trail.prune, retention_cutoff(days))
            if report.deleted:
                log.info("audit retention deleted %d events, through seq %s", report.deleted, report.through_seq)
        except StoreError as exc:
            log.error("audit retention failed: %s", exc.message)
        await anyio.sleep(interval)
