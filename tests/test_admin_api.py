"""The admin API: only an admin user through an admin client may curate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.support.gateway import Gateway, start_gateway
from tests.support.issuer import TestIssuer
from tests.support.upstream_server import Upstream

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gw(issuer: TestIssuer, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {
        "identity": {"issuers": [{"issuer": issuer.url}],
                     "admin": {"role": "Interlock.Admin", "clients": ["interlock-admin"]}},
        "upstreams": [{"name": "up", "url": upstream.url}],
        "gateways": [{"name": "default", "agents": {"cursor": ["up.*"]}}],
    }
    with start_gateway(tmp_path_factory.mktemp("admin"), config) as g:
        yield g


def admin_token(issuer: TestIssuer, gw: Gateway, client: str, roles: list[str], **claims: Any) -> str:
    return issuer.mint(**{"sub": "root", "client_id": client, "aud": f"{gw.base_url}/admin/api", "roles": roles,
                          **claims})


async def get(gw: Gateway, path: str, token: str | None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient() as http:
        return await http.get(f"{gw.base_url}/admin/api{path}", headers=headers)


async def test_an_admin_user_through_the_admin_client_may_curate(gw: Gateway, issuer: TestIssuer) -> None:
    token = admin_token(issuer, gw, "interlock-admin", ["Interlock.Admin"])
    who = await get(gw, "/whoami", token)
    assert who.json() == {"agent": "interlock-admin", "user": f"{issuer.url}#root", "admin": True}
    servers = await get(gw, "/servers", token)
    assert [s["spec"]["name"] for s in servers.json()] == ["up"]
    tools = await get(gw, "/tools?status=pinned", token)
    assert "echo" in [t["name"] for t in tools.json()]
    async with httpx2.AsyncClient() as http:
        auth = {"Authorization": f"Bearer {token}"}
        synced = await http.post(f"{gw.base_url}/admin/api/servers/up/sync", headers=auth)
        unknown = await http.post(f"{gw.base_url}/admin/api/tools/up.nope/bless",
                                  headers={"Authorization": f"Bearer {token}"})
    assert synced.status_code == 200 and synced.json()["server"] == "up"
    assert unknown.status_code == 400 and unknown.json()["error"] == "catalog_error"


async def test_an_agent_never_inherits_its_users_admin_role(gw: Gateway, issuer: TestIssuer) -> None:
    r = await get(gw, "/servers", admin_token(issuer, gw, "cursor", ["Interlock.Admin"]))
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden" and "agent_not_granted" in r.json()["error_description"]


async def test_the_admin_client_is_nothing_without_an_admin_user(gw: Gateway, issuer: TestIssuer) -> None:
    r = await get(gw, "/servers", admin_token(issuer, gw, "interlock-admin", ["staff"]))
    assert r.status_code == 403 and "user_not_granted" in r.json()["error_description"]


async def test_tokens_are_checked_like_everywhere_else(gw: Gateway, issuer: TestIssuer) -> None:
    missing = await get(gw, "/servers", None)
    assert missing.status_code == 401 and "resource_metadata=" in missing.headers["www-authenticate"]
    gateway_audience = issuer.mint(sub="root", client_id="interlock-admin", aud=gw.url(), roles=["Interlock.Admin"])
    wrong = await get(gw, "/servers", gateway_audience)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
