"""The benchmark's processes on loopback: the upstream fleet and ``interlock serve``.

Each runs as a real child process with its output in a log file of the work folder, and is
stopped (SIGTERM, then SIGKILL after 10 s) however the benchmark ends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from examples.processes import stop

ROOT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """Something the benchmark needs did not work; the message says what."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")


@contextlib.contextmanager
def running(name: str, argv: Sequence[str], log: Path, *, cwd: Path = ROOT) -> Iterator[Process]:
    # The repo root on the path: ``bench`` is not an installed package, and the gateway runs in its work folder.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield Process(name, proc, log)
        finally:
            stop(proc)


def wait_until(process: Process, url: str, timeout: float) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took."""
    start = time.monotonic()
    with httpx2.Client(timeout=2.0) as http:
        while time.monotonic() - start < timeout:
            process.check_alive()
            with contextlib.suppress(httpx2.HTTPError):
                if http.get(url).status_code in (200, 404, 405, 406):
                    return time.monotonic() - start
            time.sleep(0.1)
    raise BenchError(f"{process.name} did not answer {url} within {timeout:.0f}s:\n{process.tail()}")


@contextlib.contextmanager
def upstream(workdir: Path, tools: int) -> Iterator[tuple[Process, int]]:
    """The benchmark upstream (``bench/upstream.py``): ``http://127.0.0.1:<port>/mcp/<i>``."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--tools", str(tools)]
    with running("the benchmark upstream", argv, workdir / "upstream.log") as proc:
        wait_until(proc, f"http://127.0.0.1:{port}/healthz", 30)
        yield proc, port


@contextlib.contextmanager
def gateway(workdir: Path, config: dict[str, Any], *, argv_prefix: Sequence[str] | None = None,
            timeout: float = 180.0) -> Iterator[tuple[Process, Path, float]]:
    """``interlock serve -c <config>``; yields (process, config path, seconds until it served).

    ``argv_prefix`` replaces ``python -m registry.cli`` (the profiler's launcher uses it)."""
    path = workdir / "interlock.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    prefix = list(argv_prefix or [sys.executable, "-m", "registry.cli"])
    argv = [*prefix, "serve", "-c", str(path), "--log-level", "warning"]
    with running("the gateway (interlock serve)", argv, workdir / "gateway.log", cwd=workdir) as proc:
        base = f"http://127.0.0.1:{config['server']['port']}"
        took = wait_until(proc, f"{base}/healthz", timeout)
        yield proc, path, took


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in KiB, from /proc (empty where there is no /proc)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, from /proc (0.0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int) -> bool:
    """Reset ``pid``'s VmHWM to its current RSS (Linux ≥ 4.0: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
