"""Skills through the real gateway: listed only where every step is allowed, run step by step through
Executor.call, refused before any side effect, stopped when a grant changes mid-run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from tests.support.gateway import MODES, Gateway, agent, run_cli, start_gateway
from tests.support.issuer import TestIssuer
from tests.support.upstream_server import Upstream

pytestmark = pytest.mark.anyio

COUNT_THEN_ECHO = """
name: count-then-echo
version: 1.0.0
description: Counts, then echoes what structured says about n. Use in tests.
inputs:
  type: object
  properties: {n: {type: integer}}
  required: [n]
steps:
  - id: counted
    tool: up.count
  - id: facts
    tool: up.structured
    with: {n: "{{ inputs.n }}"}
  - id: said
    tool: up.echo
    if: "{{ steps.facts.output.parity == 'even' }}"
    with: {text: "{{ steps.facts.output.label }} is even"}
outputs:
  square: "{{ steps.facts.output.square }}"
  said: "{{ steps.said.output if steps.said.status == 'ok' else none }}"
"""

SLOW_THEN_ECHO = """
name: slow-then-echo
version: 1.0.0
description: Waits, then echoes. Use in tests.
steps:
  - id: wait
    tool: up.slow
    with: {seconds: 4}
  - id: said
    tool: up.echo
    with: {text: after the wait}
"""

FLAKY = """
name: flaky
version: 1.0.0
description: An echo without its argument fails; retried, then given up. Use in tests.
steps:
  - id: broken
    tool: up.echo
    on_error: retry
    retry: {attempts: 3, backoff_ms: 10}
"""

AGENTS = {"cursor": ["up.*"], "narrow": ["up.count", "up.echo"]}


def gateway_config(issuer: TestIssuer, upstream: Upstream, agents: dict[str, list[str]] | None = None,
                   grants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "identity": {"issuers": [{"issuer": issuer.url}],
                     "user_grants": grants if grants is not None else [{"role": "staff", "tools": ["up.*"]}]},
        "upstreams": [{"name": "up", "url": upstream.url, "timeout_seconds": 10}],
        "gateways": [{"name": "default", "agents": agents or AGENTS, "skills": ["*"]}],
    }


def publish(gw: Gateway, *texts: str) -> None:
    for i, text in enumerate(texts):
        path = gw.workdir / f"skill-{i}-{abs(hash(text))}.yaml"
        path.write_text(text)
        run_cli(gw.workdir, "skills", "publish", str(path))


def token(issuer: TestIssuer, gw: Gateway, agent_id: str = "cursor", roles: list[str] | None = None) -> str:
    return issuer.mint(sub="alice", client_id=agent_id, aud=gw.url(), roles=["staff"] if roles is None else roles)


async def counted(client: Any) -> int:
    return int((await client.call_tool("up.count", {})).content[0].text) - 1  # this call counts itself


@pytest.fixture(scope="module")
def gw(issuer: TestIssuer, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with start_gateway(tmp_path_factory.mktemp("skills"), gateway_config(issuer, upstream)) as g:
        publish(g, COUNT_THEN_ECHO, FLAKY)
        yield g


@pytest.mark.parametrize("mode", MODES)
async def test_a_skill_is_a_tool_and_runs_step_by_step(gw: Gateway, issuer: TestIssuer, mode: str) -> None:
    async with agent(gw.url(), token(issuer, gw), mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["skill.count-then-echo"].input_schema["required"] == ["n"]
        before = await counted(c)
        odd = await c.call_tool("skill.count-then-echo", {"n": 3})
        even = await c.call_tool("skill.count-then-echo", {"n": 4})
        after = await counted(c)
    assert odd.structured_content == {"square": 9, "said": None}
    assert even.structured_content == {"square": 16, "said": "#4 is even"}
    assert after - before == 3  # two runs counted once each, plus our own probe


async def test_a_skill_is_listed_only_where_every_step_is_allowed(gw: Gateway, issuer: TestIssuer) -> None:
    # `narrow` may not use up.structured, so count-then-echo is neither listed nor runnable for it
    async with agent(gw.url(), token(issuer, gw, "narrow")) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        assert "skill.count-then-echo" not in names and "skill.flaky" in names
        with pytest.raises(MCPError) as err:
            await c.call_tool("skill.count-then-echo", {"n": 1})
        assert "not available on this gateway" in err.value.error.message
        assert [p.name for p in (await c.list_prompts()).prompts] == ["skill.flaky"]
    # the agent may, the user may not (no role): the same
    async with agent(gw.url(), token(issuer, gw, roles=[])) as c:
        assert not [t for t in (await c.list_tools()).tools if t.name.startswith("skill.")]


async def test_skills_as_resources_prompts_and_the_skills_extension(gw: Gateway, issuer: TestIssuer) -> None:
    async with agent(gw.url(), token(issuer, gw)) as c:
        resources = [str(r.uri) for r in (await c.list_resources()).resources]
        assert resources == ["skill://count-then-echo/SKILL.md", "skill://flaky/SKILL.md"]
        doc = (await c.read_resource("skill://count-then-echo/SKILL.md")).contents[0].text  # type: ignore[union-attr]
        assert doc.startswith("---\nname: count-then-echo") and "up.structured" in doc
        prompt = await c.get_prompt("skill.count-then-echo")
        assert "count-then-echo" in prompt.messages[0].content.text  # type: ignore[union-attr]
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token(issuer, gw)}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        init = await http.post(gw.url(), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        await http.post(gw.url(), json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        listed = await http.post(gw.url(), json={"jsonrpc": "2.0", "id": 2, "method": "skills/list", "params": {}},
                                 headers=session)
        got = await http.post(gw.url(), json={"jsonrpc": "2.0", "id": 3, "method": "skills/get",
                                              "params": {"uri": "skill://flaky"}}, headers=session)
        missing = await http.post(gw.url(), json={"jsonrpc": "2.0", "id": 4, "method": "skills/get",
                                                  "params": {"uri": "skill://nope"}}, headers=session)

    def body(r: httpx2.Response) -> dict[str, Any]:
        data = next(line[5:] for line in r.text.splitlines() if line.startswith("data:")) \
            if r.headers["content-type"].startswith("text/event-stream") else r.text
        return dict(json.loads(data))

    skills = body(listed)["result"]["skills"]
    assert [s["frontmatter"]["name"] for s in skills] == ["count-then-echo", "flaky"]
    assert all(r["digest"].startswith("sha256:") for s in skills for r in s["resources"])
    assert body(got)["result"]["skill"]["frontmatter"]["name"] == "flaky"
    assert body(missing)["error"]["code"] == -32602


async def test_retry_with_backoff_then_a_clear_failure(gw: Gateway, issuer: TestIssuer) -> None:
    async with agent(gw.url(), token(issuer, gw)) as c:
        result = await c.call_tool("skill.flaky", {})
    assert result.is_error is True
    assert "step `broken`" in result.content[0].text  # type: ignore[union-attr]
    run_id = result.meta["io.interlock/run"]  # type: ignore[index]
    shown = json.loads(run_cli(gw.workdir, "runs", "show", run_id).stdout)
    assert shown["run"]["status"] == "failed"
    assert [(s["step_id"], s["status"], s["attempts"]) for s in shown["steps"]] == [("broken", "failed", 3)]


async def test_preflight_refuses_before_any_side_effect(issuer: TestIssuer, upstream: Upstream,
                                                        tmp_path: Path) -> None:
    # the user may count and echo but not use up.structured (step 2): nothing runs, count included
    grants = [{"role": "staff", "tools": ["up.count", "up.echo"]}]
    config = gateway_config(issuer, upstream, grants=grants)
    config["gateways"][0]["skills"] = ["*"]
    with start_gateway(tmp_path, config) as g:
        publish(g, COUNT_THEN_ECHO)
        async with agent(g.url(), token(issuer, g)) as c:
            before = await counted(c)
            # not listed (a step is not allowed) ...
            assert "skill.count-then-echo" not in [t.name for t in (await c.list_tools()).tools]
            with pytest.raises(MCPError):
                await c.call_tool("skill.count-then-echo", {"n": 2})
            assert await counted(c) == before + 1  # only our own probe counted


async def test_a_grant_revoked_mid_run_stops_the_next_step(issuer: TestIssuer, upstream: Upstream,
                                                           tmp_path: Path) -> None:
    config = gateway_config(issuer, upstream)
    with start_gateway(tmp_path, config) as g:
        publish(g, SLOW_THEN_ECHO)
        async with agent(g.url(), token(issuer, g)) as c:
            outcome: dict[str, Any] = {}

            async def run() -> None:
                try:
                    outcome["result"] = await c.call_tool("skill.slow-then-echo", {})
                except MCPError as err:
                    outcome["error"] = err

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                with anyio.fail_after(30):
                    while "running" not in run_cli(g.workdir, "runs", "list").stdout:
                        await anyio.sleep(0.05)
                # while step 1 waits upstream, the admin takes up.echo away from cursor
                g.apply({**config, "gateways": [{"name": "default", "agents": {"cursor": ["up.slow"]},
                                                 "skills": ["*"]}]})
        assert "result" not in outcome
        assert "not allowed when it ran" in outcome["error"].error.message
        assert "failed" in run_cli(g.workdir, "runs", "list").stdout


async def test_a_run_and_each_step_are_in_the_audit_trail(gw: Gateway, issuer: TestIssuer) -> None:
    async with agent(gw.url(), token(issuer, gw)) as c:
        result = await c.call_tool("skill.count-then-echo", {"n": 6})
    run_id = result.meta["io.interlock/run"]  # type: ignore[index]
    rows = json.loads(run_cli(gw.workdir, "--audit-db", str(gw.workdir / "interlock-audit.db"), "audit", "query",
                              "--limit", "500", "--json").stdout)
    mine = sorted((r for r in rows if r["event"].get("run_id") == run_id), key=lambda r: r["seq"])
    mine = [r["event"] for r in mine]
    assert [(e["kind"], e.get("step"), e.get("tool"), e.get("outcome")) for e in mine] == [
        ("skill_run_started", None, None, None),
        ("decision", "counted", "up.count", None), ("intent", "counted", "up.count", None),
        ("outcome", "counted", "up.count", "success"), ("skill_step", "counted", "up.count", "succeeded"),
        ("decision", "facts", "up.structured", None), ("intent", "facts", "up.structured", None),
        ("outcome", "facts", "up.structured", "success"), ("skill_step", "facts", "up.structured", "succeeded"),
        ("decision", "said", "up.echo", None), ("intent", "said", "up.echo", None),
        ("outcome", "said", "up.echo", "success"), ("skill_step", "said", "up.echo", "succeeded"),
        ("skill_run_finished", None, None, "succeeded"),
    ]
    assert all(e["skill"] == "count-then-echo" for e in mine)
