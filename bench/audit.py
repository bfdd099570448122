"""What the audit trail costs: per call on the executor path, and per query over 1,000,000 events.

    python -m bench.audit [--quick] [--json]

(a) ``Executor.call`` in process, against a fake upstream pool that answers at once (so the
    audit's share is not drowned by network time), with the real catalogue over a real SQLite
    store. Two executors differ only in their audit: a no-op (off) and the SQLite trail (on:
    decision + intent in one transaction before the call, the outcome in one after; WAL,
    synchronous=NORMAL). Interleaved rounds A, B, A, B, ... Reports µs per call and the audit's
    cost as a share of a 1-3 ms gateway per-call overhead.
(b) A trail of 1,000,000 chained events (10,000 users, 100 agents, a signed checkpoint every
    1,000; written with executemany in one transaction), then the newest 100 events of a user,
    of an agent, a user's events in a one-day window, and everyone's events in a 10-minute
    window (no time index: the checkpoints narrow it). Reports p50 and p99 in ms.

Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types

from executor.audit import AuditQuery, Event, EventKind, Outcome, canonical_json
from executor.audit_chain import GENESIS, link_hash, sign_checkpoint
from executor.audit_recorder import PendingCall, Recorder, StepContext
from executor.call import Executor
from executor.policy import Decision
from executor.principal import Principal, User
from registry.audit_store import (
    INSERT_CHECKPOINT,
    INSERT_EVENT,
    UPDATE_HEAD,
    GatewayArguments,
    event_row,
    open_audit_log,
)
from registry.catalog import Catalog
from registry.config import Config, GatewayConfig, IdentityConfig, UpstreamConfig, UserGrant
from registry.records import ToolRecord
from registry.sqlite_store import open_store


class InstantPool:
    """Stands in for ``UpstreamPool``: every tool answers at once."""

    RESULT = types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

    async def call_tool(self, spec: Any, name: str, arguments: dict[str, Any], credential: Any = None
                        ) -> types.CallToolResult:
        return self.RESULT


class NoAudit:
    """The executor with the audit switched off (for comparison only; never in the gateway)."""

    EVENT = PendingCall(Event(kind="decision", time=""))

    def call_decided(self, principal: Principal, gateway: str, tool: str, arguments: Any, decision: Decision, *,
                     tool_version: str | None = None, step: StepContext | None = None) -> PendingCall:
        return self.EVENT

    def call_finished(self, pending: PendingCall, outcome: Outcome, latency_ms: float, *,
                      error: str | None = None) -> None:
        return None

    def call_needs_authorization(self, pending: PendingCall, latency_ms: float, *, provider: str,
                                 flow: str) -> None:
        return None


def per_call(folder: Path, rounds: int, calls: int) -> dict[str, Any]:
    store = open_store(folder / "interlock.db")
    store.apply_config(Config(
        identity=IdentityConfig(user_grants=[UserGrant(role="staff", tools=["*.*"])]),
        upstreams=[UpstreamConfig(name="up", url="http://127.0.0.1:9/mcp")],
        gateways=[GatewayConfig(name="default", agents={"cursor": ["up.*"]})]))
    store.record_sync("up", [ToolRecord(server="up", name="echo", pinned_hash="sha256:x", status="pinned",
                                        definition={"name": "echo", "inputSchema": {"type": "object"}})], "now")
    catalog = Catalog(store)
    trail = open_audit_log(folder / "interlock-audit.db")
    on = Executor(catalog, InstantPool(), audit=Recorder(trail, GatewayArguments(store)))  # type: ignore[arg-type]
    off = Executor(catalog, InstantPool(), audit=NoAudit())  # type: ignore[arg-type]
    principal = Principal("cursor", User("https://idp.example", "alice"), frozenset(), frozenset({"role:staff"}),
                          token_id="jti-1")
    arguments = {"text": "hello", "to": ["bob@example.com"], "options": {"cc": None, "priority": 3}}
    samples: dict[str, list[float]] = {"off": [], "on": []}

    async def run() -> None:
        for executor in (off, on):  # warm both
            for _ in range(200):
                await executor.call(principal, "default", "up.echo", arguments)
        clock = time.perf_counter
        for _ in range(rounds):
            for name, executor in (("off", off), ("on", on)):
                start = clock()
                for _ in range(calls):
                    await executor.call(principal, "default", "up.echo", arguments)
                samples[name].append((clock() - start) / calls * 1e6)

    anyio.run(run)
    events = trail.head()[0]
    trail.close()
    store.close()
    off_us, on_us = statistics.median(samples["off"]), statistics.median(samples["on"])
    audit_us = on_us - off_us
    return {"rounds": rounds, "calls_per_round": calls, "off_us_per_call": off_us, "on_us_per_call": on_us,
            "ratio_on_off": on_us / off_us, "audit_us_per_call": audit_us, "events_written": events,
            "share_of_1ms": audit_us / 1000, "share_of_2ms": audit_us / 2000, "share_of_3ms": audit_us / 3000}


def large_trail(folder: Path, events: int, queries: int) -> dict[str, Any]:
    rng = random.Random(7)
    users = [f"user{u:05d}" for u in range(10_000)]
    agents = [f"agent{a:03d}" for a in range(100)]
    tools = [f"srv{s}.tool_{t}" for s in range(10) for t in range(20)]
    log = open_audit_log(folder / "big-audit.db")
    started = time.perf_counter()
    prev = GENESIS
    rows = []
    checkpoints = []
    base = 1_780_000_000  # seconds; one event every 30 s of made-up time
    for seq in range(1, events + 1):
        kind: EventKind = ("decision", "intent", "outcome")[seq % 3]
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + seq * 30)) + ".000000+00:00"
        event = Event(kind=kind, time=when, request_id=f"{seq // 3:016x}", gateway="default",
                      agent=rng.choice(agents), user_issuer="https://idp.example", user_subject=rng.choice(users),
                      tool=rng.choice(tools), arguments_digest="sha256:" + "0" * 64, decision="allow",
                      reason="allowed", outcome="success" if kind == "outcome" else None,
                      latency_ms=12.5 if kind == "outcome" else None, credential="0123456789abcdef")
        hash_ = link_hash(prev, canonical_json(event))
        rows.append(event_row(seq, prev, hash_, event))
        prev = hash_
        if seq % 1000 == 0:
            assert log.key is not None
            cp = sign_checkpoint(log.key, seq, hash_, when)
            checkpoints.append((cp.seq, cp.hash, cp.time, cp.key_id, cp.signature))
    built = time.perf_counter() - started
    conn = log.db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_EVENT, rows)
    conn.executemany(INSERT_CHECKPOINT, checkpoints)
    conn.execute(UPDATE_HEAD, [events, prev])
    conn.execute("COMMIT")
    written = time.perf_counter() - started - built
    del rows

    def timed(make: Any) -> dict[str, float]:
        ms = []
        for _ in range(queries):
            query = make()
            start = time.perf_counter()
            log.query(query)
            ms.append((time.perf_counter() - start) * 1000)
        ms.sort()
        return {"p50_ms": ms[len(ms) // 2], "p99_ms": ms[int(len(ms) * 0.99)]}

    def window(seconds: int) -> tuple[str, str]:
        start = base + rng.randrange(events * 30)
        return (time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(start)),
                time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(start + seconds)))

    result = {
        "events": events, "build_s": built, "write_s": written,
        "by_user_newest_100": timed(lambda: AuditQuery(user=rng.choice(users), limit=100)),
        "by_agent_newest_100": timed(lambda: AuditQuery(agent=rng.choice(agents), limit=100)),
        "by_user_in_a_day": timed(lambda: AuditQuery(user=rng.choice(users), since=(w := window(86_400))[0],
                                                     until=w[1], limit=None)),
        "all_in_10_minutes": timed(lambda: AuditQuery(since=(w := window(600))[0], until=w[1], limit=None)),
        "db_mb": (folder / "big-audit.db").stat().st_size / 1e6,
    }
    log.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and 100,000 events")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        calls = per_call(folder, rounds=4 if args.quick else 10, calls=500 if args.quick else 2000)
        big = large_trail(folder, 100_000 if args.quick else 1_000_000, 50 if args.quick else 200)
    if args.json:
        print(json.dumps({"per_call": calls, "large_trail": big}))
        return
    print(f"(a) Executor.call, in process, instant fake upstream, {calls['rounds']} interleaved rounds of "
          f"{calls['calls_per_round']} calls each:")
    print(f"    audit off {calls['off_us_per_call']:.1f} µs/call   audit on {calls['on_us_per_call']:.1f} µs/call   "
          f"ratio {calls['ratio_on_off']:.2f}x")
    print(f"    the audit costs {calls['audit_us_per_call']:.1f} µs per call (3 events, 2 transactions) = "
          f"{calls['share_of_1ms']:.1%} / {calls['share_of_2ms']:.1%} / {calls['share_of_3ms']:.1%} of a "
          "1 / 2 / 3 ms gateway per-call overhead")
    print(f"(b) {big['events']:,} events ({big['db_mb']:.0f} MB): built in {big['build_s']:.1f} s, "
          f"written in {big['write_s']:.1f} s")
    for name in ("by_user_newest_100", "by_agent_newest_100", "by_user_in_a_day", "all_in_10_minutes"):
        q = big[name]
        print(f"    {name.replace('_', ' '):22} p50 {q['p50_ms']:.2f} ms  p99 {q['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
