"""Start real processes on loopback for tests, and wait for them without sleeping blindly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from examples.processes import stop

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Wait until something accepts on 127.0.0.1:port; fail fast if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@contextmanager
def running(
    argv: Sequence[str], port: int, *, env: dict[str, str] | None = None, cwd: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until the block ends; it must listen on ``port``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        list(argv), env=full_env, cwd=cwd or ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, timeout)
        yield proc
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()


def python_argv(module_or_script: str, *args: str) -> list[str]:
    if module_or_script.endswith(".py"):
        return [sys.executable, module_or_script, *args]
    return [sys.executable, "-m", module_or_script, *args]
