"""Identity-provider presets, each with a token of that provider's exact shape, signed by a real issuer
served over HTTP and verified by the gateway's verifier; one preset end to end through the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from executor.errors import AuthenticationError
from executor.identity import TokenVerifier
from executor.principal import Principal, User
from tests.support.gateway import agent, start_gateway
from tests.support.issuer import TestIssuer
from tests.support.upstream_server import Upstream

pytestmark = pytest.mark.anyio

AUD = "http://127.0.0.1:9/mcp/default"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.fixture(scope="module")
def tenant_issuer() -> Iterator[TestIssuer]:
    # Entra v2 issuers have a path: https://login.microsoftonline.com/<tid>/v2.0
    with TestIssuer(path=f"{TENANT}/v2.0") as iss:
        yield iss


@pytest.fixture
async def verify(issuer: TestIssuer, tenant_issuer: TestIssuer) -> AsyncIterator[Any]:
    verifiers: list[TokenVerifier] = []

    async def run(preset: str, claims: dict[str, Any], *, on: TestIssuer | None = None) -> Principal:
        iss = on or issuer
        verifier = TokenVerifier([iss.config(preset=preset)])
        verifiers.append(verifier)
        return await verifier.verify(iss.mint({"aud": AUD, **claims}), AUD)

    yield run
    for v in verifiers:
        await v.aclose()


def without_claims(p: Principal) -> tuple[str, User, frozenset[str], frozenset[str]]:
    return p.agent, p.user, p.permissions, p.scopes


async def test_entra_id(verify: Any, tenant_issuer: TestIssuer) -> None:
    claims = {"ver": "2.0", "tid": TENANT, "oid": "00000000-0000-0000-0000-0000000a11ce",
              "sub": "pairwise-AbC123", "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
              "roles": ["Mail.Read", "Billing.Credit"], "groups": ["b2e8f7c4-sales"], "scp": "Mail.Read User.Read"}
    p = await verify("entra", claims, on=tenant_issuer)
    assert without_claims(p) == (
        "6e74172b-be56-4843-9ff4-e66a39bb12e3", User(tenant_issuer.url, "00000000-0000-0000-0000-0000000a11ce"),
        frozenset({"role:Mail.Read", "role:Billing.Credit", "group:b2e8f7c4-sales"}),
        frozenset({"Mail.Read", "User.Read"}))
    assert p.claims["tid"] == TENANT


async def test_entra_v1_names_the_agent_in_appid(verify: Any, tenant_issuer: TestIssuer) -> None:
    p = await verify("entra", {"oid": "u-1", "sub": "s", "appid": "legacy-app", "scp": "Mail.Read"},
                     on=tenant_issuer)
    assert (p.agent, p.user.subject) == ("legacy-app", "u-1")


async def test_okta(verify: Any, issuer: TestIssuer) -> None:
    claims = {"sub": "alice@example.com", "uid": "00u1abcd2EFGH3ijk4x7", "cid": "0oa8cursor",
              "scp": ["mail.read", "offline_access"], "groups": ["Everyone", "Sales"]}
    assert without_claims(await verify("okta", claims)) == (
        "0oa8cursor", User(issuer.url, "00u1abcd2EFGH3ijk4x7"), frozenset({"group:Everyone", "group:Sales"}),
        frozenset({"mail.read", "offline_access"}))


async def test_keycloak(verify: Any, issuer: TestIssuer) -> None:
    claims = {"sub": "f1b2-alice", "azp": "cursor", "scope": "openid email",
              "realm_access": {"roles": ["offline_access", "staff"]},
              "resource_access": {"interlock": {"roles": ["Mail.Read"]}, "account": {"roles": ["view-profile"]}}}
    assert without_claims(await verify("keycloak", claims)) == (
        "cursor", User(issuer.url, "f1b2-alice"),
        frozenset({"role:offline_access", "role:staff", "role:interlock/Mail.Read", "role:account/view-profile"}),
        frozenset({"openid", "email"}))


async def test_salesforce(verify: Any, issuer: TestIssuer) -> None:
    claims = {"sub": "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6d",
              "client_id": "3MVG9sales-agent", "scope": "api refresh_token",
              "custom_permissions": {"Issue_Credit": True, "Close_Account": False},
              "permission_sets": ["Support_Agent"]}
    assert without_claims(await verify("salesforce", claims)) == (
        "3MVG9sales-agent", User(issuer.url, "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6d"),
        frozenset({"permission:Issue_Credit", "permission:Support_Agent"}), frozenset({"api", "refresh_token"}))


async def test_rfc8693_delegation_the_outermost_actor_is_the_agent(verify: Any, issuer: TestIssuer) -> None:
    claims = {"sub": "alice", "client_id": "token-exchange-service", "roles": ["staff"],
              "act": {"sub": "cursor", "act": {"sub": "admin-bot"}}}
    p = await verify("generic", claims)
    assert (p.agent, p.user.subject) == ("cursor", "alice")  # the nested (earlier) actor is informational


async def test_an_act_claim_without_a_subject_is_refused(verify: Any) -> None:
    with pytest.raises(AuthenticationError):
        await verify("generic", {"sub": "alice", "client_id": "x", "act": {"iss": "https://else"}})
    with pytest.raises(AuthenticationError):
        await verify("generic", {"sub": "alice", "client_id": "x", "act": "cursor"})


async def test_preset_without_its_agent_claim_is_refused(verify: Any) -> None:
    with pytest.raises(AuthenticationError) as err:
        await verify("okta", {"sub": "alice", "uid": "u1"})
    assert "`cid`" in err.value.description


async def test_keycloak_client_role_grants_through_the_gateway(
        issuer: TestIssuer, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> None:
    config = {
        "identity": {"issuers": [{"issuer": issuer.url, "preset": "keycloak"}],
                     "user_grants": [{"role": "interlock/Mail.Read", "tools": ["up.structured"]}]},
        "upstreams": [{"name": "up", "url": upstream.url}],
        "gateways": [{"name": "default", "agents": {"cursor": ["up.*"]}}],
    }
    with start_gateway(tmp_path_factory.mktemp("kc"), config) as g:
        tok = issuer.mint(sub="f1b2-alice", azp="cursor", aud=g.url(),
                          resource_access={"interlock": {"roles": ["Mail.Read"]}})
        async with agent(g.url(), tok) as c:
            assert [t.name for t in (await c.list_tools()).tools] == ["up.structured"]
        # the same role name as a realm role is a different permission
        tok = issuer.mint(sub="f1b2-alice", azp="cursor", aud=g.url(), realm_access={"roles": ["Mail.Read"]})
        async with agent(g.url(), tok) as c:
            assert (await c.list_tools()).tools == []
