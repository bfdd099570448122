"""Agent ∩ user through the real gateway over HTTP: the matrix, step-up, live changes, confused deputies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import MCPError

from tests.support.gateway import MODES, Gateway, agent, run_cli, start_gateway
from tests.support.issuer import TestIssuer
from tests.support.upstream_server import Upstream

pytestmark = pytest.mark.anyio

TOOLS = ["up.count", "up.echo", "up.structured"]
AGENTS = {"cursor": ["up.echo", "up.structured"], "claude": ["up.*"], "intern-bot": ["up.count"]}
USERS = {"alice": ["reader"], "bob": ["writer"], "carol": []}
USER_GRANTS = [{"role": "reader", "tools": ["up.structured", "up.count"]},
               {"role": "writer", "tools": ["up.echo", "up.count"]}]

A, U, OK = "agent", "user", "allowed"
# Every cell written out: (agent, user) -> what each tool call gets.
# `agent`: the agent is not granted the tool here (answered exactly like an unknown tool);
# `user`: the agent may, its user may not (answered with reason user_not_granted).
MATRIX: dict[tuple[str, str], dict[str, str]] = {
    ("cursor", "alice"): {"up.count": A, "up.echo": U, "up.structured": OK},
    ("cursor", "bob"): {"up.count": A, "up.echo": OK, "up.structured": U},
    ("cursor", "carol"): {"up.count": A, "up.echo": U, "up.structured": U},
    ("claude", "alice"): {"up.count": OK, "up.echo": U, "up.structured": OK},
    ("claude", "bob"): {"up.count": OK, "up.echo": OK, "up.structured": U},
    ("claude", "carol"): {"up.count": U, "up.echo": U, "up.structured": U},
    ("intern-bot", "alice"): {"up.count": OK, "up.echo": A, "up.structured": A},
    ("intern-bot", "bob"): {"up.count": OK, "up.echo": A, "up.structured": A},
    ("intern-bot", "carol"): {"up.count": U, "up.echo": A, "up.structured": A},
}
ARGS: dict[str, dict[str, Any]] = {"up.count": {}, "up.echo": {"text": "hi"}, "up.structured": {"n": 2}}


def intersection_config(issuer: TestIssuer, upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {
        "identity": {"issuers": [{"issuer": issuer.url}], "user_grants": USER_GRANTS},
        "upstreams": [{"name": "up", "url": upstream.url, "timeout_seconds": 5}],
        "gateways": [{"name": "default", "agents": AGENTS}],
        **extra,
    }


@pytest.fixture(scope="module")
def gw(issuer: TestIssuer, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with start_gateway(tmp_path_factory.mktemp("matrix"), intersection_config(issuer, upstream)) as g:
        yield g


def token(issuer: TestIssuer, gw: Gateway, agent_id: str, user: str, **claims: Any) -> str:
    return issuer.mint(**{"sub": user, "client_id": agent_id, "aud": gw.url(), "roles": USERS.get(user, []),
                          **claims})


async def outcome(client: Any, tool: str) -> str:
    try:
        result = await client.call_tool(tool, ARGS[tool])
    except MCPError as err:
        if err.error.code == -32602 and "not available on this gateway" in err.error.message:
            return A
        if err.error.code == -32003 and err.error.data["reason"] == "user_not_granted":
            assert err.error.data["side"] == "user"
            return U
        raise
    assert result.is_error is False
    return OK


def test_the_matrix_is_complete() -> None:
    assert sorted(MATRIX) == sorted((a, u) for a in AGENTS for u in USERS)
    assert all(sorted(cells) == TOOLS for cells in MATRIX.values())


@pytest.mark.parametrize("cell", sorted(MATRIX), ids=lambda c: f"{c[0]}-{c[1]}")
async def test_matrix_cell(gw: Gateway, issuer: TestIssuer, cell: tuple[str, str]) -> None:
    agent_id, user = cell
    expected = MATRIX[cell]
    for mode in MODES:
        async with agent(gw.url(), token(issuer, gw, agent_id, user), mode) as c:
            listed = [t.name for t in (await c.list_tools()).tools]
            got = {tool: await outcome(c, tool) for tool in TOOLS}
        assert got == expected, mode
        # the listing shows exactly what a call is allowed
        assert listed == [t for t in TOOLS if expected[t] == OK], mode


async def test_user_side_denial_names_the_side_but_no_other_tool(gw: Gateway, issuer: TestIssuer) -> None:
    async with agent(gw.url(), token(issuer, gw, "cursor", "carol")) as c:
        with pytest.raises(MCPError) as err:
            await c.call_tool("up.echo", {"text": "x"})
    message = err.value.error.message
    assert err.value.error.data == {"reason": "user_not_granted", "side": "user", "missing_scopes": []}
    assert "up.echo" in message and not any(t in message for t in TOOLS if t != "up.echo")


async def test_arguments_and_claims_never_change_the_principal(gw: Gateway, issuer: TestIssuer) -> None:
    smuggled = {"text": "x", "user_id": "bob", "on_behalf_of": "bob", "as_admin": True, "client_id": "claude"}
    async with agent(gw.url(), token(issuer, gw, "cursor", "carol", user_id="bob", on_behalf_of="bob")) as c:
        with pytest.raises(MCPError) as err:
            await c.call_tool("up.echo", smuggled)
    assert err.value.error.data["reason"] == "user_not_granted"


async def test_a_grant_change_applies_on_the_next_call(issuer: TestIssuer, upstream: Upstream,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    config = intersection_config(issuer, upstream)
    with start_gateway(tmp_path_factory.mktemp("live"), config) as g:
        async with agent(g.url(), token(issuer, g, "claude", "bob")) as c:
            assert await outcome(c, "up.echo") == OK
            g.apply({**config, "identity": {**config["identity"], "user_grants": USER_GRANTS[:1]}})
            assert await outcome(c, "up.echo") == U  # same session, next call
            g.apply({**config, "gateways": [{"name": "default", "agents": {"claude": ["up.structured"]}}]})
            assert await outcome(c, "up.echo") == A
            g.apply(config)
            assert await outcome(c, "up.echo") == OK


async def test_destructive_tools_need_a_step_up_scope(issuer: TestIssuer, upstream: Upstream,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    rules = {"rules": [{"annotations": {"destructiveHint": True}, "require_scope": "actions:destructive"},
                       {"tools": ["up.count"], "agents": ["intern-bot"], "deny": True}]}
    with start_gateway(tmp_path_factory.mktemp("stepup"), intersection_config(issuer, upstream, policy=rules)) as g:
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "up.echo",
                                                                              "arguments": {"text": "x"}}}
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                   "Mcp-Method": "tools/call", "Mcp-Name": "up.echo"}
        async with httpx2.AsyncClient() as http:
            r = await http.post(g.url(), json=call, headers={
                **headers, "Authorization": f"Bearer {token(issuer, g, 'claude', 'bob')}"})
        assert r.status_code == 403
        assert r.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
        assert 'scope="actions:destructive"' in r.headers["www-authenticate"]
        # the refusal is in the audit trail like any other decision
        trail = json.loads(run_cli(g.workdir, "--audit-db", str(g.workdir / "interlock-audit.db"), "audit", "query",
                                   "--user", "bob", "--decision", "deny", "--json").stdout)
        assert [(e["event"]["tool"], e["event"]["reason"], e["event"]["side"]) for e in trail] == [
            ("up.echo", "scope_missing", "token")]
        # echo says nothing about itself, so MCP's defaults make it destructive; structured is read-only
        async with agent(g.url(), token(issuer, g, "claude", "alice")) as c:
            assert await outcome(c, "up.structured") == OK
        stepped_up = token(issuer, g, "claude", "bob", scope="actions:destructive")
        for mode in MODES:
            async with agent(g.url(), stepped_up, mode) as c:
                assert await outcome(c, "up.echo") == OK
        # a deny rule beats both grants, and says which rule
        async with agent(g.url(), token(issuer, g, "intern-bot", "alice")) as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("up.count", {})
        assert err.value.error.data["reason"] == "denied_by_rule"
        assert "policy.rules[1]" in err.value.error.message
