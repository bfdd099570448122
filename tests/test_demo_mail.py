"""The demo mail provider (examples/demo_mail), as a real process on loopback, driven as a real client.

The user is played over HTTP by ``examples.demo_mail.browser`` (GET the form, POST it, follow
redirects); tokens come from ``/token``; the MCP tools are called with the ``mcp`` SDK client in
both protocol eras. Provider-side events come from the control endpoints.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from examples.demo_mail.browser import (
    AuthorizationPageError,
    LoginFailed,
    complete_login_and_consent,
    parse_forms,
)
from examples.demo_mail.oauth_client import OAuthClient, TokenEndpointError
from examples.demo_mail.run import DemoMail, command, start
from tests.support.procs import free_port, running

CLIENT_ID = "interlock-test"
CLIENT_SECRET = "s3cret with spaces & symbols"
REDIRECT = "http://127.0.0.1:9/connections/callback"  # never fetched: the browser helper stops there
OTHER_REDIRECT = "http://127.0.0.1:9/other"
BOTH = ["mail.read", "mail.send"]
MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def mail() -> Iterator[DemoMail]:
    port = free_port()
    argv = command(port, CLIENT_ID, CLIENT_SECRET, [REDIRECT, OTHER_REDIRECT])
    with running(argv, port) as proc, httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as control:
        yield DemoMail(
            port=port, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            redirect_uris=(REDIRECT, OTHER_REDIRECT), proc=proc, _http=control,
        )


@asynccontextmanager
async def oauth(mail: DemoMail, **kw: Any) -> AsyncIterator[OAuthClient]:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        yield OAuthClient(http, mail.issuer, mail.client_id, mail.client_secret, REDIRECT, **kw)


class McpSession:
    """An SDK client session plus the HTTP status of every ``/mcp`` response it got."""

    def __init__(self, client: Client, http: httpx2.AsyncClient, statuses: list[httpx2.Response]) -> None:
        self.client = client
        self.http = http
        self.responses = statuses

    def use_token(self, token: str) -> None:
        self.http.headers["Authorization"] = f"Bearer {token}"

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        return await self.client.call_tool(tool, args or {})


@asynccontextmanager
async def mcp(mail: DemoMail, token: str, mode: str) -> AsyncIterator[McpSession]:
    responses: list[httpx2.Response] = []

    async def record(response: httpx2.Response) -> None:
        responses.append(response)

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30.0, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(mail.mcp_url, http_client=http), mode=mode) as client,
    ):
        yield McpSession(client, http, responses)


async def raw_mcp_post(mail: DemoMail, token: str | None, method: str = "tools/list") -> httpx2.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-11-25"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    params = {"name": "list_messages", "arguments": {}} if method == "tools/call" else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with httpx2.AsyncClient(timeout=10.0) as http:
        return await http.post(mail.mcp_url, json=body, headers=headers)


def assert_invalid_token(mail: DemoMail, response: httpx2.Response) -> None:
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{mail.resource_metadata_url}"' in challenge


async def tokens_for(mail: DemoMail, user: str = "alice", scopes: list[str] | None = None) -> dict[str, Any]:
    async with oauth(mail) as client:
        return await client.obtain_tokens(user, f"{user}-password", scopes or BOTH)


# -- discovery --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_discovery_documents_and_unauthenticated_mcp(mail: DemoMail) -> None:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        meta = (await http.get(mail.metadata_url)).json()
        prm = (await http.get(mail.resource_metadata_url)).json()
        jwks = (await http.get(f"{mail.issuer}/jwks")).json()
    assert meta["issuer"] == mail.issuer
    assert meta["authorization_endpoint"] == f"{mail.issuer}/authorize"
    assert meta["token_endpoint"] == f"{mail.issuer}/token"
    assert meta["revocation_endpoint"] == f"{mail.issuer}/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(meta["scopes_supported"]) == set(BOTH)
    assert prm["resource"] == mail.mcp_url
    assert prm["authorization_servers"] == [mail.issuer]
    assert set(prm["scopes_supported"]) == set(BOTH)
    assert [k["alg"] for k in jwks["keys"]] == ["RS256"]
    assert all("d" not in k for k in jwks["keys"])

    # The catalogue is public (a gateway pins it before anyone connects); calls need a token.
    async with httpx2.AsyncClient(timeout=10.0) as http, \
            Client(streamable_http_client(mail.mcp_url, http_client=http), mode="legacy") as anonymous:
        assert {t.name for t in (await anonymous.list_tools()).tools} == {
            "list_messages", "read_message", "send_reply"}
    no_token = await raw_mcp_post(mail, None, "tools/call")
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == f'Bearer resource_metadata="{mail.resource_metadata_url}"'
    assert_invalid_token(mail, await raw_mcp_post(mail, "not-a-token"))
    assert_invalid_token(mail, await raw_mcp_post(mail, "not-a-token", "tools/call"))


# -- the authorization-code flow, step by step -------------------------------------------------


@pytest.mark.anyio
async def test_authorization_code_flow_through_the_forms(mail: DemoMail) -> None:
    async with oauth(mail, auth_method="client_secret_basic") as client:
        request = client.authorization_request(BOTH, state="st-123")
        http = client.http
        page = await http.get(request.url)
        assert page.status_code == 200
        forms, _ = parse_forms(page.text)
        login = {f.id: f for f in forms}["login"]
        assert login.method == "post" and login.action == "/authorize/login"
        names = {name for _, name, _, _ in login.inputs}
        assert names == {"request_id", "csrf_token", "username", "password"}
        assert "<script" not in page.text.lower()

        final = await complete_login_and_consent(http, request.url, "alice", "alice-password")
        assert final.startswith(REDIRECT + "?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(final).query).items()}
        assert query["state"] == "st-123"
        assert query["iss"] == mail.issuer
        code = client.code_from_redirect(final, request)

        issued = await client.exchange_code(code, request)
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 300
        assert issued["scope"] == "mail.read mail.send"
        assert issued["refresh_token"]

        keys = KeySet.import_key_set((await http.get(f"{mail.issuer}/jwks")).json())
        decoded = jwt.decode(issued["access_token"], keys, algorithms=["RS256"])
        assert decoded.header["typ"] == "at+jwt"
        claims = decoded.claims
        assert claims["iss"] == mail.issuer
        assert claims["sub"] == "alice"
        assert claims["aud"] == mail.mcp_url
        assert claims["client_id"] == CLIENT_ID
        assert claims["scope"] == "mail.read mail.send"
        assert claims["jti"] and claims["exp"] > claims["iat"]

        # A code is single-use; presenting it again also revokes what it produced.
        with pytest.raises(TokenEndpointError) as reuse:
            await client.exchange_code(code, request)
        assert reuse.value.error == "invalid_grant"
    assert_invalid_token(mail, await raw_mcp_post(mail, issued["access_token"]))


@pytest.mark.anyio
async def test_wrong_pkce_verifier_is_refused(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        request = client.authorization_request(["mail.read"])
        final = await complete_login_and_consent(client.http, request.url, "alice", "alice-password")
        code = client.code_from_redirect(final, request)
        with pytest.raises(TokenEndpointError) as refused:
            await client.exchange_code(code, request, code_verifier="x" * 64)
        assert (refused.value.status, refused.value.error) == (400, "invalid_grant")


@pytest.mark.anyio
async def test_pkce_is_required_and_s256_only(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        for extra in ({"code_challenge_method": "plain"}, {"code_challenge": ""}):
            request = client.authorization_request(["mail.read"], **extra)
            final = await complete_login_and_consent(client.http, request.url, "alice", "alice-password")
            query = {k: v[0] for k, v in parse_qs(urlsplit(final).query).items()}
            assert query["error"] == "invalid_request"
            assert query["state"] == request.state and query["iss"] == mail.issuer


@pytest.mark.anyio
async def test_redirect_uri_must_match_exactly(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        for wrong in (REDIRECT + "/", REDIRECT + "?x=1", "http://127.0.0.1:9/evil"):
            request = client.authorization_request(["mail.read"], redirect_uri=wrong)
            with pytest.raises(AuthorizationPageError) as page:
                await complete_login_and_consent(client.http, request.url, "alice", "alice-password")
            assert page.value.status == 400 and "redirect_uri" in page.value.text

        # At the token endpoint: the code was issued for REDIRECT, not OTHER_REDIRECT.
        request = client.authorization_request(["mail.read"])
        final = await complete_login_and_consent(client.http, request.url, "alice", "alice-password")
        with pytest.raises(TokenEndpointError) as refused:
            await client.exchange_code(client.code_from_redirect(final, request), request, redirect_uri=OTHER_REDIRECT)
        assert refused.value.error == "invalid_grant"


@pytest.mark.anyio
async def test_bad_password_is_refused(mail: DemoMail) -> None:
    before = mail.stats()["logins_failed"]
    async with oauth(mail) as client:
        request = client.authorization_request(["mail.read"])
        with pytest.raises(LoginFailed):
            await complete_login_and_consent(client.http, request.url, "alice", "bob-password")
        with pytest.raises(LoginFailed):
            await complete_login_and_consent(client.http, request.url, "mallory", "anything")
    assert mail.stats()["logins_failed"] == before + 2


@pytest.mark.anyio
async def test_deny_returns_access_denied(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        request = client.authorization_request(BOTH)
        final = await complete_login_and_consent(client.http, request.url, "alice", "alice-password", allow=False)
        query = {k: v[0] for k, v in parse_qs(urlsplit(final).query).items()}
        assert query["error"] == "access_denied"
        assert query["state"] == request.state and query["iss"] == mail.issuer
        assert "code" not in query


@pytest.mark.anyio
async def test_forms_only_work_from_the_browser_that_started_them(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        request = client.authorization_request(["mail.read"])
        page = await client.http.get(request.url)
        login = {f.id: f for f in parse_forms(page.text)[0]}["login"]
        fields = {name: value for _, name, value, _ in login.inputs}
        fields.update(username="alice", password="alice-password")
        async with httpx2.AsyncClient(timeout=10.0) as stranger:  # no cookie
            response = await stranger.post(f"{mail.issuer}/authorize/login", data=fields)
        assert response.status_code == 403
        bad_csrf = {**fields, "csrf_token": "forged"}
        response = await client.http.post(f"{mail.issuer}/authorize/login", data=bad_csrf)
        assert response.status_code == 403


@pytest.mark.anyio
async def test_client_authentication(mail: DemoMail) -> None:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        form = {"grant_type": "refresh_token", "refresh_token": "whatever"}
        wrong = await http.post(
            f"{mail.issuer}/token", data={**form, "client_id": CLIENT_ID, "client_secret": "wrong"},
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        basic = base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
        wrong = await http.post(f"{mail.issuer}/token", data=form, headers={"Authorization": f"Basic {basic}"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
        anonymous = await http.post(f"{mail.issuer}/revoke", data={"token": "x"})
        assert anonymous.status_code == 401


# -- the MCP tools ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_alice_reads_her_mail_and_not_bobs(mail: DemoMail, mode: str) -> None:
    alice = await tokens_for(mail, "alice")
    bob = await tokens_for(mail, "bob")
    async with mcp(mail, bob["access_token"], mode) as session:
        bobs = (await session.call("list_messages")).structured_content["messages"]
    bob_ids = {m["id"] for m in bobs}
    assert bob_ids

    async with mcp(mail, alice["access_token"], mode) as session:
        if mode == "legacy":
            assert session.client.protocol_version == "2025-11-25"
        else:
            assert session.client.protocol_version == "2026-07-28"
        tools = {t.name: t for t in (await session.client.list_tools()).tools}
        assert set(tools) == {"list_messages", "read_message", "send_reply"}
        assert all(t.output_schema for t in tools.values())
        hints = {name: t.annotations for name, t in tools.items()}
        assert hints["list_messages"] and hints["list_messages"].read_only_hint is True
        assert hints["read_message"] and hints["read_message"].read_only_hint is True
        assert hints["send_reply"] and hints["send_reply"].read_only_hint is False
        assert hints["send_reply"].destructive_hint is False

        listed = await session.call("list_messages", {"limit": 10})
        assert not listed.is_error
        messages = listed.structured_content["messages"]
        assert json.loads(listed.content[0].text) == listed.structured_content
        nate = next(m for m in messages if m["subject"] == "Quarterly numbers")
        assert "Nate" in nate["from"] and nate["status"] == "open"
        assert set(nate) == {"id", "thread_id", "from", "subject", "status"}
        assert not bob_ids & {m["id"] for m in messages}
        assert len((await session.call("list_messages", {"limit": 1})).structured_content["messages"]) == 1

        read = await session.call("read_message", {"id": nate["id"]})
        assert not read.is_error
        assert read.structured_content["thread_id"] == nate["thread_id"]
        assert "quarterly numbers" in read.structured_content["body"]

        for foreign in sorted(bob_ids):
            theirs = await session.call("read_message", {"id": foreign})
            assert theirs.is_error and "no such message" in theirs.content[0].text
        bad = await session.call("list_messages", {"limit": 0})
        assert bad.is_error


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_send_reply_appends_to_the_thread(mail: DemoMail, mode: str) -> None:
    alice = await tokens_for(mail, "alice")
    before = mail.stats()
    async with mcp(mail, alice["access_token"], mode) as session:
        messages = (await session.call("list_messages")).structured_content["messages"]
        priya = next(m for m in messages if m["subject"] == "Lunch next week?")
        sent = await session.call("send_reply", {"thread_id": priya["thread_id"], "body": f"Tuesday works ({mode})"})
        assert not sent.is_error
        assert sent.structured_content["thread_id"] == priya["thread_id"]
        mine = await session.call("read_message", {"id": sent.structured_content["id"]})
        assert mine.structured_content["status"] == "sent"
        assert mine.structured_content["subject"] == "Re: Lunch next week?"
        assert (await session.call("read_message", {"id": priya["id"]})).structured_content["status"] == "answered"
        nowhere = await session.call("send_reply", {"thread_id": "thr_bob_1", "body": "hijack"})
        assert nowhere.is_error and "no such thread" in nowhere.content[0].text

    box = mail.mailbox("alice")
    reply = next(m for m in box if m["id"] == sent.structured_content["id"])
    assert reply["body"] == f"Tuesday works ({mode})" and "priya@example.com" in reply["to"]
    assert all(m["body"] != "hijack" for m in mail.mailbox("bob"))
    after = mail.stats()
    assert after["sends"] == before["sends"] + 1
    assert after["mcp_calls"]["send_reply"] == before["mcp_calls"]["send_reply"] + 2


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_scopes_are_enforced_per_tool(mail: DemoMail, mode: str) -> None:
    read_only = await tokens_for(mail, "alice", ["mail.read"])
    assert read_only["scope"] == "mail.read"
    async with mcp(mail, read_only["access_token"], mode) as session:
        assert not (await session.call("list_messages")).is_error
        denied = await session.call("send_reply", {"thread_id": "thr_alice_3", "body": "numbers attached"})
        assert denied.is_error and "mail.send" in denied.content[0].text

    send_only = await tokens_for(mail, "alice", ["mail.send"])
    async with mcp(mail, send_only["access_token"], mode) as session:
        denied = await session.call("read_message", {"id": "msg_alice_3"})
        assert denied.is_error and "mail.read" in denied.content[0].text


@pytest.mark.anyio
async def test_the_user_can_grant_fewer_scopes_than_asked(mail: DemoMail) -> None:
    async with oauth(mail) as client:
        request = client.authorization_request(BOTH)
        final = await complete_login_and_consent(
            client.http, request.url, "alice", "alice-password", scopes=["mail.read"],
        )
        issued = await client.exchange_code(client.code_from_redirect(final, request), request)
    assert issued["scope"] == "mail.read"
    async with mcp(mail, issued["access_token"], "2026-07-28") as session:
        denied = await session.call("send_reply", {"thread_id": "thr_alice_3", "body": "x"})
        assert denied.is_error and "mail.send" in denied.content[0].text


@pytest.mark.anyio
async def test_each_request_is_judged_by_its_own_token_within_a_session(mail: DemoMail) -> None:
    full = await tokens_for(mail, "alice", BOTH)
    async with oauth(mail) as client:
        narrowed = await client.refresh(full["refresh_token"], scope="mail.read")
    assert narrowed["scope"] == "mail.read"
    async with mcp(mail, full["access_token"], "legacy") as session:
        session_id = session.responses[-1].headers.get("mcp-session-id")
        assert session_id
        session.use_token(narrowed["access_token"])
        denied = await session.call("send_reply", {"thread_id": "thr_alice_3", "body": "x"})
        assert denied.is_error and "mail.send" in denied.content[0].text
        assert session.responses[-1].request.headers.get("mcp-session-id") == session_id


# -- refresh, revocation, provider-side events --------------------------------------------------


@pytest.mark.anyio
async def test_refresh_tokens_rotate_and_reuse_revokes_the_grant(mail: DemoMail) -> None:
    first = await tokens_for(mail, "alice", BOTH)
    async with oauth(mail, auth_method="client_secret_basic") as client:
        second = await client.refresh(first["refresh_token"])
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        assert second["scope"] == "mail.read mail.send"
        async with mcp(mail, second["access_token"], "2026-07-28") as session:
            assert not (await session.call("list_messages")).is_error
        third = await client.refresh(second["refresh_token"])

        # Presenting a rotated-away refresh token again revokes the whole grant.
        with pytest.raises(TokenEndpointError) as reused:
            await client.refresh(first["refresh_token"])
        assert reused.value.error == "invalid_grant"
        with pytest.raises(TokenEndpointError):
            await client.refresh(third["refresh_token"])
    assert_invalid_token(mail, await raw_mcp_post(mail, third["access_token"]))
    assert mail.stats()["refresh_reuse_detected"] >= 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_revoking_the_refresh_token_revokes_its_access_tokens(mail: DemoMail, mode: str) -> None:
    issued = await tokens_for(mail, "alice", BOTH)
    async with oauth(mail) as client:
        refreshed = await client.refresh(issued["refresh_token"])
        async with mcp(mail, refreshed["access_token"], mode) as session:
            assert not (await session.call("list_messages")).is_error
            await client.revoke(refreshed["refresh_token"], hint="refresh_token")
            with pytest.raises(MCPError):
                await session.call("list_messages")
            assert_invalid_token(mail, session.responses[-1])
        for token in (issued["access_token"], refreshed["access_token"]):
            assert_invalid_token(mail, await raw_mcp_post(mail, token))
        with pytest.raises(TokenEndpointError) as refused:
            await client.refresh(refreshed["refresh_token"])
        assert refused.value.error == "invalid_grant"


@pytest.mark.anyio
async def test_revoking_an_access_token_leaves_the_refresh_token(mail: DemoMail) -> None:
    issued = await tokens_for(mail, "alice", BOTH)
    before = mail.stats()["revocations"]
    async with oauth(mail) as client:
        await client.revoke(issued["access_token"])
        assert_invalid_token(mail, await raw_mcp_post(mail, issued["access_token"]))
        await client.revoke("never-issued")  # RFC 7009: not an error
        fresh = await client.refresh(issued["refresh_token"])
    async with mcp(mail, fresh["access_token"], "2026-07-28") as session:
        assert not (await session.call("list_messages")).is_error
    assert mail.stats()["revocations"] == before + 1


@pytest.mark.anyio
async def test_revoke_all_simulates_the_user_withdrawing_access(mail: DemoMail) -> None:
    alice = await tokens_for(mail, "alice", BOTH)
    bob = await tokens_for(mail, "bob", BOTH)
    async with mcp(mail, alice["access_token"], "legacy") as session:
        assert not (await session.call("list_messages")).is_error
        assert mail.revoke_all("alice") >= 1
        with pytest.raises(MCPError):
            await session.call("list_messages")
        assert_invalid_token(mail, session.responses[-1])
    async with oauth(mail) as client:
        with pytest.raises(TokenEndpointError) as refused:
            await client.refresh(alice["refresh_token"])
        assert refused.value.error == "invalid_grant"
    async with mcp(mail, bob["access_token"], "2026-07-28") as session:
        assert not (await session.call("list_messages")).is_error
    # Authorizing again works.
    again = await tokens_for(mail, "alice", BOTH)
    async with mcp(mail, again["access_token"], "2026-07-28") as session:
        assert not (await session.call("list_messages")).is_error


@pytest.mark.anyio
async def test_expire_all_expires_access_tokens_but_refresh_still_works(mail: DemoMail) -> None:
    issued = await tokens_for(mail, "bob", BOTH)
    async with mcp(mail, issued["access_token"], "2026-07-28") as session:
        assert not (await session.call("list_messages")).is_error
        assert mail.expire_all() >= 1
        with pytest.raises(MCPError):
            await session.call("list_messages")
        assert_invalid_token(mail, session.responses[-1])
    async with oauth(mail) as client:
        fresh = await client.refresh(issued["refresh_token"])
    async with mcp(mail, fresh["access_token"], "legacy") as session:
        assert not (await session.call("list_messages")).is_error


@pytest.mark.anyio
async def test_stats_count_tokens_refreshes_revocations_and_calls(mail: DemoMail) -> None:
    before = mail.stats()
    issued = await tokens_for(mail, "alice", BOTH)
    async with oauth(mail) as client:
        refreshed = await client.refresh(issued["refresh_token"])
        async with mcp(mail, refreshed["access_token"], "2026-07-28") as session:
            await session.call("list_messages")
            await session.call("read_message", {"id": "msg_alice_3"})
        await client.revoke(refreshed["refresh_token"])
    after = mail.stats()
    assert after["access_tokens_issued"] == before["access_tokens_issued"] + 2
    assert after["refreshes"] == before["refreshes"] + 1
    assert after["revocations"] == before["revocations"] + 1
    assert after["mcp_calls"]["list_messages"] == before["mcp_calls"]["list_messages"] + 1
    assert after["mcp_calls"]["read_message"] == before["mcp_calls"]["read_message"] + 1


# -- configuration: token lifetime, state file, the start() helper ------------------------------


@pytest.mark.anyio
async def test_access_token_ttl_is_configurable(tmp_path: Path) -> None:
    with start(redirect_uris=[REDIRECT], access_token_ttl=0) as short:
        issued = await tokens_for(short, "alice", ["mail.read"])
        assert issued["expires_in"] == 0
        assert_invalid_token(short, await raw_mcp_post(short, issued["access_token"]))


@pytest.mark.anyio
async def test_state_file_keeps_mail_and_grants_across_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "demo-mail.json"
    port = free_port()
    with start(port, redirect_uris=[REDIRECT], state_file=state_file) as first:
        issued = await tokens_for(first, "alice", BOTH)
        async with mcp(first, issued["access_token"], "2026-07-28") as session:
            sent = await session.call("send_reply", {"thread_id": "thr_alice_3", "body": "Numbers attached."})
        assert not sent.is_error
    assert issued["refresh_token"] not in state_file.read_text()  # stored hashed
    with start(port, redirect_uris=[REDIRECT], state_file=state_file) as second:
        assert any(m["body"] == "Numbers attached." for m in second.mailbox("alice"))
        async with mcp(second, issued["access_token"], "legacy") as session:
            read = await session.call("read_message", {"id": "msg_alice_3"})
            assert read.structured_content["status"] == "answered"
        async with oauth(second) as client:
            fresh = await client.refresh(issued["refresh_token"])
        async with mcp(second, fresh["access_token"], "2026-07-28") as session:
            assert not (await session.call("list_messages")).is_error
