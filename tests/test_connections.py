"""Connections, authorization requests and revocation through real processes: the gateway with its
embedded issuer, the demo mail provider (OAuth 2.1 + MCP), a scripted agent and a scripted user."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import msgspec
import pytest
from mcp import Client, MCPError, UrlElicitationRequiredError
from mcp.client.streamable_http import streamable_http_client

from examples.revocation_demo import AGENT, PROVIDER, USER, Stage, agent_token, stage, user_connects
from examples.scripted_user import browse
from executor.connections import ConnectionKey
from executor.provider_client import TokenSet
from executor.sealing import Sealer, parse_keys

pytestmark = pytest.mark.anyio

OTHER = "other-agent"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    # Access tokens live 30 s and are refreshed 60 s ahead: every call refreshes, so the refresh
    # path runs all the time without waiting on a clock.
    with stage(tmp_path_factory.mktemp("conn"), agents=(AGENT, OTHER), access_token_ttl=30) as s:
        yield s


@asynccontextmanager
async def session(demo: Stage, agent: str = AGENT, user: str = USER, mode: str = "legacy") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=20) as http:
        token = await agent_token(demo, http, agent, user)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http, Client(
            streamable_http_client(demo.mcp_url, http_client=http), mode=mode) as client:
        yield client


async def outcome(client: Client, tool: str = "mail.list_messages", args: dict[str, Any] | None = None) -> str:
    """`ok`, or the authorization request's URL."""
    try:
        result = await client.call_tool(tool, args or {})
    except MCPError as err:
        if err.error.code == -32042:
            return UrlElicitationRequiredError.from_error(err.error).elicitations[0].url
        raise
    assert result.is_error is False, result.content
    return "ok"


async def connected(demo: Stage, client: Client, user: str = USER) -> None:
    first = await outcome(client)
    if first != "ok":
        assert await user_connects(demo, first, user) == "connected"
        assert await outcome(client) == "ok"


def revoke(demo: Stage, *filters: str) -> str:
    done = subprocess.run([sys.executable, "-m", "registry.cli", "--db", str(demo.workdir / "interlock.db"),
                           "--audit-db", str(demo.workdir / "audit.db"), "connections", "revoke", *filters],
                          cwd=demo.workdir, env=demo.env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def vault_tokens(demo: Stage) -> list[TokenSet]:
    sealer = Sealer(parse_keys(demo.env["INTERLOCK_VAULT_KEYS"], "test"))
    with sqlite3.connect(demo.workdir / "interlock.db") as db:
        rows = db.execute("SELECT agent, issuer, subject, provider, sealed FROM connections").fetchall()
    return [msgspec.json.decode(sealer.open(r[4], ConnectionKey(*r[:4]).aad()), type=TokenSet) for r in rows]


async def test_the_demo_command_plays_every_step_in_both_eras() -> None:
    done = await anyio.run_process([sys.executable, "-m", "registry.cli", "demo"], check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert out.count("every step behaved as it should") == 2
    for step in range(1, 8):
        assert out.count(f"[{step}/7]") == 2


async def test_two_agents_of_one_user_hold_separate_connections(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo, AGENT) as first, session(demo, OTHER) as second:
        await connected(demo, first)
        # the same user, through another agent: nothing is shared
        assert (await outcome(second)).startswith(f"{demo.gateway}/connect/")
        await connected(demo, second)
        assert "revoked" in revoke(demo, "--agent", AGENT, "--user", USER, "--provider", PROVIDER)
        assert (await outcome(first)).startswith(f"{demo.gateway}/connect/")
        assert await outcome(second) == "ok"


async def test_a_user_revoking_at_the_provider_turns_into_an_authorization_request(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        await connected(demo, client)
        demo.mail.revoke_all(USER)  # the user withdraws access at the provider itself
        # the refresh is refused (invalid_grant), or the upstream answers 401: either way, ask again
        assert (await outcome(client)).startswith(f"{demo.gateway}/connect/")


async def test_an_upstream_401_turns_into_an_authorization_request(tmp_path: Path) -> None:
    # Tokens live 300 s here, so the gateway does not refresh: the provider's 401 is what it sees.
    with stage(tmp_path) as fresh:
        async with session(fresh, mode="2026-07-28") as client:
            blocked = await client.session.call_tool("mail.list_messages", {}, allow_input_required=True)
            assert isinstance(blocked, types.InputRequiredResult)
            url = next(iter(blocked.input_requests.values())).params.url  # type: ignore[union-attr]
            assert await user_connects(fresh, url) == "connected"
            ok = await client.session.call_tool("mail.list_messages", {}, allow_input_required=True)
            assert isinstance(ok, types.CallToolResult) and ok.is_error is False
            refreshes, unauthorized = fresh.mail.stats()["refreshes"], fresh.mail.stats()["mcp_unauthorized"]
            assert fresh.mail.expire_all(USER) >= 1  # the provider stops honouring the token it issued
            again = await client.session.call_tool("mail.list_messages", {}, allow_input_required=True)
            assert isinstance(again, types.InputRequiredResult)
            assert fresh.mail.stats()["mcp_unauthorized"] == unauthorized + 1
            assert fresh.mail.stats()["refreshes"] == refreshes
            assert vault_tokens(fresh) == []  # the rejected connection is gone


async def test_concurrent_calls_share_one_refresh_and_one_pending_flow(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        urls = []

        async def one() -> None:
            urls.append(await outcome(client))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(one)
        assert len(set(urls)) == 1 and urls[0].startswith(f"{demo.gateway}/connect/")  # one shared flow
        assert await user_connects(demo, urls[0]) == "connected"
        refreshes = demo.mail.stats()["refreshes"]
        results: list[str] = []

        async def read() -> None:
            results.append(await outcome(client))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(read)
        assert results == ["ok"] * 5
        # rotation would have killed the grant had two refreshes raced with the same token
        assert demo.mail.stats()["refresh_reuse_detected"] == 0
        assert demo.mail.stats()["refreshes"] - refreshes <= 5


async def test_a_flow_completed_by_another_user_binds_nothing(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        url = await outcome(client)
        async with httpx2.AsyncClient(timeout=20) as mallory:
            visit = await browse(mallory, url, {demo.gateway: ("bob", "bob-demo-password"),
                                               demo.mail.issuer: ("bob", "bob-password")})
        assert visit.status == 403 and "belongs to someone else" in visit.text
        assert "Nothing was connected" in visit.text
        assert vault_tokens(demo) == []
        assert await outcome(client) == url  # still waiting for its rightful user
        assert await user_connects(demo, url) == "connected"
        assert await outcome(client) == "ok"


async def test_flow_links_and_states_are_single_use_and_expire(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        url = await outcome(client)
        callbacks: list[str] = []
        async with httpx2.AsyncClient(timeout=20) as browser:

            def at_callback(target: str) -> bool:
                if "/connect/callback" in target:
                    callbacks.append(target)
                    return True
                return False

            await browse(browser, url, {demo.gateway: (USER, "alice-demo-password"),
                                        demo.mail.issuer: (USER, "alice-password")}, stop_at=at_callback)
            first = await browser.get(callbacks[0])
            replay = await browser.get(callbacks[0])
            reopened = await browser.get(url)
        assert first.status_code == 200 and "is connected" in first.text
        assert replay.status_code == 410 and reopened.status_code == 410
        revoke(demo, "--all")
        stale = await outcome(client)
        with sqlite3.connect(demo.workdir / "interlock.db") as db:
            db.execute("UPDATE connect_flows SET expires_at = 0")
        async with httpx2.AsyncClient(timeout=20) as browser:
            assert (await browser.get(stale)).status_code == 410
        fresh = await outcome(client)
        assert fresh != stale  # an expired flow is replaced, never reused


async def test_revoke_while_calls_are_in_flight(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        await connected(demo, client)
        seen: list[str] = []

        async def call() -> None:
            seen.append(await outcome(client))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(call)
            await anyio.to_thread.run_sync(revoke, demo, "--agent", AGENT)
        # each call finished or was cleanly asked to authorize; none failed another way
        assert all(s == "ok" or s.startswith(f"{demo.gateway}/connect/") for s in seen)
        assert (await outcome(client)).startswith(f"{demo.gateway}/connect/")


async def test_no_token_text_in_logs_or_audit(demo: Stage) -> None:
    revoke(demo, "--all")
    async with session(demo) as client:
        await connected(demo, client)
        await outcome(client)
    tokens = vault_tokens(demo)
    assert tokens
    secrets = [t.access_token for t in tokens] + [t.refresh_token for t in tokens if t.refresh_token]
    texts = [(demo.workdir / "gateway.log").read_bytes()]
    audit = demo.workdir / "audit.db"
    if audit.exists():
        texts.append(audit.read_bytes())
    for path in demo.workdir.glob("audit.db-wal"):
        texts.append(path.read_bytes())
    for secret in secrets:
        assert all(secret.encode() not in text for text in texts)


def test_the_vault_is_encrypted_at_rest(demo: Stage) -> None:
    raw = Path(demo.workdir / "interlock.db").read_bytes()
    for t in vault_tokens(demo):
        assert t.access_token.encode() not in raw


def trail(demo: Stage) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "registry.cli", "--audit-db", str(demo.workdir / "audit.db"),
                           "audit", "query", "--limit", "100000", "--json"], cwd=demo.workdir,
                          capture_output=True, text=True, timeout=60, check=True)
    return sorted(json.loads(done.stdout), key=lambda r: r["seq"])


async def test_connections_and_authorizations_are_in_the_audit_trail(demo: Stage) -> None:
    revoke(demo, "--all")
    start = trail(demo)[-1]["seq"]
    async with session(demo) as client:
        await connected(demo, client)
    revoke(demo, "--agent", AGENT)
    events = [r["event"] for r in trail(demo) if r["seq"] > start]
    flow = [(e["kind"], e.get("outcome")) for e in events if e["kind"].startswith(("authorization_", "connection_"))]
    # asked, connected, completed by its user; refreshed on use (tokens here live 30 s); revoked by the admin
    assert flow[:3] == [("authorization_requested", None), ("connection_created", None),
                        ("authorization_completed", "success")]
    assert flow[-1] == ("connection_revoked", None)
    assert events[-1]["reason"] == "revoked_by_admin" and events[-1]["provider"] == PROVIDER
    assert {(e["agent"], e["user_subject"]) for e in events} == {(AGENT, USER)}
