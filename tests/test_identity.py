"""TokenVerifier against real test issuers on loopback (tests/support/issuer.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest

from executor.errors import AuthenticationError
from executor.identity import TokenVerifier, metadata_urls
from executor.principal import Principal, User
from registry.config import IssuerConfig
from tests.support.issuer import TestIssuer
from tests.support.procs import free_port

AUD = "http://127.0.0.1:8080/mcp/coding"
GOOD: dict[str, Any] = {"sub": "alice", "aud": AUD, "client_id": "cursor", "scope": "mail.read mail.send"}
FETCH_FAILED = "token issuer keys could not be fetched; try again later"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as i:
        yield i


@pytest.fixture(scope="module")
def other() -> Iterator[TestIssuer]:
    with TestIssuer() as i:
        yield i


@pytest.fixture(scope="module")
def tenant() -> Iterator[TestIssuer]:
    with TestIssuer(path="/tenant-a") as i:
        yield i


@pytest.fixture
def fresh() -> Iterator[TestIssuer]:
    """An issuer of its own, for tests that rotate keys or reconfigure metadata."""
    with TestIssuer() as i:
        yield i


class Clock:
    """Wall time plus an offset the test moves forward; no sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@asynccontextmanager
async def verifier(*issuers: IssuerConfig, **kwargs: Any) -> AsyncIterator[TokenVerifier]:
    v = TokenVerifier(issuers, **kwargs)
    try:
        yield v
    finally:
        await v.aclose()


async def rejected(v: TokenVerifier, token: str, audience: str = AUD) -> str:
    """Assert ``token`` is refused; return the description, checked to leak no part of the token."""
    with pytest.raises(AuthenticationError) as info:
        await v.verify(token, audience)
    description = info.value.description
    assert info.value.code == "invalid_token"
    assert description == description.lower()
    if token:
        assert token not in description
        for part in token.split("."):
            assert len(part) < 8 or part not in description
    return description


def b64(data: bytes | dict[str, Any] | list[Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- accepted tokens -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token_gives_exact_principal(issuer: TestIssuer, alg: str) -> None:
    now = int(time.time())
    token = issuer.mint(alg=alg, iat=now, exp=now + 300, jti="tok-1", **GOOD)
    async with verifier(issuer.config()) as v:
        principal = await v.verify(token, AUD)
    assert principal == Principal(
        agent="cursor",
        user=User(issuer.url, "alice"),
        scopes=frozenset({"mail.read", "mail.send"}),
        token_id="tok-1",
    )
    assert principal.claims == {
        "iss": issuer.url, "iat": now, "exp": now + 300, "jti": "tok-1",
        "sub": "alice", "aud": AUD, "client_id": "cursor", "scope": "mail.read mail.send",
    }


@pytest.mark.anyio
async def test_azp_names_the_agent_and_scp_gives_scopes(issuer: TestIssuer) -> None:
    token = issuer.mint(sub="alice", aud=AUD, azp="claude", scp=["a", "b"], jti=None)
    async with verifier(issuer.config()) as v:
        principal = await v.verify(token, AUD)
    expected = Principal(agent="claude", user=User(issuer.url, "alice"), scopes=frozenset({"a", "b"}))
    assert principal == expected
    assert principal.token_id is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extra", "scopes"),
    [
        ({"scp": "x y"}, {"x", "y"}),
        ({}, set()),
        ({"scope": ""}, set()),
        ({"scope": "x", "scp": ["z"]}, {"x"}),
    ],
)
async def test_scope_forms(issuer: TestIssuer, extra: dict[str, Any], scopes: set[str]) -> None:
    token = issuer.mint(**{**GOOD, "scope": None, **extra})
    async with verifier(issuer.config()) as v:
        assert (await v.verify(token, AUD)).scopes == frozenset(scopes)


@pytest.mark.anyio
async def test_audience_list_containing_ours_is_accepted(issuer: TestIssuer) -> None:
    token = issuer.mint(**{**GOOD, "aud": ["https://elsewhere.example/api", AUD]})
    async with verifier(issuer.config()) as v:
        assert (await v.verify(token, AUD)).agent == "cursor"


@pytest.mark.anyio
@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "JWT", None])
async def test_accepted_typ_headers(issuer: TestIssuer, typ: str | None) -> None:
    token = issuer.mint(header={"typ": typ}, **GOOD)
    async with verifier(issuer.config()) as v:
        assert (await v.verify(token, AUD)).user == User(issuer.url, "alice")


@pytest.mark.anyio
async def test_token_without_kid_is_tried_against_the_issuers_keys(issuer: TestIssuer) -> None:
    token = issuer.mint(header={"kid": None}, **GOOD)
    async with verifier(issuer.config()) as v:
        assert (await v.verify(token, AUD)).agent == "cursor"


@pytest.mark.anyio
async def test_expiry_within_leeway_is_accepted(issuer: TestIssuer) -> None:
    now = int(time.time())
    token = issuer.mint(exp=now - 5, **GOOD)
    async with verifier(issuer.config(leeway_seconds=60)) as v:
        assert (await v.verify(token, AUD)).agent == "cursor"
    async with verifier(issuer.config(leeway_seconds=0)) as v:
        assert await rejected(v, token) == "token has expired"


# -- discovery and keys ----------------------------------------------------------------------


def test_metadata_urls() -> None:
    assert metadata_urls("https://h") == [
        "https://h/.well-known/oauth-authorization-server",
        "https://h/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://h/tenant/") == [
        "https://h/.well-known/oauth-authorization-server/tenant",
        "https://h/.well-known/openid-configuration/tenant",
        "https://h/tenant/.well-known/openid-configuration",
    ]


@pytest.mark.anyio
async def test_discovery_via_rfc8414(fresh: TestIssuer) -> None:
    async with verifier(fresh.config()) as v:
        await v.verify(fresh.mint(**GOOD), AUD)
        await v.verify(fresh.mint(alg="ES256", **GOOD), AUD)
    assert fresh.stats() == {"rfc8414": 1, "jwks": 1}  # keys cached: no network per call


@pytest.mark.anyio
async def test_discovery_falls_back_to_openid_configuration(fresh: TestIssuer) -> None:
    fresh.configure(discovery=("oidc",))
    async with verifier(fresh.config()) as v:
        await v.verify(fresh.mint(**GOOD), AUD)
    assert fresh.stats() == {"404": 1, "oidc": 1, "jwks": 1}


@pytest.mark.anyio
async def test_path_issuer_discovery_inserts_the_well_known_segment(tenant: TestIssuer) -> None:
    assert tenant.url.endswith("/tenant-a")
    before = tenant.stats()
    async with verifier(tenant.config()) as v:
        principal = await v.verify(tenant.mint(**GOOD), AUD)
    assert principal.user == User(tenant.url, "alice")
    after = tenant.stats()
    assert after["rfc8414"] == before.get("rfc8414", 0) + 1
    assert after.get("404", 0) == before.get("404", 0)


@pytest.mark.anyio
async def test_path_issuer_oidc_fallback() -> None:
    with TestIssuer(path="/tenant-b") as tenant:
        tenant.configure(discovery=("oidc",))
        async with verifier(tenant.config()) as v:
            await v.verify(tenant.mint(**GOOD), AUD)
        # RFC 8414 path-inserted and OIDC path-inserted are 404 here; OIDC appended is served
        assert tenant.stats() == {"404": 2, "oidc": 1, "jwks": 1}


@pytest.mark.anyio
async def test_explicit_jwks_uri_skips_discovery(fresh: TestIssuer) -> None:
    fresh.configure(discovery=())
    async with verifier(fresh.config(jwks_uri=fresh.jwks_uri)) as v:
        assert (await v.verify(fresh.mint(**GOOD), AUD)).agent == "cursor"
    assert fresh.stats() == {"jwks": 1}


@pytest.mark.anyio
async def test_metadata_naming_another_issuer_is_not_used(
    fresh: TestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.configure(metadata_issuer="https://evil.example")
    token = fresh.mint(**GOOD)
    with caplog.at_level(logging.WARNING, logger="executor.identity"):
        async with verifier(fresh.config()) as v:
            assert await rejected(v, token) == FETCH_FAILED
    assert "different issuer" in caplog.text
    assert token not in caplog.text
    assert fresh.stats() == {"rfc8414": 1}  # no fallback to OIDC, no JWKS fetched


@pytest.mark.anyio
async def test_unreachable_issuer(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with verifier(IssuerConfig(issuer=dead)) as v:
        forged = f"{b64({'alg': 'RS256'})}.{b64({'iss': dead, **GOOD})}.{b64(b'sig')}"
        with caplog.at_level(logging.WARNING, logger="executor.identity"):
            assert await rejected(v, forged) == FETCH_FAILED
    assert dead in caplog.text and "ConnectError" in caplog.text
    assert forged not in caplog.text


@pytest.mark.anyio
async def test_failed_fetch_is_not_retried_within_the_cooldown(fresh: TestIssuer) -> None:
    fresh.configure(discovery=())
    clock = Clock()
    token = fresh.mint(**GOOD)
    async with verifier(fresh.config(), jwks_refresh_cooldown=30, clock=clock) as v:
        assert await rejected(v, token) == FETCH_FAILED
        assert await rejected(v, token) == FETCH_FAILED
        assert fresh.stats() == {"404": 2}  # one discovery attempt (two well-known URLs)
        fresh.configure(discovery=("rfc8414",))
        clock.offset += 31
        assert (await v.verify(token, AUD)).agent == "cursor"


@pytest.mark.anyio
async def test_rotated_key_is_accepted_without_restart(fresh: TestIssuer) -> None:
    old = fresh.mint(**GOOD)
    async with verifier(fresh.config(), jwks_refresh_cooldown=0) as v:
        await v.verify(old, AUD)
        kids = fresh.rotate()
        new = fresh.mint(**GOOD)
        assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "==="))["kid"] == kids["RS256"]
        assert (await v.verify(new, AUD)).agent == "cursor"
        assert (await v.verify(fresh.mint(alg="ES256", **GOOD), AUD)).agent == "cursor"
        assert (await v.verify(old, AUD)).agent == "cursor"  # old key still published
    assert fresh.stats()["jwks"] == 2


@pytest.mark.anyio
async def test_token_signed_by_a_removed_key_is_rejected(fresh: TestIssuer) -> None:
    old_kid = fresh.kids()["RS256"]
    old = fresh.mint(**GOOD)
    async with verifier(fresh.config(), jwks_refresh_cooldown=0) as v:
        await v.verify(old, AUD)
        fresh.rotate(keep_old=False)
        assert (await v.verify(fresh.mint(**GOOD), AUD)).agent == "cursor"
        assert await rejected(v, old) == "token signature could not be verified"
        # a token minted now with the withdrawn key (the issuer still holds it privately)
        assert await rejected(v, fresh.mint(kid=old_kid, **GOOD)) == "token signature could not be verified"


@pytest.mark.anyio
async def test_refresh_waits_for_the_cooldown(fresh: TestIssuer) -> None:
    clock = Clock()
    async with verifier(fresh.config(), jwks_refresh_cooldown=60, clock=clock) as v:
        await v.verify(fresh.mint(**GOOD), AUD)
        fresh.rotate()
        new = fresh.mint(**GOOD)
        assert await rejected(v, new) == "token signature could not be verified"
        assert fresh.stats()["jwks"] == 1
        clock.offset += 61
        assert (await v.verify(new, AUD)).agent == "cursor"
        assert fresh.stats()["jwks"] == 2


@pytest.mark.anyio
async def test_concurrent_verifies_share_one_fetch(fresh: TestIssuer) -> None:
    tokens = [fresh.mint(**{**GOOD, "sub": f"user-{i}"}) for i in range(20)]
    subjects: list[str] = []

    async def one(v: TokenVerifier, token: str) -> None:
        subjects.append((await v.verify(token, AUD)).user.subject)

    async with verifier(fresh.config(), jwks_refresh_cooldown=0) as v:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for token in tokens:
                    tg.start_soon(one, v, token)
        assert fresh.stats() == {"rfc8414": 1, "jwks": 1}
        fresh.rotate()
        rotated = [fresh.mint(**{**GOOD, "sub": f"next-{i}"}) for i in range(20)]
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for token in rotated:
                    tg.start_soon(one, v, token)
    assert sorted(subjects) == sorted([f"user-{i}" for i in range(20)] + [f"next-{i}" for i in range(20)])
    assert fresh.stats() == {"rfc8414": 1, "jwks": 2}


@pytest.mark.anyio
async def test_set_issuers_keeps_cached_keys_of_remaining_issuers(
    issuer: TestIssuer, other: TestIssuer
) -> None:
    async with verifier(issuer.config()) as v:
        await v.verify(issuer.mint(**GOOD), AUD)
        fetched = issuer.stats()["jwks"]
        v.set_issuers([issuer.config(), other.config()])
        await v.verify(issuer.mint(**GOOD), AUD)
        assert issuer.stats()["jwks"] == fetched
        assert (await v.verify(other.mint(**GOOD), AUD)).user == User(other.url, "alice")
        v.set_issuers([other.config()])
        assert await rejected(v, issuer.mint(**GOOD)) == "token issuer is not trusted"


@pytest.mark.anyio
async def test_injected_http_client_is_used_and_left_open(issuer: TestIssuer) -> None:
    async with httpx2.AsyncClient() as http:
        async with verifier(issuer.config(), http=http) as v:
            await v.verify(issuer.mint(**GOOD), AUD)
        assert not http.is_closed


# -- refused tokens --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_rejected(issuer: TestIssuer, alg: str) -> None:
    token = f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64({'iss': issuer.url, **GOOD})}."
    async with verifier(issuer.config(algorithms=["RS256", "none"])) as v:
        assert await rejected(v, token) == "token signing algorithm is not accepted"


@pytest.mark.anyio
@pytest.mark.parametrize("algorithms", [None, ["RS256", "HS256"]])
@pytest.mark.parametrize("with_kid", [True, False])
async def test_hmac_signed_with_the_public_key_is_rejected(
    issuer: TestIssuer, algorithms: list[str] | None, with_kid: bool
) -> None:
    """Key confusion: HS256 with the issuer's RSA public key (PEM) as the HMAC secret."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "at+jwt"}
    if with_kid:
        header["kid"] = issuer.kids()["RS256"]
    signing_input = f"{b64(header)}.{b64({'iss': issuer.url, 'exp': int(time.time()) + 60, **GOOD})}"
    secret = issuer.public_key_pem("RS256").encode()
    token = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    config = issuer.config(algorithms=algorithms) if algorithms else issuer.config()
    async with verifier(config) as v:
        assert await rejected(v, token) == "token signing algorithm is not accepted"


@pytest.mark.anyio
async def test_alg_outside_the_issuers_list_is_rejected(issuer: TestIssuer) -> None:
    async with verifier(issuer.config(algorithms=["ES256"])) as v:
        assert (await v.verify(issuer.mint(alg="ES256", **GOOD), AUD)).agent == "cursor"
        refused = await rejected(v, issuer.mint(alg="RS256", **GOOD))
    assert refused == "token signing algorithm is not accepted"


@pytest.mark.anyio
async def test_alg_header_swapped_to_another_asymmetric_alg_is_rejected(issuer: TestIssuer) -> None:
    # signed with RS256 but the header claims PS256 (also allowed): the signature must not verify
    async with verifier(issuer.config()) as v:
        rs = issuer.mint(**GOOD).split(".")
        ps_header = b64({"alg": "PS256", "typ": "at+jwt", "kid": issuer.kids()["RS256"]})
        swapped = ".".join([ps_header, rs[1], rs[2]])
        assert await rejected(v, swapped) == "token signature could not be verified"


@pytest.mark.anyio
@pytest.mark.parametrize("typ", ["dpop+jwt", "logout+jwt", "JWE"])
async def test_other_token_types_are_rejected(issuer: TestIssuer, typ: str) -> None:
    async with verifier(issuer.config()) as v:
        description = await rejected(v, issuer.mint(header={"typ": typ}, **GOOD))
    assert description.startswith("token type is not accepted")


@pytest.mark.anyio
async def test_crit_header_is_rejected(issuer: TestIssuer) -> None:
    token = issuer.mint(header={"b64": True, "crit": ["b64"]}, **GOOD)
    async with verifier(issuer.config()) as v:
        assert "critical" in await rejected(v, token)


@pytest.mark.anyio
async def test_token_signed_by_another_issuer_claiming_ours(issuer: TestIssuer, other: TestIssuer) -> None:
    forged = other.mint(**{**GOOD, "iss": issuer.url})
    async with verifier(issuer.config(), other.config()) as v:
        assert await rejected(v, forged) == "token signature could not be verified"


@pytest.mark.anyio
async def test_untrusted_issuer(issuer: TestIssuer, other: TestIssuer) -> None:
    async with verifier(issuer.config()) as v:
        assert await rejected(v, other.mint(**GOOD)) == "token issuer is not trusted"
        # exact string match: a trailing slash is another issuer
        slashed = issuer.mint(**{**GOOD, "iss": issuer.url + "/"})
        assert await rejected(v, slashed) == "token issuer is not trusted"
        assert await rejected(v, issuer.mint(**{**GOOD, "iss": None})) == "token issuer is not trusted"


@pytest.mark.anyio
async def test_unknown_kid_is_rejected(issuer: TestIssuer) -> None:
    async with verifier(issuer.config()) as v:
        description = await rejected(v, issuer.mint(header={"kid": "no-such-key"}, **GOOD))
    assert description == "token signature could not be verified"
    assert "no-such-key" not in description


@pytest.mark.anyio
async def test_tampered_payload_is_rejected(issuer: TestIssuer) -> None:
    header, _, signature = issuer.mint(**GOOD).split(".")
    now = int(time.time())
    tampered = f"{header}.{b64({'iss': issuer.url, 'exp': now + 60, **GOOD, 'sub': 'mallory'})}.{signature}"
    async with verifier(issuer.config()) as v:
        assert await rejected(v, tampered) == "token signature could not be verified"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("aud", "audience"),
    [
        ("https://elsewhere.example/api", AUD),
        (["https://elsewhere.example/api"], AUD),
        (AUD, AUD + "/"),
        (AUD, "http://127.0.0.1:8080/mcp/sales"),
        (AUD + "/extra", AUD),
    ],
)
async def test_wrong_audience(issuer: TestIssuer, aud: Any, audience: str) -> None:
    async with verifier(issuer.config()) as v:
        token = issuer.mint(**{**GOOD, "aud": aud})
        assert await rejected(v, token, audience) == "token was not issued for this resource"


@pytest.mark.anyio
async def test_missing_audience(issuer: TestIssuer) -> None:
    async with verifier(issuer.config()) as v:
        assert await rejected(v, issuer.mint(**{**GOOD, "aud": None})) == "token is missing the `aud` claim"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"exp": -3600}, "token has expired"),
        ({"exp": None}, "token is missing the `exp` claim"),
        ({"nbf": 3600}, "token is not valid yet"),
        ({"iat": 3600}, "token is not valid yet"),
        ({"exp": "tomorrow"}, "token has an invalid `exp` claim"),
    ],
)
async def test_lifetime(issuer: TestIssuer, claims: dict[str, Any], description: str) -> None:
    now = int(time.time())
    relative = {k: now + v if isinstance(v, int) else v for k, v in claims.items()}
    async with verifier(issuer.config()) as v:
        assert await rejected(v, issuer.mint(**{**GOOD, **relative})) == description


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"sub": None}, "token is missing the `sub` claim"),
        ({"sub": ""}, "token is missing the `sub` claim"),
        ({"sub": 42}, "token has an invalid `sub` claim"),
        ({"client_id": None}, "token does not name the client (`client_id` or `azp`)"),
        ({"client_id": ""}, "token does not name the client (`client_id` or `azp`)"),
        ({"client_id": ["cursor"]}, "token does not name the client (`client_id` or `azp`)"),
        ({"scope": 7}, "token has an invalid `scope` claim"),
        ({"scope": None, "scp": [1, 2]}, "token has an invalid `scope` claim"),
        ({"jti": 12}, "token has an invalid `jti` claim"),
    ],
)
async def test_subject_client_and_scope_claims(
    issuer: TestIssuer, claims: dict[str, Any], description: str
) -> None:
    async with verifier(issuer.config()) as v:
        assert await rejected(v, issuer.mint(**{**GOOD, **claims})) == description


@pytest.mark.anyio
@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "é.é.é",
        f"{b64(b'not json')}.{b64({'sub': 'x'})}.c2ln",
        f"{b64([1, 2])}.{b64({'sub': 'x'})}.c2ln",
        f"{b64({'alg': 'RS256'})}.{b64(b'not json')}.c2ln",
        f"{b64({'alg': 'RS256'})}.{b64(['iss'])}.c2ln",
    ],
)
async def test_garbage_is_malformed(issuer: TestIssuer, token: str) -> None:
    async with verifier(issuer.config()) as v:
        assert await rejected(v, token) == "token is malformed"


@pytest.mark.anyio
async def test_oversized_token_is_rejected_before_parsing(issuer: TestIssuer) -> None:
    big = issuer.mint(**GOOD, padding="x" * 20_000)
    async with verifier(issuer.config()) as v:
        assert await rejected(v, big) == "token is too large"
        assert await rejected(v, "a" * 100_000) == "token is too large"


# -- the verified-signature memo ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_remembered_signature_still_expires_and_still_checks_the_audience(issuer: TestIssuer) -> None:
    clock = Clock()
    async with verifier(issuer.config(), clock=clock) as v:
        token = issuer.mint(sub="alice", client_id="cursor", aud=AUD, lifetime=60)
        first = await v.verify(token, AUD)
        assert await v.verify(token, AUD) == first  # the second verification reuses the signature check
        assert "resource" in await rejected(v, token, "https://elsewhere.example/mcp/default")
        clock.offset = 3600
        assert "expired" in await rejected(v, token)


@pytest.mark.anyio
async def test_a_remembered_signature_is_forgotten_when_its_key_is_withdrawn(fresh: TestIssuer) -> None:
    async with verifier(fresh.config(), jwks_refresh_cooldown=0.0) as v:
        old = fresh.mint(sub="alice", client_id="cursor", aud=AUD)
        await v.verify(old, AUD)
        fresh.rotate(keep_old=False)  # the old key is withdrawn (say, compromised)
        await v.verify(fresh.mint(sub="bob", client_id="cursor", aud=AUD), AUD)  # a new kid: keys refetched
        assert "signature" in await rejected(v, old)


@pytest.mark.anyio
async def test_a_remembered_signature_is_forgotten_when_the_issuer_is_no_longer_trusted(issuer: TestIssuer) -> None:
    async with verifier(issuer.config()) as v:
        token = issuer.mint(sub="alice", client_id="cursor", aud=AUD)
        await v.verify(token, AUD)
        v.set_issuers([])
        assert "not trusted" in await rejected(v, token)
