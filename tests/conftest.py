"""Shared fixtures: a real test issuer over HTTP and real upstream MCP servers on loopback."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.issuer import TestIssuer
from tests.support.upstream_server import Upstream, start_upstream

NPM_BIN = Path(__file__).parent / "npm" / "node_modules" / ".bin" / "mcp-server-everything"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as iss:
        yield iss


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with start_upstream(name="primary") as up:
        yield up


def require_npm_upstream() -> list[str]:
    """The argv of @modelcontextprotocol/server-everything over stdio; in CI its absence is a failure."""
    if NPM_BIN.exists() and shutil.which("node"):
        return [str(NPM_BIN), "stdio"]
    why = "npm upstream missing: run `cd tests/npm && npm ci` (needs node and npm)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)
