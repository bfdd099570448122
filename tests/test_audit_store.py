"""The SQLite audit trail on real files: chaining, checkpoints, tampering, retention, exports,
fail-closed writes, concurrent writers, and the recording API for every kind of event."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from executor.audit import AuditQuery, AuditUnavailableError, Break, Event, fingerprint
from executor.audit_export import export_lines, verify_export
from executor.audit_recorder import Actor, ArgumentPolicy, Recorder, StepContext, now_iso
from executor.errors import StoreError
from executor.policy import Decision
from executor.principal import Principal, User
from registry.audit_store import (
    EVENT_FIELDS,
    GatewayArguments,
    SQLiteAuditLog,
    default_key_file,
    open_audit_log,
    retention_cutoff,
)
from registry.config import Config, GatewayConfig
from registry.sqlite_store import open_store
from tests.support.gateway import run_cli

ALICE = Principal("cursor", User("https://idp.example", "alice"), frozenset(), token_id="jti-alice")


def ev(n: int, time: str | None = None, **fields: Any) -> Event:
    who: dict[str, Any] = {"agent": "cursor", "user_subject": "alice"}
    return Event(kind="decision", time=time or now_iso(), request_id=f"r{n}", **{**who, **fields})


class Clock:
    """A clock tests set: checkpoints are signed at the time the events around them carry."""

    def __init__(self, time: str = "2026-06-01T00:00:00.000000+00:00") -> None:
        self.time = time

    def __call__(self) -> str:
        return self.time


def at(second: int, day: str = "2026-06-01") -> str:
    return f"{day}T00:{second // 60:02d}:{second % 60:02d}.000000+00:00"


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[SQLiteAuditLog]:
    with open_audit_log(tmp_path / "audit.db", checkpoint_every=5) as log:
        yield log


def fill(log: SQLiteAuditLog, n: int, **fields: Any) -> None:
    for i in range(n):
        log.append([ev(i, **fields)])


def test_events_chain_and_a_checkpoint_is_signed_every_n(trail: SQLiteAuditLog) -> None:
    fill(trail, 12)
    records = list(trail.records())
    assert [r.seq for r in records] == list(range(1, 13))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert [c.seq for c in trail.checkpoints()] == [5, 10]
    assert trail.head() == (12, records[-1].hash)
    report = trail.verify()
    assert (report.ok, report.events, report.checkpoints, report.vouched_through) == (True, 12, 2, 10)


def test_the_signing_key_is_generated_beside_the_database_with_mode_0600(tmp_path: Path) -> None:
    open_audit_log(tmp_path / "a.db").close()
    key = default_key_file(tmp_path / "a.db")
    assert key == tmp_path / "a.key" and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_a_trail_with_checkpoints_is_not_given_a_fresh_key(tmp_path: Path) -> None:
    with open_audit_log(tmp_path / "a.db", checkpoint_every=1) as log:
        fill(log, 1)
    default_key_file(tmp_path / "a.db").unlink()
    with pytest.raises(StoreError) as err:
        open_audit_log(tmp_path / "a.db")
    assert "signing key" in err.value.message
    with open_audit_log(tmp_path / "a.db", create_key=False) as reader:  # readers still read
        assert reader.key is None and len(list(reader.records())) == 1


def test_the_intent_write_is_one_immediate_transaction(tmp_path: Path) -> None:
    statements: list[str] = []
    with open_audit_log(tmp_path / "a.db", tracer=lambda sql, params: statements.append(sql.split(" (")[0])) as log:
        statements.clear()
        Recorder(log).call_decided(ALICE, "default", "up.echo", {"text": "hi"}, Decision(True, "allowed"))
    assert statements == ["BEGIN IMMEDIATE", "SELECT seq, hash FROM audit_head WHERE id = 1",
                          "INSERT INTO audit_events", "INSERT INTO audit_events",
                          "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", "COMMIT"]


def test_the_audit_database_is_not_the_store(tmp_path: Path) -> None:
    open_store(tmp_path / "interlock.db").close()
    with pytest.raises(StoreError):
        open_audit_log(tmp_path / "interlock.db")


# -- tampering, as someone with write access to the file would do it


def _columns() -> str:
    return ", ".join(["prev_hash", "hash", *EVENT_FIELDS])


def test_verify_names_an_edited_row(trail: SQLiteAuditLog) -> None:
    fill(trail, 8)
    trail.db.execute("UPDATE audit_events SET decision = 'allow' WHERE seq = 6")
    assert trail.verify().broken == Break(6, "edited", "seq 6 was edited: its content no longer matches its hash")


def test_verify_names_a_deleted_row(trail: SQLiteAuditLog) -> None:
    fill(trail, 8)
    trail.db.execute("DELETE FROM audit_events WHERE seq = 3")
    broken = trail.verify().broken
    assert broken is not None and (broken.seq, broken.kind) == (3, "deleted")


def test_verify_names_swapped_rows(trail: SQLiteAuditLog) -> None:
    fill(trail, 8)
    a = trail.db.execute(f"SELECT {_columns()} FROM audit_events WHERE seq = 2").fetchone()
    b = trail.db.execute(f"SELECT {_columns()} FROM audit_events WHERE seq = 7").fetchone()
    assign = ", ".join(f"{c} = ?" for c in _columns().split(", "))
    trail.db.execute(f"UPDATE audit_events SET {assign} WHERE seq = 2", list(b))
    trail.db.execute(f"UPDATE audit_events SET {assign} WHERE seq = 7", list(a))
    broken = trail.verify().broken
    assert broken is not None and (broken.seq, broken.kind) == (2, "reordered")


def test_verify_names_deleted_newest_rows(trail: SQLiteAuditLog) -> None:
    fill(trail, 8)
    trail.db.execute("DELETE FROM audit_events WHERE seq >= 7")
    broken = trail.verify().broken
    assert broken is not None and (broken.seq, broken.kind) == (7, "deleted")


def test_cli_verify_reports_the_break_and_exits_1(tmp_path: Path) -> None:
    with open_audit_log(tmp_path / "interlock-audit.db", checkpoint_every=5) as log:
        fill(log, 7)
        assert run_cli(tmp_path, "audit", "verify").stdout.strip() == (
            "ok: 7 events, seq 1 to 7, 1 checkpoint(s), signed through seq 5")
        log.db.execute("UPDATE audit_events SET agent = 'claude' WHERE seq = 4")
    result = run_cli(tmp_path, "audit", "verify", check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("broken at seq 4 (edited):")


# -- retention


def test_retention_deletes_only_up_to_a_checkpoint_and_verification_passes_across_the_cut(
        tmp_path: Path) -> None:
    clock = Clock()
    trail = open_audit_log(tmp_path / "audit.db", checkpoint_every=5, clock=clock)
    for i in range(12):  # 12 old events: checkpoints at 5 and 10
        clock.time = at(i, "2025-01-01")
        trail.append([ev(i, time=clock.time)])
    clock.time = at(0, "2026-06-01")
    fill(trail, 3, time=clock.time)  # 3 recent ones (seq 13-15, checkpoint at 15)
    report = trail.prune("2026-01-01T00:00:00.000000+00:00")
    assert (report.deleted, report.through_seq) == (10, 10)
    records = list(trail.records())
    assert [r.seq for r in records] == [11, 12, 13, 14, 15, 16]
    assert records[-1].event.kind == "retention" and records[-1].event.detail == {
        "deleted": 10, "through_seq": 10, "cutoff": "2026-01-01T00:00:00.000000+00:00"}
    assert [c.seq for c in trail.checkpoints()] == [10, 15]
    cut = trail.checkpoints()[0]
    assert records[0].prev_hash == cut.hash  # the first remaining event is vouched for by the checkpoint
    verified = trail.verify()
    assert (verified.ok, verified.first_seq, verified.vouched_through) == (True, 11, 15)
    # tampering still shows after the cut
    trail.db.execute("DELETE FROM audit_events WHERE seq = 11")
    broken = trail.verify().broken
    assert broken is not None and (broken.seq, broken.kind) == (11, "deleted")
    trail.close()


def test_retention_without_a_checkpoint_deletes_nothing(trail: SQLiteAuditLog) -> None:
    for i in range(4):
        trail.append([ev(i, time="2025-01-01T00:00:00.000000+00:00")])
    assert trail.prune("2026-01-01T00:00:00+00:00").deleted == 0
    assert len(list(trail.records())) == 4


def test_retention_cutoff_is_in_the_trails_time_format() -> None:
    from datetime import UTC, datetime

    assert retention_cutoff(30, datetime(2026, 3, 31, tzinfo=UTC)) == "2026-03-01T00:00:00.000000+00:00"


# -- exports


def test_an_exported_segment_verifies_on_its_own_and_ends_at_a_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    trail = open_audit_log(tmp_path / "audit.db", checkpoint_every=5, clock=clock)
    for i in range(12):
        clock.time = at(i * 60)
        trail.append([ev(i, time=clock.time)])
    segment = trail.segment(at(3 * 60), at(6 * 60))
    assert [r.seq for r in segment.records] == [4, 5, 6, 7, 8, 9, 10]  # extended to the checkpoint at 10
    assert [c.seq for c in segment.checkpoints] == [5, 10]
    lines = list(export_lines(segment, trail.key, since=None, until=None, exported_at="t"))  # type: ignore[arg-type]
    assert verify_export(lines, trail.public_keys).ok
    # no checkpoint after the range yet: export signs one at the head
    tail = trail.segment(at(11 * 60))
    assert [r.seq for r in tail.records] == [12] and tail.checkpoints[-1].seq == 12
    trail.close()


def test_cli_export_then_verify_the_file_and_a_tampered_copy(tmp_path: Path) -> None:
    with open_audit_log(tmp_path / "interlock-audit.db", checkpoint_every=4) as log:
        fill(log, 9)
    run_cli(tmp_path, "audit", "export", "--since", "2026-06-01", "-o", str(tmp_path / "x.jsonl"))
    pem = run_cli(tmp_path, "audit", "key").stdout
    (tmp_path / "pub.pem").write_text(pem)
    ok = run_cli(tmp_path, "audit", "verify", "--file", str(tmp_path / "x.jsonl"), "--public-key",
                 str(tmp_path / "pub.pem"))
    assert ok.stdout.strip() == "ok: 9 events, seq 1 to 9, 3 checkpoint(s), signed through seq 9"
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if json.loads(line).get("seq") == 2 and '"event"' in line)
    doc = json.loads(lines[i])
    doc["event"]["agent"] = "someone-else"
    lines[i] = json.dumps(doc)
    (tmp_path / "y.jsonl").write_text("\n".join(lines) + "\n")
    bad = run_cli(tmp_path, "audit", "verify", "--file", str(tmp_path / "y.jsonl"), check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("broken at seq 2 (edited):")


# -- fail closed


def _make_read_only(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o444)
        return
    # root ignores file modes: make the file immutable instead
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without `chattr +i`: cannot make a file read-only")


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o644)


def test_a_read_only_file_refuses_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_audit_log(path) as log:
        fill(log, 2)
    _make_read_only(path)
    try:
        with open_audit_log(path) as log:  # opening writes nothing, so it opens
            with pytest.raises(AuditUnavailableError) as err:
                log.append([ev(9)])
            assert err.value.code == "audit_unavailable" and "readonly" in err.value.message
            assert log.head()[0] == 2
    finally:
        _make_writable(path)


def fill_disk(log: SQLiteAuditLog) -> None:
    """Cap the file at its current size, then fill its last pages with the smallest events."""
    pages = log.db.execute("PRAGMA page_count").fetchone()[0]
    log.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(AuditUnavailableError):
        for i in range(100_000):
            log.append([Event(kind="retention", time=str(i))])


def test_a_full_disk_refuses_appends_and_writes_nothing(trail: SQLiteAuditLog) -> None:
    fill(trail, 3)
    fill_disk(trail)
    head = trail.head()
    with pytest.raises(AuditUnavailableError) as err:
        Recorder(trail).call_decided(ALICE, "default", "up.echo", {}, Decision(True, "allowed"))
    assert "full" in err.value.message
    assert trail.head() == head and trail.verify().ok


# -- concurrent writers

WRITER = """
import sys
from registry.audit_store import open_audit_log
from executor.audit import Event
log = open_audit_log(sys.argv[1], checkpoint_every=7)
for i in range(150):
    log.append([Event(kind="decision", time="t", agent=sys.argv[2]), Event(kind="intent", time="t", agent=sys.argv[2])])
log.close()
"""


def test_appends_from_concurrent_processes_form_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    open_audit_log(path, checkpoint_every=7).close()  # create the file and key once
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}"], cwd=Path(__file__).parents[1])
             for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with open_audit_log(path, checkpoint_every=7) as log:
        records = list(log.records())
        assert [r.seq for r in records] == list(range(1, 1201))
        # a call's decision and intent are adjacent: each append is one transaction
        assert all(records[i].event.agent == records[i + 1].event.agent for i in range(0, 1200, 2))
        assert log.verify().ok


# -- the recording API, for every kind


class Ticks:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"t{self.n}"


def recorded(log: SQLiteAuditLog) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(r.event) for r in log.records()]


def test_recording_authorization_requests_and_connection_changes(trail: SQLiteAuditLog) -> None:
    audit = Recorder(trail, clock=Ticks())
    audit.authorization_requested(ALICE, gateway="default", provider="mail", flow="state-123",
                                  scopes=["mail.read"], tool="mail.read", request_id="req-1")
    audit.authorization_completed(agent="cursor", user=ALICE.user, provider="mail", flow="state-123",
                                  outcome="success", credential_id="tok-id-9")
    audit.connection_changed("created", agent="cursor", user=ALICE.user, provider="mail", credential_id="tok-id-9")
    audit.connection_changed("refreshed", agent="cursor", user=ALICE.user, provider="mail",
                             credential_id="tok-id-10")
    audit.connection_changed("revoked", agent="cursor", user=ALICE.user, provider="mail", reason="admin")
    who = {"agent": "cursor", "user_issuer": "https://idp.example", "user_subject": "alice"}
    assert recorded(trail) == [
        {"kind": "authorization_requested", "time": "t1", "request_id": "req-1", "gateway": "default", **who,
         "tool": "mail.read", "credential": fingerprint("jti-alice"), "provider": "mail",
         "target": fingerprint("state-123"), "detail": {"scopes": ["mail.read"]}},
        {"kind": "authorization_completed", "time": "t2", **who, "outcome": "success",
         "credential": fingerprint("tok-id-9"), "provider": "mail", "target": fingerprint("state-123")},
        {"kind": "connection_created", "time": "t3", **who, "credential": fingerprint("tok-id-9"),
         "provider": "mail", "action": "created"},
        {"kind": "connection_refreshed", "time": "t4", **who, "credential": fingerprint("tok-id-10"),
         "provider": "mail", "action": "refreshed"},
        {"kind": "connection_revoked", "time": "t5", **who, "reason": "admin", "provider": "mail",
         "action": "revoked"},
    ]


def test_recording_skill_runs_and_steps(trail: SQLiteAuditLog) -> None:
    audit = Recorder(trail, lambda g: ArgumentPolicy(True, frozenset({"password"})), clock=Ticks())
    run = {"gateway": "default", "skill": "reply-to-email", "version": "1.2.0", "run_id": "run-7"}
    audit.skill_run_started(ALICE, **run, arguments={"to": "bob", "password": "x"})
    audit.skill_step(ALICE, **run, step="fetch", status="started", tool="mail.read")
    audit.skill_step(ALICE, **run, step="fetch", status="succeeded", tool="mail.read")
    audit.skill_run_finished(ALICE, **run, outcome="success", latency_ms=12.3456)
    who = {"gateway": "default", "agent": "cursor", "user_issuer": "https://idp.example", "user_subject": "alice",
           "credential": fingerprint("jti-alice"), "skill": "reply-to-email", "skill_version": "1.2.0",
           "run_id": "run-7"}
    from executor.audit import digest

    assert recorded(trail) == [
        {"kind": "skill_run_started", "time": "t1", **who,
         "arguments_digest": digest({"to": "bob", "password": "x"}),
         "arguments": {"to": "bob", "password": "[redacted]"}},
        {"kind": "skill_step", "time": "t2", **who, "tool": "mail.read", "step": "fetch", "outcome": "started"},
        {"kind": "skill_step", "time": "t3", **who, "tool": "mail.read", "step": "fetch", "outcome": "succeeded"},
        {"kind": "skill_run_finished", "time": "t4", **who, "outcome": "success", "latency_ms": 12.346},
    ]


def test_skill_steps_through_the_choke_point_carry_the_run(trail: SQLiteAuditLog) -> None:
    audit = Recorder(trail, clock=Ticks(), ids=lambda: "req")
    step = StepContext("reply-to-email", "1.2.0", "run-7", "send")
    pending = audit.call_decided(ALICE, "default", "mail.send", {"to": "bob"}, Decision(True, "allowed"),
                                 tool_version="sha256:abc", step=step)
    audit.call_finished(pending, "success", 3.0)
    assert [(e["kind"], e["skill"], e["run_id"], e["step"], e["tool_version"]) for e in recorded(trail)] == [
        ("decision", "reply-to-email", "run-7", "send", "sha256:abc"),
        ("intent", "reply-to-email", "run-7", "send", "sha256:abc"),
        ("outcome", "reply-to-email", "run-7", "send", "sha256:abc")]


def test_recording_admin_changes_with_the_actor(trail: SQLiteAuditLog) -> None:
    audit = Recorder(trail, clock=Ticks())
    audit.admin(Actor.of(ALICE)).change("bless", "up", {"status": {"before": "quarantined", "after": "pinned"}},
                                        tool="up.echo", tool_version="sha256:new")
    audit.admin(Actor("interlock-server")).change("quarantine", "up", {"hash": {"before": "a", "after": "b"}})
    assert recorded(trail) == [
        {"kind": "admin_change", "time": "t1", "agent": "cursor", "user_issuer": "https://idp.example",
         "user_subject": "alice", "tool": "up.echo", "tool_version": "sha256:new", "action": "bless",
         "target": "up", "detail": {"diff": {"status": {"before": "quarantined", "after": "pinned"}}}},
        {"kind": "admin_change", "time": "t2", "agent": "interlock-server", "action": "quarantine",
         "target": "up", "detail": {"diff": {"hash": {"before": "a", "after": "b"}}}},
    ]


def test_queries_filter_by_who_what_and_when(trail: SQLiteAuditLog) -> None:
    trail.append([ev(1, at(1), agent="a1", user_subject="u1", decision="allow"),
                  ev(2, at(2), agent="a2", user_subject="u1", decision="deny"),
                  ev(3, at(3), agent="a1", user_subject="u2", decision="deny", gateway="g", tool="x.y")])

    def seqs(**q: Any) -> list[int]:
        return [r.seq for r in trail.query(AuditQuery(**q))]

    assert seqs(user="u1") == [2, 1]
    assert seqs(agent="a1", newest_first=False) == [1, 3]
    assert seqs(decision="deny", gateway="g", tool="x.y") == [3]
    assert seqs(since=at(2)) == [3, 2]
    assert seqs(until=at(2)) == [1]
    assert seqs(user="u1", limit=1) == [2]


def test_time_ranges_narrowed_by_checkpoints_find_exactly_the_events_in_range(tmp_path: Path) -> None:
    clock = Clock()
    with open_audit_log(tmp_path / "audit.db", checkpoint_every=4, clock=clock) as trail:
        for i in range(60):  # one event every 30 s; checkpoints every 4 events (2 minutes)
            clock.time = at(i * 30)
            trail.append([ev(i, time=clock.time)])
        everything = [(r.seq, r.event.time) for r in trail.records()]
        statements: list[str] = []

        def trace(sql: str, params: Any) -> None:
            statements.append(sql)
        for since, until in ((None, at(600)), (at(300), None), (at(305), at(1205)), (at(0), at(1800)),
                             (at(1790), at(1795))):
            found = [(r.seq, r.event.time) for r in trail.query(AuditQuery(since=since, until=until, limit=None,
                                                                           newest_first=False))]
            assert found == [(s, t) for s, t in everything if (since is None or t >= since)
                             and (until is None or t < until)], (since, until)
            with trail.db.tracer(trace):
                trail.query(AuditQuery(since=since, until=until))
            assert "seq > ?" in statements[-1] or "seq <= ?" in statements[-1] or since in (None, at(0))


def test_the_user_and_agent_queries_use_their_indexes(trail: SQLiteAuditLog) -> None:
    for column, index in (("user_subject", "audit_events_user"), ("agent", "audit_events_agent")):
        plan = trail.db.execute(f"EXPLAIN QUERY PLAN SELECT * FROM audit_events WHERE {column} = ? "
                                "ORDER BY seq DESC LIMIT 100", ["x"]).fetchall()
        assert index in str(plan) and "TEMP B-TREE" not in str(plan)


def test_gateway_argument_policies_follow_the_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "interlock.db") as store:
        arguments = GatewayArguments(store)
        assert arguments("default") == ArgumentPolicy()
        store.apply_config(Config(gateways=[GatewayConfig(name="default", record_arguments=True,
                                                          redact_fields=["pin"])]))
        assert arguments("default") == ArgumentPolicy(True, frozenset({"pin"}))
        store.apply_config(Config(gateways=[GatewayConfig(name="default")]))
        assert arguments("default").record is False


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.db").write_text("not a database at all, just text that is long enough")
    with pytest.raises(StoreError):
        open_audit_log(tmp_path / "x.db")
    assert sqlite3.sqlite_version  # the file was left alone
    assert (tmp_path / "x.db").read_text().startswith("not a database")


def test_the_audit_config_is_checked() -> None:
    from executor.errors import ConfigError
    from registry.config import parse_config

    with pytest.raises(ConfigError) as err:
        parse_config("audit: {database: interlock.db, checkpoint_every: 0, retention_days: -1, "
                     "signing_key_file: ''}")
    assert [p.split(":")[0] for p in err.value.problems] == [
        "audit.database", "audit.checkpoint_every", "audit.retention_days", "audit.signing_key_file"]
    assert parse_config("audit: {retention_days: 30}").audit.retention_days == 30

