"""``python -m bench``: what the gateway adds to every call, as ratios measured side by side in one run.

    python -m bench [--quick] [--json PATH] [--workdir DIR] [--verbose]

Starts on loopback: the benchmark upstream fleet (``bench/upstream.py``: 10 upstreams of 500
tools, one uvicorn process with httptools + uvloop) and the gateway (``interlock serve``, SQLite,
embedded issuer, 50 agents, 1,000 users, 5,000 tools, user grants by role; ``bench/scenario.py``).
The clients are ``mcp`` SDK clients in this process. Then it measures, in interleaved rounds
(direct, gateway, gateway, direct, …) so that drift on a shared machine hits both sides alike:

- per-call latency: sequential ``tools/call`` direct to the upstream vs through the gateway, with
  identical client code, in both protocol eras, for ``echo`` and a ~4 KB structured result;
- throughput: 16 concurrent clients, a fixed number of calls, direct vs gateway;
- the intersection decision alone (``bench.decision.run``);
- ``tools/list`` of the 5,000-tool gateway for one principal: the first page and the full walk;
- a 5-step skill vs the same 5 calls through the gateway (when the gateway serves ``skill.*``);
- audit on vs off (``bench/audit.py``'s figure while the gateway has no switch to turn it off);
- the gateway's peak RSS during the throughput run.

Prints a table; ``--json PATH`` writes the same figures with the run's parameters and machine.
Asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench import scenario
from bench.processes import (
    BenchError,
    Process,
    cpu_seconds,
    free_port,
    gateway,
    memory_kib,
    reset_peak_rss,
    upstream,
)

MODES = {"legacy": "legacy", "modern": "2026-07-28"}
"""The two protocol eras: 2025-11-25 (``initialize`` + sessions) and 2026-07-28 (stateless)."""

TARGETS = {
    "overhead_p50_ms": 1.5,
    "throughput_ratio": 0.5,
    "decision_p50_us": 20.0,
    "listing_first_page_p50_ms": 10.0,
    "skill_per_step_overhead_pct": 10.0,
    "audit_share_of_overhead_pct": 10.0,
}
"""What the issue asks for (see docs/performance.md); reported next to what was measured."""

SKILL = "bench-five"
SKILL_STEPS = 5


@dataclass(frozen=True)
class Plan:
    """How much to measure. ``quick`` is for the smoke test and a first look (< 30 s)."""

    quick: bool
    calls: int
    """Sequential calls per side (direct, gateway) for each per-call row."""
    warmup: int
    rounds: int
    clients: int
    throughput_calls: int
    """Calls per side in the throughput run, over all rounds."""
    throughput_rounds: int
    decisions: int
    listing_first: int
    listing_walks: int
    skill_runs: int
    record_modes: tuple[str, ...]

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, calls=120, warmup=20, rounds=2, clients=16, throughput_calls=480,
                       throughput_rounds=2, decisions=20_000, listing_first=10, listing_walks=2, skill_runs=10,
                       record_modes=("legacy",))
        return cls(quick=False, calls=1000, warmup=100, rounds=10, clients=16, throughput_calls=3200,
                   throughput_rounds=4, decisions=200_000, listing_first=60, listing_walks=6, skill_runs=100,
                   record_modes=("legacy", "modern"))


# --------------------------------------------------------------------------- statistics


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of already *sorted* samples (as bench/decision.py reads them)."""
    return samples[min(len(samples) - 1, int(len(samples) * q))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)
    return {"p50_ms": percentile(ordered, 0.50), "p95_ms": percentile(ordered, 0.95),
            "p99_ms": percentile(ordered, 0.99), "n": len(ordered)}


# --------------------------------------------------------------------------- clients


@contextlib.asynccontextmanager
async def connect(url: str, token: str, mode: str, *, prime: list[str] | None = None) -> AsyncIterator[Client]:
    """An agent's ``mcp`` client session; the same code for the upstream and the gateway.

    ``prime``: walk ``tools/list`` until these tools were seen. The SDK validates a result
    against the tool's ``outputSchema`` from its last listing and lists page one again for a
    tool it has not seen, on every call; an agent lists before it calls, and so do we."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http, \
            Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
        if prime:
            await _prime(client, prime)
        yield client


async def _prime(client: Client, names: list[str]) -> None:
    wanted = set(names)
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        wanted -= {t.name for t in page.tools}
        cursor = page.next_cursor
        if not wanted or cursor is None:
            break
    if wanted:
        raise BenchError(f"the server does not list {sorted(wanted)} for the benchmark principal")


def _check(result: types.CallToolResult, tool: str) -> None:
    if result.is_error:
        text = result.content[0].text if result.content and isinstance(result.content[0], types.TextContent) else ""
        raise BenchError(f"{tool} answered with an error: {text[:300]}")


Call = Callable[[int], Awaitable[None]]


def caller(client: Client, tool: str, kind: str) -> Call:
    """One call of ``tool`` (``echo`` or ``record`` kind) with fresh arguments, result checked."""
    if kind == "record":
        async def call(i: int) -> None:
            result = await client.call_tool(tool, {"n": i})
            _check(result, tool)
            if not result.structured_content:
                raise BenchError(f"{tool} returned no structured content")
    else:
        async def call(i: int) -> None:
            _check(await client.call_tool(tool, {"text": f"m{i}"}), tool)
    return call


async def sequential(call: Call, n: int, start: int, out: list[float]) -> None:
    clock = time.perf_counter
    for i in range(start, start + n):
        t = clock()
        await call(i)
        out.append(clock() - t)


# --------------------------------------------------------------------------- measurements


@dataclass
class Setup:
    plan: Plan
    direct_url: str
    gateway_url: str
    token: str
    gateway: Process
    upstream: Process
    notes: list[str] = field(default_factory=list)


async def per_call(setup: Setup, mode: str, kind: str) -> dict[str, float]:
    """Sequential calls, direct and through the gateway, in interleaved rounds."""
    plan = setup.plan
    tool = scenario.ECHO if kind == "echo" else scenario.RECORD
    exposed = f"{scenario.MEASURED_SERVER}.{tool}"
    async with connect(setup.direct_url, setup.token, MODES[mode], prime=[tool]) as direct, \
            connect(setup.gateway_url, setup.token, MODES[mode], prime=[exposed]) as through:
        sides = {"direct": caller(direct, tool, kind), "gateway": caller(through, exposed, kind)}
        samples: dict[str, list[float]] = {"direct": [], "gateway": []}
        for call in sides.values():
            await sequential(call, plan.warmup, 0, [])
        per_round = max(1, plan.calls // plan.rounds)
        watched = {"direct": setup.upstream.pid, "gateway": setup.gateway.pid}
        cpu = {"direct": 0.0, "gateway": 0.0}
        for r in range(plan.rounds):
            order = ["direct", "gateway"] if r % 2 == 0 else ["gateway", "direct"]
            for name in order:
                before = cpu_seconds(watched[name])
                await sequential(sides[name], per_round, plan.warmup + r * per_round, samples[name])
                cpu[name] += cpu_seconds(watched[name]) - before
    d, g = summary_ms(samples["direct"]), summary_ms(samples["gateway"])
    return {
        **{f"direct_{k}": v for k, v in d.items() if k != "n"},
        **{f"gateway_{k}": v for k, v in g.items() if k != "n"},
        "ratio_p50": g["p50_ms"] / d["p50_ms"], "ratio_p95": g["p95_ms"] / d["p95_ms"],
        "ratio_p99": g["p99_ms"] / d["p99_ms"], "overhead_p50_ms": g["p50_ms"] - d["p50_ms"],
        "calls": d["n"],
        "upstream_cpu_ms_per_call": 1000 * cpu["direct"] / d["n"],
        "gateway_cpu_ms_per_call": 1000 * cpu["gateway"] / g["n"],
    }


async def throughput(setup: Setup) -> dict[str, float]:
    """``clients`` concurrent clients, each with its own session and connection, a fixed number of
    calls per side, interleaved rounds. Resets the gateway's peak RSS first, reads it after."""
    plan = setup.plan
    mode = MODES["legacy"]
    exposed = f"{scenario.MEASURED_SERVER}.{scenario.ECHO}"
    per_client = max(1, plan.throughput_calls // plan.throughput_rounds // plan.clients)
    async with contextlib.AsyncExitStack() as stack:
        sides: dict[str, list[Call]] = {"direct": [], "gateway": []}
        for _ in range(plan.clients):
            direct = await stack.enter_async_context(connect(setup.direct_url, setup.token, mode,
                                                             prime=[scenario.ECHO]))
            through = await stack.enter_async_context(connect(setup.gateway_url, setup.token, mode, prime=[exposed]))
            sides["direct"].append(caller(direct, scenario.ECHO, "echo"))
            sides["gateway"].append(caller(through, exposed, "echo"))
        for calls in sides.values():  # warm every connection
            async with anyio.create_task_group() as tg:
                for call in calls:
                    tg.start_soon(sequential, call, 5, 0, [])
        before = memory_kib(setup.gateway.pid)
        reset = reset_peak_rss(setup.gateway.pid)
        if not reset:
            setup.notes.append("could not reset the gateway's VmHWM: the peak RSS includes start-up")
        elapsed = {"direct": 0.0, "gateway": 0.0}
        done = {"direct": 0, "gateway": 0}
        client_cpu = {"direct": 0.0, "gateway": 0.0}
        gateway_cpu = 0.0
        for r in range(plan.throughput_rounds):
            for name in (["direct", "gateway"] if r % 2 == 0 else ["gateway", "direct"]):
                start, cpu, gw = time.perf_counter(), time.process_time(), cpu_seconds(setup.gateway.pid)
                async with anyio.create_task_group() as tg:
                    for call in sides[name]:
                        tg.start_soon(sequential, call, per_client, 100 + r * per_client, [])
                elapsed[name] += time.perf_counter() - start
                client_cpu[name] += time.process_time() - cpu
                if name == "gateway":
                    gateway_cpu += cpu_seconds(setup.gateway.pid) - gw
                done[name] += per_client * plan.clients
        after = memory_kib(setup.gateway.pid)
    direct_cps, gateway_cps = done["direct"] / elapsed["direct"], done["gateway"] / elapsed["gateway"]
    return {"direct_cps": direct_cps, "gateway_cps": gateway_cps, "ratio": gateway_cps / direct_cps,
            "calls_per_side": done["gateway"],
            "client_cpu_ms_per_call_direct": 1000 * client_cpu["direct"] / done["direct"],
            "client_cpu_ms_per_call_gateway": 1000 * client_cpu["gateway"] / done["gateway"],
            "gateway_cpu_ms_per_call": 1000 * gateway_cpu / done["gateway"],
            "rss_before_mb": before.get("VmRSS", 0) / 1024,
            "peak_rss_mb": after.get("VmHWM", 0) / 1024, "peak_reset": reset}


async def listing(setup: Setup) -> dict[str, float]:
    """``tools/list`` on the 5,000-tool gateway for the measured principal: page one, and every page."""
    plan = setup.plan
    async with connect(setup.gateway_url, setup.token, MODES["legacy"]) as client:
        await client.list_tools()  # warm
        first: list[float] = []
        for _ in range(plan.listing_first):
            t = time.perf_counter()
            await client.list_tools()
            first.append(time.perf_counter() - t)
        walks: list[float] = []
        tools = pages = 0
        for _ in range(plan.listing_walks):
            t = time.perf_counter()
            cursor: str | None = None
            tools = pages = 0
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += len(page.tools)
                pages += 1
                cursor = page.next_cursor
                if cursor is None:
                    break
            walks.append(time.perf_counter() - t)
    f, w = summary_ms(first), summary_ms(walks)
    return {"first_page_p50_ms": f["p50_ms"], "first_page_p95_ms": f["p95_ms"], "full_walk_p50_ms": w["p50_ms"],
            "tools": tools, "pages": pages, "per_page_ms": w["p50_ms"] / max(pages, 1)}


def publish_skill(db: Path) -> str | None:
    """Publish the benchmark's 5-step skill into the gateway's store; None, or why it could not be."""
    try:
        registry = importlib.import_module("registry.skill_registry")
        from registry.sqlite_store import open_store
    except ImportError as exc:
        return f"the skill registry cannot be imported ({exc})"
    steps = "\n".join(f"  - id: s{i}\n    tool: {scenario.MEASURED_SERVER}.{scenario.ECHO}\n"
                      f"    with:\n      text: \"{{{{ inputs.text }}}} {i}\"" for i in range(1, SKILL_STEPS + 1))
    text = (f"name: {SKILL}\nversion: 1.0.0\ndescription: Five echo calls in a row, for the benchmark.\n"
            "instructions: |\n  Benchmark only: calls the echo tool five times.\n"
            "inputs:\n  type: object\n  properties:\n    text: {type: string}\n  required: [text]\n"
            f"steps:\n{steps}\noutputs:\n  last: \"{{{{ steps.s{SKILL_STEPS}.output }}}}\"\n")
    store = open_store(str(db))
    try:
        registry.publish(store, text)
    except Exception as exc:  # a registry still being built: report, don't fake
        return f"publishing the benchmark skill failed: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        store.close()
    return None


async def skills(setup: Setup, db: Path) -> tuple[dict[str, float] | None, str | None]:
    """A 5-step skill run vs the same 5 calls through the gateway, interleaved."""
    problem = publish_skill(db)
    if problem is not None:
        return None, f"skills not available: {problem}"
    exposed = f"{scenario.MEASURED_SERVER}.{scenario.ECHO}"
    skill_tool = f"skill.{SKILL}"
    mode = MODES["legacy"]
    async with connect(setup.gateway_url, setup.token, mode, prime=[exposed]) as client:
        names: set[str] = set()
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            names |= {t.name for t in page.tools}
            cursor = page.next_cursor
            if cursor is None:
                break
        if skill_tool not in names:
            return None, f"skills not available: the gateway does not serve `{skill_tool}` as a tool"
        step = caller(client, exposed, "echo")

        async def five(i: int) -> None:
            for k in range(SKILL_STEPS):
                await step(i * SKILL_STEPS + k)

        async def run_skill(i: int) -> None:
            _check(await client.call_tool(skill_tool, {"text": f"m{i}"}), skill_tool)

        sides: dict[str, Call] = {"skill": run_skill, "calls": five}
        samples: dict[str, list[float]] = {"skill": [], "calls": []}
        for call in sides.values():
            await sequential(call, 5, 0, [])
        rounds = max(2, setup.plan.rounds)
        per_round = max(1, setup.plan.skill_runs // rounds)
        for r in range(rounds):
            for name in (["skill", "calls"] if r % 2 == 0 else ["calls", "skill"]):
                await sequential(sides[name], per_round, 10 + r * per_round, samples[name])
    s, c = summary_ms(samples["skill"]), summary_ms(samples["calls"])
    ratio = s["p50_ms"] / c["p50_ms"]
    return {"run_p50_ms": s["p50_ms"], "five_calls_p50_ms": c["p50_ms"], "ratio": ratio,
            "per_step_overhead_pct": (ratio - 1) * 100}, None


def audit_figure(plan: Plan, overhead_ms: float | None) -> dict[str, Any]:
    """The audit's cost. The gateway has no switch to run without its audit, so the on/off figure
    is bench/audit.py's: ``Executor.call`` in process with the SQLite trail vs a no-op recorder,
    against an instant fake upstream. Its µs per call are then set against this run's gateway
    overhead (legacy echo, p50)."""
    try:
        audit_bench = importlib.import_module("bench.audit")
        per_call_audit = audit_bench.per_call
    except (ImportError, AttributeError) as exc:
        return {"audit_ratio": None, "audit_reason": f"the gateway cannot turn the audit off, and bench/audit.py's "
                                                     f"per_call is not available ({exc})"}
    try:
        with tempfile.TemporaryDirectory(prefix="interlock-bench-audit-") as tmp:
            row = per_call_audit(Path(tmp), rounds=4 if plan.quick else 10, calls=300 if plan.quick else 2000)
        audit_us = float(row["audit_us_per_call"])
        out: dict[str, Any] = {"audit_ratio": float(row["ratio_on_off"]), "audit_us_per_call": audit_us,
                               "audit_off_us_per_call": float(row["off_us_per_call"]),
                               "audit_on_us_per_call": float(row["on_us_per_call"]),
                               "audit_source": "bench.audit.per_call: Executor.call in process, SQLite trail vs "
                                               "no-op recorder, instant fake upstream"}
    except Exception as exc:  # another engineer's benchmark, still moving: report, never fake
        return {"audit_ratio": None, "audit_reason": f"bench/audit.py's per_call failed: {type(exc).__name__}: "
                                                     f"{str(exc)[:200]}"}
    out["audit_share_of_overhead_pct"] = 100 * audit_us / (overhead_ms * 1000) if overhead_ms else None
    return out


# --------------------------------------------------------------------------- the run


def source_revision() -> dict[str, Any]:
    """The commit measured and whether tracked files differed from it (read-only git calls)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=root, capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_modified_files": None}
    return {"git_commit": commit or None, "git_modified_files": [line[3:] for line in changed if line.strip()]}


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "loadavg_at_start": load}


def mint_token(config_path: Path, db: Path) -> str:
    """A token for the measured principal, minted from the gateway's own store after it started."""
    from executor.idp.dev_tokens import mint_dev_token
    from registry.config import load_config
    from registry.sqlite_store import open_store

    config = load_config(config_path, known_servers=None)
    store = open_store(str(db))
    try:
        return mint_dev_token(store, config, user=scenario.USER, agent=scenario.AGENT, scopes=scenario.SCOPES,
                              gateway=scenario.GATEWAY)
    finally:
        store.close()


@contextlib.contextmanager
def stage(plan: Plan, workdir: Path, log: Callable[[str], None]) -> Iterator[tuple[Setup, Path, float]]:
    """Everything running; yields (setup, the gateway's store, seconds the gateway took to start)."""
    from executor.idp.passwords import hash_password

    password_hash = hash_password("bench-password")
    with upstream(workdir, scenario.TOOLS_PER_SERVER) as (up_proc, up_port):
        port = free_port()
        config = scenario.gateway_config(port=port, workdir=workdir, upstream_port=up_port,
                                         password_hash=password_hash, skills=[SKILL])
        log(f"starting the gateway: {scenario.SERVERS} upstreams x {scenario.TOOLS_PER_SERVER} tools, "
            f"{scenario.AGENTS} agents, {scenario.USERS} users ...")
        with gateway(workdir, config) as (proc, path, took):
            db = Path(config["server"]["database"])
            token = mint_token(path, db)
            setup = Setup(plan=plan, direct_url=f"http://127.0.0.1:{up_port}/mcp/0",
                          gateway_url=f"http://127.0.0.1:{port}/mcp/{scenario.GATEWAY}", token=token, gateway=proc,
                          upstream=up_proc)
            yield setup, db, took


async def measure(setup: Setup, db: Path, log: Callable[[str], None]) -> dict[str, Any]:
    plan = setup.plan
    figures: dict[str, Any] = {}
    rows = [(mode, "echo") for mode in MODES] + [(mode, "record") for mode in plan.record_modes]
    for mode, kind in rows:
        log(f"per-call latency: {mode} {kind} ...")
        row = await per_call(setup, mode, kind)
        figures.update({f"call_{mode}_{kind}_{k}": v for k, v in row.items()})
    log("throughput ...")
    row = await throughput(setup)
    figures.update({f"throughput_{k}": v for k, v in row.items() if not k.startswith(("rss", "peak"))})
    figures["gateway_rss_idle_mb"] = row["rss_before_mb"]
    figures["gateway_peak_rss_mb"] = row["peak_rss_mb"]
    figures["gateway_peak_rss_reset"] = row["peak_reset"]
    log("decision ...")
    from bench.decision import run as decision_run

    decision = decision_run(plan.decisions)
    figures.update({"decision_p50_us": decision["p50_us"], "decision_p99_us": decision["p99_us"],
                    "decision_mean_us": decision["mean_us"], "decisions": decision["decisions"]})
    log("listing ...")
    figures.update({f"listing_{k}": v for k, v in (await listing(setup)).items()})
    log("skills ...")
    skill, why = await skills(setup, db)
    figures.update({"skill_ratio": None, "skill_per_step_overhead_pct": None, "skill_reason": why} if skill is None
                   else {f"skill_{k}": v for k, v in skill.items()})
    return figures


def targets(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def row(target: float, value: Any, *, at_least: bool = False) -> dict[str, Any]:
        met = None if value is None else (value >= target if at_least else value <= target)
        return {"target": target, "measured": value, "met": met}

    audit_share = figures.get("audit_share_of_overhead_pct")
    return {
        "overhead_p50_ms": row(TARGETS["overhead_p50_ms"], figures.get("call_legacy_echo_overhead_p50_ms")),
        "overhead_p50_ms_modern": row(TARGETS["overhead_p50_ms"], figures.get("call_modern_echo_overhead_p50_ms")),
        "throughput_ratio": row(TARGETS["throughput_ratio"], figures.get("throughput_ratio"), at_least=True),
        "decision_p50_us": row(TARGETS["decision_p50_us"], figures.get("decision_p50_us")),
        "listing_first_page_p50_ms": row(TARGETS["listing_first_page_p50_ms"],
                                         figures.get("listing_first_page_p50_ms")),
        "skill_per_step_overhead_pct": row(TARGETS["skill_per_step_overhead_pct"],
                                           figures.get("skill_per_step_overhead_pct")),
        "audit_share_of_overhead_pct": row(TARGETS["audit_share_of_overhead_pct"], audit_share),
    }


# --------------------------------------------------------------------------- output


def _f(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any]) -> str:
    f = result["figures"]
    p = result["params"]
    m = result["machine"]
    out = [f"Interlock benchmark  ({m['cpu_count']} CPUs, {m['cpu_model'] or 'unknown CPU'}, Python {m['python']}"
           f"{', --quick' if p['quick'] else ''})",
           f"gateway: {p['tools']} tools on {p['servers']} upstreams, {p['agents']} agents, {p['users']} users; "
           f"started in {f['gateway_start_s']:.1f}s",
           "",
           f"Per-call latency, sequential tools/call ({p['calls']} calls per side, {p['rounds']} interleaved rounds)",
           f"  {'era':<20}{'tool':<6}{'':<9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}   {'overhead p50':<15}"
           "server CPU per call"]
    for mode, version in MODES.items():
        for kind in ("echo", "record"):
            key = f"call_{mode}_{kind}"
            if f"{key}_ratio_p50" not in f:
                continue
            label = f"{mode} ({version})" if mode == "modern" else "legacy (2025-11-25)"
            tool = "echo" if kind == "echo" else "4KB"
            out.append(f"  {label:<20}{tool:<6}{'direct':<9}{f[f'{key}_direct_p50_ms']:>8.2f}"
                       f"{f[f'{key}_direct_p95_ms']:>8.2f}{f[f'{key}_direct_p99_ms']:>8.2f}   {'':<15}"
                       f"upstream {f[f'{key}_upstream_cpu_ms_per_call']:.2f} ms")
            out.append(f"  {'':<20}{'':<6}{'gateway':<9}{f[f'{key}_gateway_p50_ms']:>8.2f}"
                       f"{f[f'{key}_gateway_p95_ms']:>8.2f}{f[f'{key}_gateway_p99_ms']:>8.2f}"
                       f"   {'+' + format(f[f'{key}_overhead_p50_ms'], '.2f') + ' ms':<15}"
                       f"gateway {f[f'{key}_gateway_cpu_ms_per_call']:.2f} ms")
            out.append(f"  {'':<20}{'':<6}{'ratio':<9}{f[f'{key}_ratio_p50']:>7.2f}x{f[f'{key}_ratio_p95']:>7.2f}x"
                       f"{f[f'{key}_ratio_p99']:>7.2f}x")
    out += [
        "",
        f"Throughput, {p['clients']} concurrent clients (legacy era, echo, {f['throughput_calls_per_side']} calls "
        f"per side, {p['throughput_rounds']} interleaved rounds)",
        f"  direct   {f['throughput_direct_cps']:8.0f} calls/s    client CPU "
        f"{f['throughput_client_cpu_ms_per_call_direct']:.2f} ms/call",
        f"  gateway  {f['throughput_gateway_cps']:8.0f} calls/s    client CPU "
        f"{f['throughput_client_cpu_ms_per_call_gateway']:.2f} ms/call, gateway CPU "
        f"{f['throughput_gateway_cpu_ms_per_call']:.2f} ms/call",
        f"  ratio    {f['throughput_ratio']:8.2f}",
        f"  gateway memory: {f['gateway_rss_idle_mb']:.0f} MB RSS idle, peak RSS under the run "
        f"{f['gateway_peak_rss_mb']:.0f} MB{'' if f['gateway_peak_rss_reset'] else ' (lifetime peak)'}",
        "",
        f"Decision alone ({f['decisions']} decisions): p50 {f['decision_p50_us']:.2f} µs, "
        f"p99 {f['decision_p99_us']:.2f} µs",
        f"Listing ({f['listing_tools']} tools visible to the principal of {p['tools']}, {f['listing_pages']} pages): "
        f"first page p50 {f['listing_first_page_p50_ms']:.2f} ms (p95 {f['listing_first_page_p95_ms']:.2f}), "
        f"full walk p50 {f['listing_full_walk_p50_ms']:.0f} ms",
    ]
    if f.get("skill_ratio") is None:
        out.append(f"Skill, {SKILL_STEPS} steps vs {SKILL_STEPS} calls: n/a ({f.get('skill_reason')})")
    else:
        out.append(f"Skill, {SKILL_STEPS} steps vs the same {SKILL_STEPS} calls through the gateway: run p50 "
                   f"{f['skill_run_p50_ms']:.2f} ms vs {f['skill_five_calls_p50_ms']:.2f} ms, ratio "
                   f"{f['skill_ratio']:.2f} ({f['skill_per_step_overhead_pct']:+.1f}% per step)")
    if f.get("audit_ratio") is None:
        out.append(f"Audit on vs off: n/a ({f.get('audit_reason')})")
    else:
        out.append(f"Audit on vs off (Executor.call in process, bench/audit.py): ratio {f['audit_ratio']:.2f}, "
                   f"{f['audit_us_per_call']:.0f} µs per call = {_f(f.get('audit_share_of_overhead_pct'), 1)}% "
                   "of the gateway's per-call overhead above")
    out += ["", "Targets"]
    for name, t in result["targets"].items():
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        out.append(f"  {name:<30} target {'≥' if name == 'throughput_ratio' else '≤'} {t['target']:<6g}"
                   f" measured {_f(t['measured'])}  {mark}")
    for note in result["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out)


def run(quick: bool, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    plan = Plan.make(quick)
    with stage(plan, workdir, log) as (setup, db, took):
        log(f"gateway up in {took:.1f}s; measuring ({'quick' if quick else 'full'}) ...")
        figures = anyio.run(measure, setup, db, log, backend_options={"use_uvloop": True})
        setup.gateway.check_alive()
    log("audit (bench/audit.py, in process) ...")
    figures.update(audit_figure(plan, figures.get("call_legacy_echo_overhead_p50_ms")))
    figures["gateway_start_s"] = took
    params = {**asdict(plan), "servers": scenario.SERVERS, "tools": scenario.SERVERS * scenario.TOOLS_PER_SERVER,
              "agents": scenario.AGENTS, "users": scenario.USERS, "principal": f"{scenario.AGENT}/{scenario.USER}",
              "modes": MODES, "throughput_mode": "legacy", "listing_mode": "legacy",
              "upstream": "bench/upstream.py: low-level mcp Server, JSON responses, uvicorn httptools+uvloop",
              "client": "mcp.Client over httpx2, cache=None, one session per side, uvloop"}
    result: dict[str, Any] = {"schema": 1, "figures": figures, "params": params, "machine": machine(),
                              "source": source_revision(),
                              "notes": setup.notes, "wall_s": time.monotonic() - started,
                              "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    result["targets"] = targets(figures)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a first look in under 30 s")
    parser.add_argument("--json", metavar="PATH", help="also write every figure, the parameters and the machine here")
    parser.add_argument("--workdir", metavar="DIR",
                        help="keep each run's store, config and logs in DIR/run-<time> (default: a temp dir)")
    parser.add_argument("--verbose", action="store_true", help="say what is being measured")
    args = parser.parse_args(argv)
    # The SDK client logs at WARNING what a benchmark expects (e.g. a session DELETE cut short at exit).
    logging.getLogger("mcp").setLevel(logging.ERROR)

    began = time.monotonic()

    def log(message: str) -> None:
        if args.verbose:
            print(f"[bench {time.monotonic() - began:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        if args.workdir:
            # A fresh folder per run: a store left by an earlier run would change what is measured.
            workdir = Path(args.workdir).resolve() / time.strftime("run-%Y%m%d-%H%M%S")
            workdir.mkdir(parents=True)
            result = run(args.quick, workdir, log)
        else:
            with tempfile.TemporaryDirectory(prefix="interlock-bench-") as tmp:
                result = run(args.quick, Path(tmp), log)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return 0
