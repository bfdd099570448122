"""The embedded OAuth 2.1 issuer under /idp, driven over HTTP as real clients drive it.

The gateway runs as a real process on loopback; a browser is played by an httpx client with a
cookie jar (login form, CSRF token parsed from the HTML), agents use the MCP SDK client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import msgspec
import pytest

from executor.errors import ConfigError
from executor.idp.client_metadata import ClientMetadataDocuments, MetadataDocumentError, parse_document, url_problem
from executor.idp.dev_tokens import mint_dev_token
from executor.idp.errors import IssuerError
from executor.idp.keys import rotate_signing_key
from executor.idp.passwords import hash_password, verify_password
from executor.idp.records import CodeRecord
from executor.idp.redirects import redirect_uri_problem, same_redirect_uri
from executor.idp.tokens import token_hash
from registry.config import load_config, parse_config
from registry.sqlite_store import open_store
from tests.support.gateway import Gateway, agent, start_gateway

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
BATCH_SECRET = "batch-" + secrets.token_urlsafe(24)
REDIRECT = "http://127.0.0.1/callback"
MCP_INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def issuer_config(*, dev_mode: bool = True) -> dict[str, Any]:
    return {
        "server": {"dev_mode": dev_mode},
        "identity": {"embedded": {
            "enabled": True,
            "users": [{"username": "alice", "password_hash": PASSWORD_HASH,
                       "claims": {"roles": ["Mail.Read"], "groups": ["support"]}}],
            "clients": [
                {"client_id": "cursor", "name": "Cursor", "redirect_uris": [REDIRECT]},
                {"client_id": "batch", "grant_types": ["client_credentials"], "secret_env": "BATCH_SECRET"},
            ],
        }},
        "gateways": [{"name": "default", "agents": {"cursor": [], "batch": []}}, {"name": "sales"}],
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with start_gateway(tmp_path_factory.mktemp("idp"), issuer_config(), env={"BATCH_SECRET": BATCH_SECRET}) as g:
        yield g


# -- a client and a browser ------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def header_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1).replace("&amp;", "&")


@asynccontextmanager
async def browser() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        yield http


def authorize_params(gw: Gateway, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code", "client_id": "cursor", "redirect_uri": REDIRECT, "code_challenge": challenge,
        "code_challenge_method": "S256", "resource": gw.url(), "state": "xyz", "scope": "offline_access",
        **overrides}
    return {k: v for k, v in params.items() if v is not None}


async def log_in(http: httpx2.AsyncClient, login_url: str, password: str = PASSWORD) -> httpx2.Response:
    page = await http.get(login_url)
    assert page.status_code == 200 and "Sign in" in page.text
    return await http.post(login_url.split("?")[0], data={
        "username": "alice", "password": password, "csrf_token": hidden(page.text, "csrf_token"),
        "return_to": hidden(page.text, "return_to")})


async def get_code(http: httpx2.AsyncClient, gw: Gateway, params: dict[str, str]) -> dict[str, str]:
    """Authorize (logging in when asked) and return the redirect's query parameters."""
    r = await http.get(f"{gw.base_url}/idp/authorize", params=params)
    if r.status_code == 303:
        assert r.headers["location"].startswith(f"{gw.base_url}/idp/login?")
        login = await log_in(http, r.headers["location"])
        assert login.status_code == 303
        r = await http.get(login.headers["location"])
    assert r.status_code == 302, r.text
    assert r.headers["location"].startswith(params["redirect_uri"] + "?")
    return query_of(r.headers["location"])


async def token(gw: Gateway, auth: tuple[str, str] | None = None, **form: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(f"{gw.base_url}/idp/token", data=form, auth=auth)


async def code_flow(gw: Gateway, **overrides: str | None) -> dict[str, Any]:
    verifier, challenge = pkce()
    async with browser() as http:
        result = await get_code(http, gw, authorize_params(gw, challenge, **overrides))
    r = await token(gw, grant_type="authorization_code", code=result["code"], redirect_uri=REDIRECT,
                    client_id="cursor", code_verifier=verifier, resource=gw.url())
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


async def mcp_status(gw: Gateway, access_token: str) -> tuple[int, str]:
    async with httpx2.AsyncClient(timeout=30) as http:
        r = await http.post(gw.url(), json=MCP_INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {access_token}"})
    return r.status_code, r.headers.get("www-authenticate", "")


async def list_tools_works(gw: Gateway, access_token: str) -> bool:
    async with agent(gw.url(), access_token) as client:
        await client.list_tools()
    return True


# -- discovery -------------------------------------------------------------------------------


async def test_metadata_is_served_at_both_well_known_locations(gw: Gateway) -> None:
    issuer = f"{gw.base_url}/idp"
    async with httpx2.AsyncClient() as http:
        rfc8414 = await http.get(f"{gw.base_url}/.well-known/oauth-authorization-server/idp")
        oidc = await http.get(f"{gw.base_url}/idp/.well-known/openid-configuration")
    assert rfc8414.status_code == oidc.status_code == 200
    meta = rfc8414.json()
    assert meta == oidc.json()
    assert meta["issuer"] == issuer
    assert {k: meta[k] for k in ("authorization_endpoint", "token_endpoint", "jwks_uri", "revocation_endpoint",
                                 "introspection_endpoint")} == {
        "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks", "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect"}
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}


async def test_jwks_publishes_public_keys_only(gw: Gateway) -> None:
    async with httpx2.AsyncClient() as http:
        keys = (await http.get(f"{gw.base_url}/idp/jwks")).json()["keys"]
    assert len(keys) >= 1
    assert all(k["kty"] == "EC" and k["alg"] == "ES256" and k["kid"] and "d" not in k for k in keys)


async def test_protected_resource_metadata_names_the_embedded_issuer(gw: Gateway) -> None:
    async with httpx2.AsyncClient() as http:
        r = await http.get(f"{gw.base_url}/.well-known/oauth-protected-resource/mcp/default")
    assert r.json()["authorization_servers"] == [f"{gw.base_url}/idp"]


# -- authorization code + PKCE ---------------------------------------------------------------


async def test_code_flow_with_login_gives_a_token_the_gateway_accepts(gw: Gateway) -> None:
    verifier, challenge = pkce()
    async with browser() as http:
        result = await get_code(http, gw, authorize_params(gw, challenge))
        assert result["state"] == "xyz" and result["iss"] == f"{gw.base_url}/idp"  # RFC 9207
        r = await token(gw, grant_type="authorization_code", code=result["code"], redirect_uri=REDIRECT,
                        client_id="cursor", code_verifier=verifier, resource=gw.url())
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        tokens = r.json()
        # Logged in now: the next authorization needs no login form.
        again = await get_code(http, gw, authorize_params(gw, pkce()[1]))
        assert again["code"] != result["code"]
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"] and tokens["scope"] == "offline_access"
    assert header_of(tokens["access_token"])["typ"] == "at+jwt"
    claims = claims_of(tokens["access_token"])
    assert {k: claims[k] for k in ("iss", "sub", "aud", "client_id", "scope", "roles", "groups")} == {
        "iss": f"{gw.base_url}/idp", "sub": "alice", "aud": gw.url(), "client_id": "cursor",
        "scope": "offline_access", "roles": ["Mail.Read"], "groups": ["support"]}
    assert claims["exp"] > claims["iat"] and claims["jti"]
    assert await list_tools_works(gw, tokens["access_token"])
    # The token is for `default` only (RFC 8707 audience).
    async with httpx2.AsyncClient() as client:
        other = await client.post(gw.url("sales"), json=MCP_INIT,
                                  headers={**MCP_HEADERS, "Authorization": f"Bearer {tokens['access_token']}"})
    assert other.status_code == 401


async def test_pkce_plain_and_missing_challenge_are_refused_at_the_redirect_uri(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        for overrides in ({"code_challenge_method": "plain"}, {"code_challenge_method": None},
                          {"code_challenge": None, "code_challenge_method": None}):
            r = await http.get(f"{gw.base_url}/idp/authorize", params=authorize_params(gw, challenge, **overrides))
            assert r.status_code == 302, overrides
            answer = query_of(r.headers["location"])
            assert (answer["error"], answer["state"], answer["iss"]) == ("invalid_request", "xyz", f"{gw.base_url}/idp")
            assert "code" not in answer


async def test_missing_and_wrong_code_verifier_are_refused(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        missing = await get_code(http, gw, authorize_params(gw, challenge))
        wrong = await get_code(http, gw, authorize_params(gw, challenge))
    r1 = await token(gw, grant_type="authorization_code", code=missing["code"], redirect_uri=REDIRECT,
                     client_id="cursor", resource=gw.url())
    r2 = await token(gw, grant_type="authorization_code", code=wrong["code"], redirect_uri=REDIRECT,
                     client_id="cursor", code_verifier=pkce()[0], resource=gw.url())
    assert (r1.status_code, r1.json()["error"]) == (400, "invalid_request")
    assert (r2.status_code, r2.json()["error"]) == (400, "invalid_grant")
    assert "code_verifier" in r1.json()["error_description"] and "code_verifier" in r2.json()["error_description"]


async def test_a_replayed_code_is_refused_and_revokes_what_it_issued(gw: Gateway) -> None:
    verifier, challenge = pkce()
    async with browser() as http:
        result = await get_code(http, gw, authorize_params(gw, challenge))
    form = {"grant_type": "authorization_code", "code": result["code"], "redirect_uri": REDIRECT,
            "client_id": "cursor", "code_verifier": verifier, "resource": gw.url()}
    first = await token(gw, **form)
    replay = await token(gw, **form)
    assert first.status_code == 200
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    status, challenge_header = await mcp_status(gw, first.json()["access_token"])
    assert status == 401 and "revoked" in challenge_header
    refresh = await token(gw, grant_type="refresh_token", refresh_token=first.json()["refresh_token"],
                          client_id="cursor")
    assert refresh.json()["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_redirect_uri_and_client(gw: Gateway) -> None:
    verifier, challenge = pkce()
    async with browser() as http:
        result = await get_code(http, gw, authorize_params(gw, challenge))
        other = await get_code(http, gw, authorize_params(gw, challenge))
    moved = await token(gw, grant_type="authorization_code", code=result["code"], client_id="cursor",
                        redirect_uri="http://127.0.0.1/elsewhere", code_verifier=verifier, resource=gw.url())
    stolen = await token(gw, ("batch", BATCH_SECRET), grant_type="authorization_code", code=other["code"],
                         redirect_uri=REDIRECT, code_verifier=verifier, resource=gw.url())
    assert moved.json()["error"] == "invalid_grant"
    assert stolen.json()["error"] in ("invalid_grant", "unauthorized_client")


async def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        r = await http.get(f"{gw.base_url}/idp/authorize",
                           params=authorize_params(gw, challenge, redirect_uri="https://evil.example/cb"))
        unknown = await http.get(f"{gw.base_url}/idp/authorize",
                                 params=authorize_params(gw, challenge, client_id="nobody"))
    assert r.status_code == 400 and "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html") and "evil.example/cb" in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert unknown.status_code == 400 and "location" not in unknown.headers and "invalid_client" in unknown.text


async def test_a_loopback_redirect_uri_may_use_any_port(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        result = await get_code(http, gw, authorize_params(gw, challenge, redirect_uri="http://127.0.0.1:53682/callback"))
    assert result["code"]


async def test_a_resource_that_is_not_a_gateway_is_invalid_target(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        for resource in ("https://evil.example/mcp/default", f"{gw.base_url}/mcp/nope", None):
            r = await http.get(f"{gw.base_url}/idp/authorize",
                               params=authorize_params(gw, challenge, resource=resource))
            assert r.status_code == 302, resource
            assert query_of(r.headers["location"])["error"] == "invalid_target", resource
    cc = await token(gw, ("batch", BATCH_SECRET), grant_type="client_credentials",
                     resource="https://evil.example/mcp/default")
    assert (cc.status_code, cc.json()["error"]) == (400, "invalid_target")


async def test_a_wrong_password_is_refused_without_a_session(gw: Gateway) -> None:
    _, challenge = pkce()
    async with browser() as http:
        r = await http.get(f"{gw.base_url}/idp/authorize", params=authorize_params(gw, challenge))
        login = await log_in(http, r.headers["location"], password="wrong")
        assert login.status_code == 401 and "wrong username or password" in login.text
        assert "interlock_idp_session" not in login.headers.get("set-cookie", "")
        again = await http.get(f"{gw.base_url}/idp/authorize", params=authorize_params(gw, challenge))
    assert again.status_code == 303  # still asked to log in


async def test_a_login_without_the_csrf_token_is_refused(gw: Gateway) -> None:
    async with browser() as http:
        await http.get(f"{gw.base_url}/idp/login")
        r = await http.post(f"{gw.base_url}/idp/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 400 and "interlock_idp_session" not in r.headers.get("set-cookie", "")


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(gw: Gateway) -> None:
    first = await code_flow(gw)
    second = await token(gw, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="cursor")
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert claims_of(rotated["access_token"])["aud"] == gw.url()
    assert await list_tools_works(gw, rotated["access_token"])

    reuse = await token(gw, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="cursor")
    assert (reuse.status_code, reuse.json()["error"]) == (400, "invalid_grant")
    after = await token(gw, grant_type="refresh_token", refresh_token=rotated["refresh_token"], client_id="cursor")
    assert after.json()["error"] == "invalid_grant"  # the family is revoked
    assert (await mcp_status(gw, rotated["access_token"]))[0] == 401
    assert (await mcp_status(gw, first["access_token"]))[0] == 401


async def test_refresh_cannot_widen_scope_and_a_refused_refresh_keeps_the_token(gw: Gateway) -> None:
    tokens = await code_flow(gw)
    wider = await token(gw, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="cursor",
                        scope="offline_access actions:destructive")
    elsewhere = await token(gw, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                            client_id="cursor", resource=gw.url("sales"))
    fine = await token(gw, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="cursor")
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (400, "invalid_target")
    assert fine.status_code == 200 and fine.json()["scope"] == "offline_access"


async def test_a_refresh_token_is_bound_to_its_client(gw: Gateway) -> None:
    tokens = await code_flow(gw)
    r = await token(gw, ("batch", BATCH_SECRET), grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert r.json()["error"] in ("invalid_grant", "unauthorized_client")


# -- client credentials ----------------------------------------------------------------------


async def test_client_credentials_for_a_confidential_client(gw: Gateway) -> None:
    basic = await token(gw, ("batch", BATCH_SECRET), grant_type="client_credentials", resource=gw.url())
    post = await token(gw, grant_type="client_credentials", client_id="batch", client_secret=BATCH_SECRET,
                       resource=gw.url())
    wrong = await token(gw, ("batch", "not-the-secret"), grant_type="client_credentials", resource=gw.url())
    public = await token(gw, grant_type="client_credentials", client_id="cursor", resource=gw.url())
    assert basic.status_code == post.status_code == 200
    assert "refresh_token" not in basic.json()
    claims = claims_of(basic.json()["access_token"])
    assert (claims["sub"], claims["client_id"], claims["aud"]) == ("batch", "batch", gw.url())
    assert await list_tools_works(gw, basic.json()["access_token"])
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert BATCH_SECRET not in wrong.text and "not-the-secret" not in wrong.text
    assert public.status_code in (400, 401) and public.json()["error"] in ("invalid_client", "unauthorized_client")


async def test_oauth_errors_are_json_lowercase_and_helpful(gw: Gateway) -> None:
    r = await token(gw, grant_type="password", username="alice", password=PASSWORD)
    body = r.json()
    assert (r.status_code, body["error"]) == (400, "unsupported_grant_type")
    assert body["error_description"][0].islower() and not body["error_description"].endswith(".")
    assert PASSWORD not in r.text
    async with httpx2.AsyncClient() as http:
        as_json = await http.post(f"{gw.base_url}/idp/token", json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"


# -- revocation and introspection ------------------------------------------------------------


async def test_a_revoked_access_token_is_refused_on_the_next_call(gw: Gateway) -> None:
    tokens = await code_flow(gw)
    assert await list_tools_works(gw, tokens["access_token"])
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{gw.base_url}/idp/revoke", data={"token": tokens["access_token"],
                                                                "client_id": "cursor"})
    assert r.status_code == 200
    status, challenge = await mcp_status(gw, tokens["access_token"])
    assert status == 401 and 'error="invalid_token"' in challenge and "revoked" in challenge
    # The refresh token was not revoked with it.
    fresh = await token(gw, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="cursor")
    assert fresh.status_code == 200 and await list_tools_works(gw, fresh.json()["access_token"])


async def test_revoking_a_refresh_token_revokes_its_access_tokens(gw: Gateway) -> None:
    tokens = await code_flow(gw)
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{gw.base_url}/idp/revoke", data={"token": tokens["refresh_token"],
                                                                "token_type_hint": "refresh_token",
                                                                "client_id": "cursor"})
        unknown = await http.post(f"{gw.base_url}/idp/revoke", data={"token": "nonsense", "client_id": "cursor"})
    assert r.status_code == unknown.status_code == 200  # RFC 7009 §2.2: unknown tokens are not an error
    assert (await mcp_status(gw, tokens["access_token"]))[0] == 401
    again = await token(gw, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="cursor")
    assert again.json()["error"] == "invalid_grant"


async def test_introspection_needs_a_confidential_client_and_tells_active_from_inactive(gw: Gateway) -> None:
    issued = (await token(gw, ("batch", BATCH_SECRET), grant_type="client_credentials", resource=gw.url())).json()
    user_tokens = await code_flow(gw)
    url = f"{gw.base_url}/idp/introspect"
    async with httpx2.AsyncClient() as http:
        active = (await http.post(url, data={"token": issued["access_token"]}, auth=("batch", BATCH_SECRET))).json()
        refresh = (await http.post(url, data={"token": user_tokens["refresh_token"]},
                                   auth=("batch", BATCH_SECRET))).json()
        anonymous = await http.post(url, data={"token": issued["access_token"]})
        public = await http.post(url, data={"token": issued["access_token"], "client_id": "cursor"})
        await http.post(f"{gw.base_url}/idp/revoke", data={"token": issued["access_token"]},
                        auth=("batch", BATCH_SECRET))
        revoked = (await http.post(url, data={"token": issued["access_token"]}, auth=("batch", BATCH_SECRET))).json()
        garbage = (await http.post(url, data={"token": "x.y.z"}, auth=("batch", BATCH_SECRET))).json()
    claims = claims_of(issued["access_token"])
    assert active == {"active": True, "client_id": "batch", "scope": "", "sub": "batch", "aud": gw.url(),
                      "iss": f"{gw.base_url}/idp", "exp": claims["exp"], "iat": claims["iat"],
                      "token_type": "Bearer", "jti": claims["jti"]}
    assert refresh["active"] is True and refresh["username"] == "alice" and refresh["client_id"] == "cursor"
    assert anonymous.json()["error"] == "invalid_client" and public.json()["error"] == "invalid_client"
    assert revoked == {"active": False} and garbage == {"active": False}


# -- client ID metadata documents ------------------------------------------------------------


@contextmanager
def metadata_document_server() -> Iterator[str]:
    """A tiny HTTP server on loopback serving one client ID metadata document; yields its URL."""
    documents: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/oauth/client.json"
    documents["/oauth/client.json"] = json.dumps({
        "client_id": url, "client_name": "Demo Agent", "redirect_uris": ["http://127.0.0.1:8976/cb"],
        "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"}).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


async def test_a_metadata_document_client_signs_in_with_consent_in_dev_mode(gw: Gateway) -> None:
    verifier, challenge = pkce()
    with metadata_document_server() as client_id:
        params = authorize_params(gw, challenge, client_id=client_id, redirect_uri="http://127.0.0.1:8976/cb")
        async with browser() as http:
            r = await http.get(f"{gw.base_url}/idp/authorize", params=params)
            assert r.status_code == 303
            login = await log_in(http, r.headers["location"])
            consent = await http.get(login.headers["location"])
            assert consent.status_code == 200 and "Demo Agent" in consent.text and "127.0.0.1:8976" in consent.text
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
            fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
            denied = await http.post(f"{gw.base_url}/idp/authorize", data={**fields, "decision": "deny"})
            allowed = await http.post(f"{gw.base_url}/idp/authorize", data={**fields, "decision": "allow"})
            forged = await http.post(f"{gw.base_url}/idp/authorize", data={**fields, "decision": "allow",
                                                                             "csrf_token": "forged"})
        assert query_of(denied.headers["location"])["error"] == "access_denied"
        assert forged.status_code == 400 and "location" not in forged.headers
        answer = query_of(allowed.headers["location"])
        r = await token(gw, grant_type="authorization_code", code=answer["code"], client_id=client_id,
                        redirect_uri="http://127.0.0.1:8976/cb", code_verifier=verifier, resource=gw.url())
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access_token"])["client_id"] == client_id and r.json()["refresh_token"]
    assert await list_tools_works(gw, r.json()["access_token"])


async def test_an_http_metadata_document_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    _, challenge = pkce()
    with metadata_document_server() as client_id, \
            start_gateway(tmp_path, issuer_config(dev_mode=False), env={"BATCH_SECRET": BATCH_SECRET}) as g:
        async with browser() as http:
            r = await http.get(f"{g.base_url}/idp/authorize", params=authorize_params(
                g, challenge, client_id=client_id, redirect_uri="http://127.0.0.1:8976/cb"))
    assert r.status_code == 400 and "location" not in r.headers and "dev_mode" in r.text


# -- dev tokens, keys ------------------------------------------------------------------------


async def test_mint_dev_token_works_only_in_dev_mode(gw: Gateway) -> None:
    config = load_config(gw.config_path)
    with open_store(gw.db) as store:
        dev = mint_dev_token(store, config, user="alice", agent="cursor", scopes=["offline_access"],
                             gateway="default")
        with pytest.raises(IssuerError):
            mint_dev_token(store, parse_config(_yaml({**issuer_config(dev_mode=False)})), user="alice",
                           agent="cursor", scopes=[], gateway="default")
        with pytest.raises(IssuerError):
            mint_dev_token(store, config, user="mallory", agent="cursor", scopes=[], gateway="default")
        with pytest.raises(IssuerError):
            mint_dev_token(store, config, user="alice", agent="cursor", scopes=[], gateway="nope")
    assert claims_of(dev)["aud"] == gw.url() and claims_of(dev)["roles"] == ["Mail.Read"]
    assert await list_tools_works(gw, dev)


async def test_signing_keys_survive_restarts_and_rotate_without_breaking_tokens(tmp_path: Path) -> None:
    env = {"BATCH_SECRET": BATCH_SECRET}
    with start_gateway(tmp_path, issuer_config(), env=env) as g:
        async with httpx2.AsyncClient() as http:
            first = (await http.get(f"{g.base_url}/idp/jwks")).json()["keys"]
    with start_gateway(tmp_path, issuer_config(), env=env) as g:
        async with httpx2.AsyncClient() as http:
            assert (await http.get(f"{g.base_url}/idp/jwks")).json()["keys"] == first
            old = (await token(g, ("batch", BATCH_SECRET), grant_type="client_credentials", resource=g.url())).json()
            with open_store(g.db) as store:
                new_kid = rotate_signing_key(store)
            keys = (await http.get(f"{g.base_url}/idp/jwks")).json()["keys"]
            new = (await token(g, ("batch", BATCH_SECRET), grant_type="client_credentials", resource=g.url())).json()
        assert [k["kid"] for k in keys] == [new_kid, first[0]["kid"]]
        assert header_of(new["access_token"])["kid"] == new_kid
        assert await list_tools_works(g, old["access_token"]) and await list_tools_works(g, new["access_token"])


async def test_the_gateway_output_never_contains_tokens_or_secrets(tmp_path: Path) -> None:
    with start_gateway(tmp_path, issuer_config(), env={"BATCH_SECRET": BATCH_SECRET}) as g:
        tokens = await code_flow(g)
        rotated = (await token(g, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                               client_id="cursor")).json()
        await token(g, grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id="cursor")
        cc = (await token(g, ("batch", BATCH_SECRET), grant_type="client_credentials", resource=g.url())).json()
        await token(g, ("batch", "wrong-" + BATCH_SECRET), grant_type="client_credentials", resource=g.url())
        async with browser() as http:
            r = await http.get(f"{g.base_url}/idp/authorize", params=authorize_params(g, pkce()[1]))
            await log_in(http, r.headers["location"], password="a-wrong-password")
        await mcp_status(g, rotated["access_token"])
        g.proc.terminate()
        g.proc.wait(timeout=10)
        assert g.proc.stdout is not None
        output = g.proc.stdout.read().decode(errors="replace")
    secrets_seen = [tokens["access_token"], tokens["refresh_token"], rotated["access_token"],
                    rotated["refresh_token"], cc["access_token"], BATCH_SECRET, PASSWORD, "a-wrong-password",
                    PASSWORD_HASH]
    assert [s for s in secrets_seen if s in output] == []
    assert "interlock serving" in output  # the output was captured at all


# -- units: passwords, config, store ---------------------------------------------------------


def test_password_hashes_verify_and_reject() -> None:
    assert PASSWORD_HASH.startswith("scrypt$") and len(PASSWORD_HASH.split("$")) == 6
    assert verify_password(PASSWORD, PASSWORD_HASH)
    assert not verify_password("wrong", PASSWORD_HASH)
    assert not verify_password(PASSWORD, "plaintext")
    assert not verify_password(PASSWORD, "scrypt$1099511627776$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
    assert hash_password(PASSWORD) != PASSWORD_HASH  # salted


def _yaml(data: dict[str, Any]) -> str:
    return json.dumps(data)  # JSON is YAML


def test_config_validation_of_the_embedded_section() -> None:
    bad = issuer_config()
    bad["identity"]["embedded"]["users"] = [
        {"username": "alice", "password_hash": "hunter2"},
        {"username": "alice", "password_hash": PASSWORD_HASH, "claims": {"sub": "root"}}]
    bad["identity"]["embedded"]["clients"] = [
        {"client_id": "cursor", "redirect_uris": ["http://example.com/cb", "/relative"]},
        {"client_id": "cursor", "redirect_uris": ["https://ok.example/cb"], "grant_types": ["password"]},
        {"client_id": "batch", "grant_types": ["client_credentials"]},
        {"client_id": "both", "grant_types": ["client_credentials"], "secret_env": "A", "secret_file": "/x"},
    ]
    with pytest.raises(ConfigError) as err:
        parse_config(_yaml(bad))
    problems = "\n".join(err.value.problems)
    for expected in ["users[0].password_hash: is not a password hash",
                     "users[1].username: duplicate user `alice`",
                     "users[1].claims.sub: is set by the issuer itself",
                     "clients[0].redirect_uris[0]: `http://example.com/cb` must use https",
                     "clients[0].redirect_uris[1]: `/relative` is not an absolute URI",
                     "clients[1].client_id: duplicate client `cursor`",
                     "clients[1].grant_types[0]: `password` is not supported",
                     "clients[2]: `client_credentials` is for confidential clients",
                     "clients[3]: set either `secret_env` or `secret_file`, not both"]:
        assert expected in problems, expected
    assert isinstance(parse_config(_yaml(issuer_config())), object)


def test_plain_http_off_loopback_needs_dev_mode_for_the_issuer() -> None:
    config = issuer_config(dev_mode=False)
    config["server"]["public_url"] = "http://gateway.internal:8080"
    with pytest.raises(ConfigError) as err:
        parse_config(_yaml(config))
    assert any("embedded.enabled: the embedded issuer needs https" in p for p in err.value.problems)


def test_a_code_is_consumed_once_and_its_replay_revokes_the_family(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as store:
        code = CodeRecord(code_hash=token_hash("c"), family="f1", client_id="cursor", username="alice",
                          redirect_uri=None, scope="", resource="r", code_challenge="x" * 43,
                          code_challenge_method="S256", auth_time=1, expires_at=160)
        store.put_code(code, 100)
        assert store.use_code(token_hash("c"), 101).outcome == "ok"
        assert store.use_code(token_hash("c"), 102).outcome == "replayed"
        assert store.use_code(token_hash("nope"), 102).outcome == "unknown"
        store.put_code(msgspec_replace(code, code_hash=token_hash("late"), family="f2"), 100)
        assert store.use_code(token_hash("late"), 161).outcome == "expired"
        tables = {r[0]: r[1] for r in store.db.execute("SELECT family, revoked_at FROM idp_families").fetchall()}
        stored = [r[0] for r in store.db.execute("SELECT code_hash FROM idp_codes").fetchall()]
    assert tables == {"f1": 102, "f2": None}
    assert "c" not in stored and token_hash("c") in stored  # hashed, never in clear


def msgspec_replace(record: CodeRecord, **changes: Any) -> CodeRecord:
    return msgspec.structs.replace(record, **changes)


def test_config_file_for_the_gateway_is_written_without_secrets(gw: Gateway) -> None:
    text = gw.config_path.read_text()
    assert BATCH_SECRET not in text and PASSWORD not in text


async def test_metadata_document_urls_are_fenced_against_server_side_request_forgery() -> None:
    documents = ClientMetadataDocuments(dev_mode=False)
    try:
        for url in ("https://10.0.0.8/client.json", "https://169.254.169.254/latest/client",
                    "https://[fd00::1]/client.json", "https://127.0.0.1/client.json", "http://example.com/client.json",
                    "https://example.com", "https://example.com/a/../client.json", "https://u:p@example.com/c"):
            with pytest.raises(MetadataDocumentError):
                await documents.fetch(url)
    finally:
        await documents.aclose()
    assert url_problem("http://127.0.0.1:9/c.json", dev_mode=True) is None
    assert url_problem("https://example.com/c.json", dev_mode=False) is None


def test_a_metadata_document_must_describe_a_public_client_at_its_own_url() -> None:
    url = "https://agent.example/client.json"
    good = {"client_id": url, "client_name": "Agent", "redirect_uris": ["https://agent.example/cb"]}
    assert parse_document(url, good).redirect_uris == ("https://agent.example/cb",)
    for bad in ({**good, "client_id": "https://other.example/client.json"}, {**good, "client_name": ""},
                {**good, "redirect_uris": []}, {**good, "redirect_uris": ["javascript:alert(1)"]},
                {**good, "token_endpoint_auth_method": "client_secret_basic"}, ["not", "an", "object"]):
        with pytest.raises(MetadataDocumentError):
            parse_document(url, bad)


def test_redirect_uri_rules() -> None:
    assert redirect_uri_problem("https://app.example/cb") is None
    assert redirect_uri_problem("http://127.0.0.1:3000/cb") is None
    assert redirect_uri_problem("cursor://anysphere.cursor-retrieval/oauth/callback") is None
    assert redirect_uri_problem("http://app.example/cb") is not None
    assert redirect_uri_problem("https://app.example/cb#frag") is not None
    assert same_redirect_uri("http://127.0.0.1:5555/cb", "http://127.0.0.1/cb")
    assert not same_redirect_uri("http://127.0.0.1:5555/other", "http://127.0.0.1/cb")
    assert not same_redirect_uri("https://app.example:444/cb", "https://app.example/cb")
