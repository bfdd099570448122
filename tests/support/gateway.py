"""Run the real gateway (``interlock serve``) as a process, and talk to it as an agent would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.procs import free_port, running

MODES = ["legacy", "2026-07-28"]
"""The two protocol eras: the 2025-11-25 handshake with sessions, and 2026-07-28 stateless."""


@dataclass
class Gateway:
    base_url: str
    workdir: Path
    config_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def db(self) -> Path:
        return self.workdir / "interlock.db"

    def url(self, gateway: str = "default") -> str:
        return f"{self.base_url}/mcp/{gateway}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.workdir, *args, check=check)

    def apply(self, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        write_config(self.config_path, config)
        return self.cli("apply", "-f", str(self.config_path))


def run_cli(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "registry.cli", "--db", str(workdir / "interlock.db"), *args],
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"interlock {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_config(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@contextmanager
def start_gateway(workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Iterator[Gateway]:
    port = free_port()
    config = {**config, "server": {**config.get("server", {}), "port": port,
                                   "database": str(workdir / "interlock.db")}}
    path = workdir / "interlock.yaml"
    write_config(path, config)
    argv = [sys.executable, "-m", "registry.cli", "serve", "-c", str(path), "--log-level", "warning"]
    with running(argv, port, cwd=workdir, env=env) as proc:
        yield Gateway(f"http://127.0.0.1:{port}", workdir, path, proc)


@asynccontextmanager
async def agent(url: str, token: str | None, mode: str = "legacy") -> AsyncIterator[Client]:
    """An MCP client session as an agent holding ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http, \
            Client(streamable_http_client(url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
        yield client
