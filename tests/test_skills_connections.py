"""Shipped skills against real upstream processes, and runs that pause for an authorization and resume
without repeating a side effect, in both protocol eras."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp.types as types
import pytest
from mcp import Client, MCPError, UrlElicitationRequiredError
from mcp.client.streamable_http import streamable_http_client

from examples.revocation_demo import AGENT, USER, Stage, agent_token, stage, user_connects
from tests.support.gateway import run_cli
from tests.support.procs import free_port, running
from tests.support.upstream_server import Upstream

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]

COUNT_THEN_MAIL = """
name: count-then-mail
version: 1.0.0
description: Counts (a side effect on another upstream), then lists the user's mail. Use in tests.
steps:
  - id: counted
    tool: up.count
  - id: inbox
    tool: mail.list_messages
outputs:
  messages: "{{ steps.inbox.output.messages | length }}"
"""


@pytest.fixture(scope="module")
def billing() -> Iterator[str]:
    port = free_port()
    with running([sys.executable, "-m", "examples.demo_billing", "--port", str(port)], port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def demo(upstream: Upstream, billing: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    def tweak(config: dict[str, Any]) -> dict[str, Any]:
        config["upstreams"] += [{"name": "up", "url": upstream.url},
                                {"name": "billing", "url": f"{billing}/mcp"}]
        config["gateways"][0]["agents"][AGENT] = ["mail.*", "up.*", "billing.*"]
        config["gateways"][0]["skills"] = ["*"]
        config["identity"]["user_grants"] = [{"role": "mail-user", "tools": ["mail.*", "up.*", "billing.*"]}]
        config["policy"] = {"rules": [{"annotations": {"destructiveHint": True}, "tools": ["billing.*"],
                                       "require_scope": "actions:destructive"}]}
        return config

    with stage(tmp_path_factory.mktemp("skills-conn"), tweak=tweak) as s:
        for text in [COUNT_THEN_MAIL]:
            path = s.workdir / "count-then-mail.yaml"
            path.write_text(text)
            run_cli(s.workdir, "skills", "publish", str(path))
        for shipped in ("reply-to-email", "issue-credit"):
            run_cli(s.workdir, "skills", "publish", str(ROOT / "skills" / f"{shipped}.yaml"))
        yield s


@asynccontextmanager
async def agent_session(demo: Stage, mode: str, *, scope: str | None = None,
                        elicit: Any = None) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(timeout=20) as http:
        token = await agent_token(demo, http)
        if scope:  # a step-up: a fresh token carrying the extra scope
            token = await scoped_token(demo, http, scope)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http, Client(
            streamable_http_client(demo.mcp_url, http_client=http), mode=mode, elicitation_callback=elicit) as c:
        yield c


async def scoped_token(demo: Stage, http: httpx2.AsyncClient, scope: str) -> str:
    done = run_cli(demo.workdir, "token", "-c", str(demo.workdir / "interlock.yaml"), "--user", USER,
                   "--agent", AGENT, "--scope", scope)
    return done.stdout.strip()


async def inbox_size(client: Client) -> int:
    return len((await client.call_tool("mail.list_messages", {})).structured_content["messages"])  # type: ignore[index]


async def probe_count(client: Client) -> int:
    return int((await client.call_tool("up.count", {})).content[0].text)  # type: ignore[union-attr]


async def test_pause_and_resume_with_a_2025_client_repeats_no_side_effect(demo: Stage) -> None:
    run_cli(demo.workdir, "connections", "revoke", "--all")
    async with agent_session(demo, "legacy") as client:
        start = await probe_count(client)
        with pytest.raises(MCPError) as err:
            await client.call_tool("skill.count-then-mail", {})
        assert err.value.error.code == -32042
        url = UrlElicitationRequiredError.from_error(err.value.error).elicitations[0].url
        assert "paused at step `inbox`" in err.value.error.message
        assert await user_connects(demo, url) == "connected"
        done = await client.call_tool("skill.count-then-mail", {})  # the same call again: resumes
        assert done.is_error is False and done.structured_content == {"messages": await inbox_size(client)}
        # the count step ran once in all: before the pause, not again on resume
        assert await probe_count(client) == start + 2


async def test_pause_and_resume_with_a_2026_client_repeats_no_side_effect(demo: Stage) -> None:
    run_cli(demo.workdir, "connections", "revoke", "--all")
    asked: list[str] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.url)  # type: ignore[union-attr]
        assert await user_connects(demo, params.url) == "connected"  # type: ignore[union-attr]
        return types.ElicitResult(action="accept")

    async with agent_session(demo, "2026-07-28", elicit=elicit) as client:
        start = await probe_count(client)
        done = await client.call_tool("skill.count-then-mail", {})  # InputRequiredResult, then the retry
        assert done.is_error is False and done.structured_content == {"messages": await inbox_size(client)}
        assert len(asked) == 1
        assert await probe_count(client) == start + 2


async def test_reply_to_email_runs_against_the_demo_provider(demo: Stage) -> None:
    run_cli(demo.workdir, "connections", "revoke", "--all")
    async with agent_session(demo, "legacy") as client:
        try:
            await client.call_tool("mail.list_messages", {})
        except MCPError as err:
            url = UrlElicitationRequiredError.from_error(err.error).elicitations[0].url
            assert await user_connects(demo, url) == "connected"
        inbox = (await client.call_tool("mail.list_messages", {})).structured_content["messages"]  # type: ignore[index]
        nate = next(m for m in inbox if "Nate" in m["from"])
        sent_before = demo.mail.stats()["sends"]
        result = await client.call_tool("skill.reply-to-email", {"message_id": nate["id"], "body": "Thanks, Nate!"})
        assert result.structured_content["sent"] is True  # type: ignore[index]
        assert demo.mail.stats()["sends"] == sent_before + 1
        assert any(m.get("body") == "Thanks, Nate!" for m in demo.mail.mailbox(USER))
        # the thread is answered now: a second run reads, then does not send
        again = await client.call_tool("skill.reply-to-email", {"message_id": nate["id"], "body": "Again"})
        assert again.structured_content["sent"] is False  # type: ignore[index]
        assert demo.mail.stats()["sends"] == sent_before + 1
        with pytest.raises(MCPError) as bad:
            await client.call_tool("skill.reply-to-email", {"message_id": nate["id"]})
        assert "body" in bad.value.error.message


async def test_issue_credit_needs_the_step_up_scope(demo: Stage, billing: str) -> None:
    args = {"customer_email": "ada@example.com", "amount_cents": 1250, "reason": "late delivery"}
    async with agent_session(demo, "legacy") as client:
        assert "skill.issue-credit" not in [t.name for t in (await client.list_tools()).tools]
        with pytest.raises(MCPError):  # answered at the HTTP level: 403, step-up (checked below)
            await client.call_tool("skill.issue-credit", args)
    async with httpx2.AsyncClient(timeout=20) as http:
        token = await agent_token(demo, http)
        raw = await http.post(demo.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                  "params": {"name": "skill.issue-credit", "arguments": args}},
                              headers={"Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2026-07-28",
                                       "Accept": "application/json, text/event-stream"})
        assert raw.status_code == 403
        challenge = raw.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_scope"') and 'scope="actions:destructive"' in challenge
        assert (await http.get(f"{billing}/_stats")).json()["calls"] == {}  # preflight: nothing ran
    async with agent_session(demo, "legacy", scope="actions:destructive") as client:
        assert "skill.issue-credit" in [t.name for t in (await client.list_tools()).tools]
        credited = await client.call_tool("skill.issue-credit", args)
        suspended = await client.call_tool("skill.issue-credit", {**args, "customer_email": "bob@example.com"})
    assert credited.structured_content["credited"] is True  # type: ignore[index]
    assert suspended.structured_content == {"customer_id": "cus_bob", "customer_status": "suspended",
                                            "credited": False, "credit_id": None}
    async with httpx2.AsyncClient() as http:
        stats = (await http.get(f"{billing}/_stats")).json()
    assert stats["calls"] == {"lookup_customer": 2, "issue_credit": 1}
    assert stats["credits"][0]["reason"] == "late delivery (via Interlock)"
