"""Where the gateway's time goes: a profile of its side of sequential ``tools/call``s.

    python -m bench.profile_call [--calls N] [--mode legacy|modern] [--tool echo|record] [--concurrency C]
                                 [--profiler py-spy|pyinstrument] [--out PREFIX]

Runs the same installation as ``python -m bench`` (bench/scenario.py) and, after a warm-up,
samples the gateway process while N calls go through it:

- ``py-spy`` (default when installed): samples from outside at 1 kHz, leaves out samples where
  the thread waits (idle in epoll), so the figures are the gateway's busy time per call and
  the gateway runs unmodified. Time in C code counts for the Python line that called it.
- ``pyinstrument``: the gateway runs under ``bench/profiled_gateway.py``, switched on and off by
  signals, sampling CPU time. Its per-event timer roughly triples the cost of each call, so
  read its shares, not its absolute times.

Prints the busy time per call by component (SDK server, SDK client, HTTP, anyio, our own
code, …), our own functions by inclusive time and the functions with the most self time; the
raw samples or call tree stay in ``PREFIX.*`` (default ``gateway-profile`` in this folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from bench import scenario
from bench.harness import MODES, caller, connect, mint_token, sequential
from bench.processes import BenchError, Process, cpu_seconds, free_port, gateway, upstream
from bench.profiled_gateway import component

RATE = 1000
"""py-spy samples per second."""


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def drive(url: str, token: str, mode: str, tool: str, kind: str, calls: int, concurrency: int,
                start_profiler: Any, stop_profiler: Any, pid: int) -> tuple[float, float]:
    async with connect(url, token, MODES[mode], prime=[tool]) as client:
        call = caller(client, tool, kind)
        await sequential(call, 300, 0, [])
        start_profiler()
        await anyio.sleep(0.5)
        start, cpu = time.perf_counter(), cpu_seconds(pid)
        per = calls // concurrency
        async with anyio.create_task_group() as tg:
            for c in range(concurrency):
                tg.start_soon(sequential, call, per, 1000 + c * per, [])
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
        stop_profiler()
        return elapsed, cpu


Frames = list[tuple[str, str]]
"""A sampled stack, root first: (function, file path) per frame."""

PHASES: list[tuple[str, Callable[[Frames], bool]]] = [
    ("audit trail (SQLite, hash chain)", lambda fs: any("/executor/audit" in p or "/registry/audit_store" in p
                                                        for _, p in fs)),
    ("token verification (JWT signature, claims, revocation)", lambda fs: any(n.startswith("TokenVerifier.")
                                                                             for n, _ in fs)),
    ("decision + catalogue", lambda fs: any(p.endswith(("executor/policy.py", "registry/catalog.py",
                                                        "registry/sqlite_store.py")) for _, p in fs)),
    ("upstream hop: mcp Client + httpx2 to the upstream", lambda fs: any(
        "/mcp/client/" in p or "/httpx2/" in p or "/httpcore" in p or p.endswith("executor/upstream.py")
        for _, p in fs)),
    ("interlock's own code (surface, executor)", lambda fs: "/registry/" in fs[-1][1] or "/executor/" in fs[-1][1]),
    ("inbound mcp SDK server (session manager, JSON-RPC, pydantic, SSE)", lambda fs: any(
        m in p for _, p in fs for m in ("/mcp/server/", "/mcp/shared/", "/sse_starlette/", "/starlette/",
                                         "/mcp_types/", "/pydantic"))),
    ("inbound HTTP: uvicorn + litestar routing", lambda fs: any("/uvicorn/" in p or "/litestar/" in p
                                                                for _, p in fs)),
]
"""Each sample is charged to the first phase whose test its stack passes (else "event loop, other")."""


def _frames(stack: str) -> Frames:
    out = []
    for frame in stack.split(";"):
        name, _, where = frame.rpartition(" (")
        out.append((name, where.rstrip(")").rpartition(":")[0]))
    return out


def summarise_raw(raw: Path) -> dict[str, Any]:
    """py-spy's collapsed stacks (``frame;frame;… count``) -> self time by component and function,
    and inclusive time of our own functions (registry/, executor/), in seconds."""
    by_component: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    by_phase: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = _frames(stack)
        name, path = frames[-1]
        by_component[component(path)] += count
        by_function[f"{name} ({_short(path)})"] += count
        by_phase[next((phase for phase, test in PHASES if test(frames)), "event loop, other")] += count
        seen = set()
        for fname, fpath in frames:
            if ("/registry/" in fpath or "/executor/" in fpath) and fname not in seen:
                seen.add(fname)
                ours[f"{fname} ({_short(fpath)})"] += count
    seconds = 1 / RATE
    return {"profiler": "py-spy", "samples": samples, "busy_s": samples * seconds,
            "by_phase_s": {k: v * seconds for k, v in by_phase.most_common()},
            "by_component_s": {k: v * seconds for k, v in by_component.most_common()},
            "by_function_s": {k: v * seconds for k, v in by_function.most_common(60)},
            "ours_inclusive_s": {k: v * seconds for k, v in ours.most_common(40)}}


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return Path(path).name


def report(summary: dict[str, Any], calls: int, elapsed: float) -> str:
    busy = sum(summary["by_component_s"].values())
    lines = [f"profiler: {summary['profiler']}; {calls} calls in {elapsed:.2f} s "
             f"({elapsed / calls * 1000:.2f} ms per call at the client, profiling included)",
             f"gateway CPU (/proc, user + system): {summary.get('gateway_cpu_s', 0) / calls * 1000:.2f} ms per call; "
             f"sampled busy time: {busy / calls * 1000:.2f} ms per call"
             + (" (CPU, inflated by the profiler's timer)" if summary["profiler"] == "pyinstrument" else
                " (samples where the gateway's thread was not waiting)"),
             ]
    if summary.get("by_phase_s"):
        lines.append("by phase of the call (each sample charged to the first phase its stack is in):")
        for name, seconds in summary["by_phase_s"].items():
            lines.append(f"  {seconds / calls * 1e6:8.0f} µs  {seconds / busy:6.1%}  {name}")
    lines.append("by component (self time; C code counts for the Python code calling it):")
    for name, seconds in summary["by_component_s"].items():
        if seconds / busy >= 0.005:
            lines.append(f"  {seconds / calls * 1e6:8.0f} µs  {seconds / busy:6.1%}  {name}")
    if summary.get("ours_inclusive_s"):
        lines.append("our own functions, inclusive time per call:")
        for name, seconds in list(summary["ours_inclusive_s"].items())[:20]:
            lines.append(f"  {seconds / calls * 1e6:8.0f} µs  {seconds / busy:6.1%}  {name}")
    lines.append("functions with the most self time per call:")
    for name, seconds in list(summary["by_function_s"].items())[:25]:
        lines.append(f"  {seconds / calls * 1e6:8.0f} µs  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--mode", choices=list(MODES), default="legacy")
    parser.add_argument("--tool", choices=["echo", "record"], default="echo")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profiler", choices=["py-spy", "pyinstrument"], default=None)
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not give the gateway a CPU of its own while profiling")
    parser.add_argument("--out", default="gateway-profile", help="file prefix for what the profiler wrote")
    args = parser.parse_args(argv)
    # The SDK client logs at WARNING what a benchmark expects (e.g. a session DELETE cut short at exit).
    logging.getLogger("mcp").setLevel(logging.ERROR)
    spy = py_spy()
    profiler = args.profiler or ("py-spy" if spy else "pyinstrument")
    if profiler == "py-spy" and spy is None:
        parser.error("py-spy is not installed (pip install py-spy)")
    try:
        summary, elapsed = profile(args, profiler, spy)
    except BenchError as exc:
        print(f"profiling failed: {exc}", file=sys.stderr)
        return 1
    print(report(summary, args.calls, elapsed))
    print(f"details: {Path(args.out).resolve()}.*")
    return 0


def profile(args: argparse.Namespace, profiler: str, spy: str | None) -> tuple[dict[str, Any], float]:
    from executor.idp.passwords import hash_password

    out = Path(args.out).resolve()
    for suffix in (".txt", ".flat.txt", ".json", ".raw.txt"):
        out.with_suffix(suffix).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="interlock-profile-") as tmp:
        workdir = Path(tmp)
        with upstream(workdir, scenario.TOOLS_PER_SERVER) as (up_proc, up_port):
            port = free_port()
            config = scenario.gateway_config(port=port, workdir=workdir, upstream_port=up_port,
                                             password_hash=hash_password("bench-password"))
            prefix = [sys.executable, "-m", "bench.profiled_gateway", str(out), "--"] \
                if profiler == "pyinstrument" else None
            with gateway(workdir, config, argv_prefix=prefix) as (proc, path, _):
                token = mint_token(path, Path(config["server"]["database"]))
                tool = f"{scenario.MEASURED_SERVER}.{scenario.ECHO if args.tool == 'echo' else scenario.RECORD}"
                url = f"http://127.0.0.1:{port}/mcp/{scenario.GATEWAY}"
                if args.pin:
                    _pin(proc.pid, up_proc.pid)
                if profiler == "py-spy":
                    assert spy is not None
                    return _with_py_spy(spy, proc, out, url, token, tool, args)
                elapsed, cpu = anyio.run(drive, url, token, args.mode, tool, args.tool, args.calls, args.concurrency,
                                         lambda: os.kill(proc.pid, signal.SIGUSR1),
                                         lambda: os.kill(proc.pid, signal.SIGUSR2), proc.pid,
                                         backend_options={"use_uvloop": True})
                _wait_for(out.with_suffix(".json"), proc)
    summary = json.loads(out.with_suffix(".json").read_text())
    summary["gateway_cpu_s"] = cpu
    return summary, elapsed


def _with_py_spy(spy: str, proc: Process, out: Path, url: str, token: str, tool: str,
                 args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    raw = out.with_suffix(".raw.txt")
    recorder: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        recorder.append(subprocess.Popen(
            [spy, "record", "--pid", str(proc.pid), "--rate", str(RATE), "--format", "raw", "--full-filenames",
             "--function", "--gil", "--nonblocking", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def stop() -> None:
        recorder[0].send_signal(signal.SIGINT)

    elapsed, cpu = anyio.run(drive, url, token, args.mode, tool, args.tool, args.calls, args.concurrency, start, stop,
                             proc.pid, backend_options={"use_uvloop": True})
    try:
        _, err = recorder[0].communicate(timeout=60)
    except subprocess.TimeoutExpired:
        recorder[0].kill()
        raise BenchError("py-spy did not stop") from None
    if not raw.exists():
        raise BenchError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    summary = summarise_raw(raw)
    summary["gateway_cpu_s"] = cpu
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary, elapsed


def _pin(gateway_pid: int, upstream_pid: int) -> None:
    """The gateway alone on the first CPU, this process and the upstream on the others: so that a
    write to a socket does not hand the gateway's CPU to the process it woke up, which a sampler
    would count as time spent in ``send``."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    os.sched_setaffinity(gateway_pid, {cpus[0]})
    for pid in (upstream_pid, 0):
        os.sched_setaffinity(pid, set(cpus[1:]))


def _wait_for(file: Path, proc: Process) -> None:
    deadline = time.monotonic() + 60
    while not file.exists():
        proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the profiled gateway wrote no profile:\n{proc.tail()}")
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
