"""Start the demo mail provider as a subprocess, for tests and ``interlock demo``::

    with start(port, "interlock", "secret", ["http://127.0.0.1:8000/connections/callback"]) as mail:
        mail.issuer, mail.mcp_url          # http://127.0.0.1:P, http://127.0.0.1:P/mcp
        mail.stats()["mcp_calls"]          # the control endpoints, as methods
        mail.revoke_all("alice"); mail.expire_all()

The process listens on 127.0.0.1 only and is terminated when the block ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx2

from examples.demo_mail.settings import DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, HOST
from examples.processes import stop

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory that holds ``examples/``, put on the child's PYTHONPATH."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def command(
    port: int, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: Sequence[str] = (), *, access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
    state_file: Path | None = None, python: str = sys.executable,
) -> list[str]:
    """The argv that runs the provider with these settings."""
    argv = [
        python, "-m", "examples.demo_mail", "--port", str(port), "--client-id", client_id,
        "--client-secret", client_secret, "--access-token-ttl", str(access_token_ttl),
    ]
    for uri in redirect_uris:
        argv += ["--redirect-uri", uri]
    if state_file is not None:
        argv += ["--state-file", str(state_file)]
    return argv


def child_env() -> dict[str, str]:
    """The environment for the child: ours, unbuffered, with this checkout importable."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ, "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(_PACKAGE_ROOT) + (os.pathsep + path if path else ""),
    }


@dataclass
class DemoMail:
    """A running provider (see :func:`start`)."""

    port: int
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    _http: httpx2.Client = field(repr=False)

    @property
    def issuer(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.issuer}/mcp"

    @property
    def metadata_url(self) -> str:
        """RFC 8414 authorization-server metadata."""
        return f"{self.issuer}/.well-known/oauth-authorization-server"

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 protected-resource metadata of ``/mcp``."""
        return f"{self.issuer}/.well-known/oauth-protected-resource/mcp"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _call(self, method: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._http.request(method, path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"demo mail {method} {path}: HTTP {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def stats(self) -> dict[str, Any]:
        """``GET /_stats``."""
        return self._call("GET", "/_stats")

    def revoke_all(self, user: str) -> int:
        """``POST /_revoke_all?user=``: the user withdraws all access; returns the grants revoked."""
        return int(self._call("POST", "/_revoke_all", {"user": user})["revoked_grants"])

    def expire_all(self, user: str | None = None) -> int:
        """``POST /_expire_all``: current access tokens (of ``user``) expire now; returns how many."""
        params = {"user": user} if user is not None else None
        return int(self._call("POST", "/_expire_all", params)["expired_access_tokens"])

    def mailbox(self, user: str) -> list[dict[str, Any]]:
        """``GET /_mailbox?user=``: every message of the user, oldest first (with ``to``)."""
        return list(self._call("GET", "/_mailbox", {"user": user})["messages"])


def _wait_until_listening(port: int, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            out = log.read().decode(errors="replace")
            raise RuntimeError(f"demo mail exited with {proc.returncode} before listening on {port}:\n{out}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"demo mail did not listen on {HOST}:{port} within {timeout}s")


@contextmanager
def start(
    port: int | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: Sequence[str] = (),
    *,
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
    state_file: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[DemoMail]:
    """Run ``python -m examples.demo_mail`` on 127.0.0.1 until the block ends.

    ``port`` defaults to a free one. The child's output (uvicorn warnings) goes to a
    temporary file, shown only if the child dies before listening.
    """
    port = port or free_port()
    argv = command(
        port, client_id, client_secret, redirect_uris, access_token_ttl=access_token_ttl, state_file=state_file,
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 - it must outlive this statement; closed in `finally`
    proc = subprocess.Popen(argv, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(port, proc, log, timeout)
        with httpx2.Client(base_url=f"http://{HOST}:{port}", timeout=10.0) as http:
            yield DemoMail(
                port=port, client_id=client_id, client_secret=client_secret,
                redirect_uris=tuple(redirect_uris), proc=proc, _http=http,
            )
    finally:
        stop(proc)
        log.close()
