"""Verify inbound bearer tokens: JWT access tokens from trusted issuers become a ``Principal``.

Interlock is an OAuth 2.1 resource server. A token is accepted only if it is a
JWT access token (RFC 9068) that

- is signed (RFC 7515) with an asymmetric algorithm the issuer's config allows,
  by a key the issuer publishes in its JWKS (RFC 7517);
- names a trusted issuer in ``iss``, matched exactly;
- carries our resource URI in ``aud`` (RFC 8707 resource indicators);
- is within its lifetime (``exp``, ``nbf``, ``iat``; RFC 7519 §4.1);
- names a user (``sub``) and a client (``client_id`` or ``azp``).

Keys come from the issuer's configured ``jwks_uri`` or, failing that, from its
metadata: RFC 8414 authorization server metadata first, then OpenID Connect
discovery. Key sets are cached per issuer and refetched, rate-limited, when a
token names a key we do not hold (key rotation).

The JWT security BCP (RFC 8725) shapes the parsing: the header is read only to
choose an algorithm from an allow-list and a key from the issuer's own set;
``alg: none``, HMAC algorithms and keys named by the token itself (``jku``,
``jwk``, ``x5u``) are never used.

The embedded issuer (``executor.idp``) is trusted through ``register_local_issuer``: its keys
are read from the store, never over HTTP, the same audience, lifetime and subject rules apply,
and each token's ``jti`` is looked up in the store's revoked set on every call (one indexed
read), so a revocation takes effect on the very next call.

Rejections raise ``AuthenticationError`` with a short description meant for an
honest client. Descriptions never contain the token, key material or the list
of keys an issuer has.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import httpx2
from joserfc import jws
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import Key, KeySet, import_key
from joserfc.jwt import JWTClaimsRegistry

from executor.claims import principal_from_claims
from executor.errors import AuthenticationError
from executor.principal import Principal
from registry.config import IssuerConfig

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 16 * 1024
VERIFIED_CACHE_SIZE = 10_000
"""Longest token we parse at all; real access tokens are a few KiB at most."""
MAX_DOCUMENT_BYTES = 1024 * 1024
"""Longest metadata or JWKS document we accept from an issuer."""

# RFC 9068 §2.1: access tokens "MUST include this media type in the typ header parameter"
# as "at+jwt". Many identity providers (Entra, Okta, Keycloak) still send "JWT", so that is
# accepted too, and a missing typ is tolerated; anything else (an ID token typed
# "id_token+jwt", a DPoP proof "dpop+jwt", a logout token ...) is refused.
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt", "application/jwt"})

FETCH_FAILED = "token issuer keys could not be fetched; try again later"


class _Registry(jws.JWSRegistry):
    """One issuer's JWS rules: only its allowed algorithms, roomier headers, no ``crit`` extensions."""

    max_header_length = 4096
    max_payload_length = MAX_TOKEN_LENGTH
    max_signature_length = 2048

    def get_alg(self, name: str) -> JWSAlgModel:
        # Unlike the base class, this does not warn on every EdDSA verify (RFC 9864 deprecates
        # the polymorphic name); the allow-list is the issuer's config.
        if self.allowed is None or name not in self.allowed or name not in self.algorithms:
            raise JoseError("algorithm not allowed")
        return self.algorithms[name]


class LocalIssuer(Protocol):
    """An issuer served by this process from the shared store (``executor.idp.EmbeddedIssuer``)."""

    issuer: str

    def verification_keys(self, *, refresh: bool = False) -> KeySet:
        """Its public keys; ``refresh`` re-reads the store (a token names a key we do not hold)."""
        ...

    def is_revoked(self, jti: str) -> bool: ...


@dataclass(slots=True)
class _IssuerState:
    config: IssuerConfig
    registry: _Registry
    lock: anyio.Lock
    keys: KeySet | None = None
    jwks_uri: str | None = None
    """Where the keys were last read from (configured or discovered)."""
    last_attempt: float | None = None
    """When keys were last fetched, successfully or not (the refresh cooldown runs from here)."""
    local: LocalIssuer | None = None
    """Set for an issuer whose keys and revocations live in our own store (the embedded issuer)."""


class _FetchError(Exception):
    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def _new_state(config: IssuerConfig) -> _IssuerState:
    # RFC 8725 §3.1: libraries "MUST enable the caller to specify a supported set of algorithms
    # and MUST NOT use any other algorithms when performing cryptographic operations".
    # "none" and HMAC are never allowed, whatever the config says: an HMAC token "signed" with
    # the issuer's public key as the secret is the classic key-confusion forgery.
    allowed = [a for a in config.algorithms if _asymmetric(a)]
    return _IssuerState(
        config=config,
        registry=_Registry(algorithms=allowed, strict_check_header=False),
        lock=anyio.Lock(),
        jwks_uri=config.jwks_uri,
    )


def _asymmetric(alg: str) -> bool:
    model = jws.JWSRegistry.algorithms.get(alg)
    return model is not None and model.key_type in ("RSA", "EC", "OKP")


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may live, in the order we try them.

    RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path
    ("any terminating "/" MUST be removed before inserting"); OIDC Discovery §4 appends it
    to the issuer. For a path issuer we also try OIDC with path insertion, as MCP clients do.
    """
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    urls = [f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{origin}/.well-known/openid-configuration{path}")
    urls.append(f"{origin}{path}/.well-known/openid-configuration")
    return urls


class TokenVerifier:
    """Turns a bearer token into a ``Principal``, or refuses it with ``AuthenticationError``."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        http: httpx2.AsyncClient | None = None,
        jwks_refresh_cooldown: float = 1.0,
        fetch_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else httpx2.AsyncClient(follow_redirects=False)
        self._cooldown = jwks_refresh_cooldown
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._issuers: dict[str, _IssuerState] = {}
        self._local: dict[str, _IssuerState] = {}
        self._verified: dict[str, tuple[_IssuerState, KeySet, dict[str, Any]]] = {}
        """token -> (issuer state, key set, claims) of a signature already checked. Only the
        signature work is remembered: it holds while the issuer's state and key set are the very
        objects it was checked with (``set_issuers`` and key refreshes replace them). Claims
        (expiry, audience) and revocation are checked on every call."""
        self.set_issuers(issuers)

    def register_local_issuer(
        self, local: LocalIssuer, *, algorithms: Sequence[str] = ("ES256",), leeway_seconds: int = 30
    ) -> None:
        """Trust ``local`` for as long as this verifier lives (``set_issuers`` leaves it in place)."""
        state = _new_state(IssuerConfig(issuer=local.issuer, algorithms=list(algorithms),
                                        leeway_seconds=leeway_seconds))
        state.local = local
        self._local[local.issuer] = state

    def set_issuers(self, issuers: Sequence[IssuerConfig]) -> None:
        """Trust exactly these issuers from now on; keys of issuers that remain stay cached."""
        states: dict[str, _IssuerState] = {}
        for config in issuers:
            state = _new_state(config)
            old = self._issuers.get(config.issuer)
            if old is not None and old.config.jwks_uri == config.jwks_uri:
                state.keys, state.jwks_uri, state.last_attempt = old.keys, old.jwks_uri, old.last_attempt
            states[config.issuer] = state
        self._issuers = states

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str, audience: str) -> Principal:
        """Verify ``token`` for the resource ``audience`` (our RFC 8707 resource URI)."""
        seen = self._verified.get(token)
        if seen is not None:
            checked_with, checked_keys, checked_claims = seen
            if self._current(checked_with) is checked_with and self._keys_of(checked_with) is checked_keys:
                return self._accept(checked_with, checked_claims, audience)
            del self._verified[token]
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token is too large")
        obj, unverified = _parse(token)
        header = obj.headers()

        # RFC 9068 §4: the resource server "MUST reject any JWT in which the value of "alg" is
        # "none"". HMAC is refused too (see _new_state).
        alg = header.get("alg")
        if not isinstance(alg, str) or not _asymmetric(alg):
            raise AuthenticationError("token signing algorithm is not accepted")
        # RFC 9068 §4: the resource server "MUST verify that the "typ" header value is "at+jwt"
        # or "application/at+jwt" and reject tokens carrying any other value" (relaxed for
        # "JWT" and a missing typ: see ACCEPTED_TYPES).
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
            raise AuthenticationError("token type is not accepted; expected an access token (`at+jwt`)")
        # RFC 7515 §4.1.11: a recipient that does not understand a "crit" extension "MUST" reject
        # the JWS. We understand none.
        if "crit" in header:
            raise AuthenticationError("token uses critical header extensions that are not supported")

        # The unverified `iss` only selects which issuer's keys to try; it is trusted after
        # the signature verified with exactly those keys.
        iss = unverified.get("iss")
        state = (self._local.get(iss) or self._issuers.get(iss)) if isinstance(iss, str) else None
        if state is None:
            raise AuthenticationError("token issuer is not trusted")
        if alg not in (state.registry.allowed or ()):
            raise AuthenticationError("token signing algorithm is not accepted")

        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("token is malformed")
        # RFC 9068 §4: "The resource server MUST validate the signature of all incoming JWT
        # access tokens ... using the algorithm specified in the JWT "alg" Header Parameter
        # ... The resource server MUST use the keys provided by the authorization server."
        if not await self._signature_verifies(state, obj, alg, kid):
            raise AuthenticationError("token signature could not be verified")

        claims = unverified  # the payload we parsed is exactly the one whose signature verified
        principal = self._accept(state, claims, audience)
        checked = self._keys_of(state)
        if checked is not None:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (state, checked, claims)
        return principal

    def _current(self, state: _IssuerState) -> _IssuerState | None:
        issuer = state.config.issuer
        return self._local.get(issuer) if state.local is not None else self._issuers.get(issuer)

    @staticmethod
    def _keys_of(state: _IssuerState) -> KeySet | None:
        return state.local.verification_keys() if state.local is not None else state.keys

    def _accept(self, state: _IssuerState, claims: dict[str, Any], audience: str) -> Principal:
        """The checks made on every call, signature aside: claims, audience, revocation."""
        self._check_claims(state.config, claims, audience)
        if state.local is not None:
            jti = claims.get("jti")
            if not isinstance(jti, str) or not jti:
                raise AuthenticationError("token is missing the `jti` claim")
            if state.local.is_revoked(jti):
                raise AuthenticationError("token has been revoked")
        return principal_from_claims(state.config.preset, state.config.issuer, claims)

    # -- signature ---------------------------------------------------------------------------

    async def _signature_verifies(
        self, state: _IssuerState, obj: jws.CompactSignature, alg: str, kid: str | None
    ) -> bool:
        if state.local is not None:
            keys = state.local.verification_keys()
            if _verify_with(keys, state.registry, obj, alg, kid):
                return True
            fresh = state.local.verification_keys(refresh=True)  # rotated by another process?
            return fresh is not keys and _verify_with(fresh, state.registry, obj, alg, kid)
        keys = state.keys if state.keys is not None else await self._refresh(state, None)
        if _verify_with(keys, state.registry, obj, alg, kid):
            return True
        # Unknown kid or no key verifies: the issuer may have rotated. Refetch (rate-limited,
        # shared by concurrent callers) and try once more.
        fresh = await self._refresh(state, keys)
        return fresh is not keys and _verify_with(fresh, state.registry, obj, alg, kid)

    async def _refresh(self, state: _IssuerState, stale: KeySet | None) -> KeySet:
        """Fetch the issuer's keys unless someone just did; return the newest set we have."""
        async with state.lock:
            if state.keys is not None and state.keys is not stale:
                return state.keys  # another caller refreshed while we waited for the lock
            now = self._clock()
            if state.last_attempt is not None and now - state.last_attempt < self._cooldown:
                if state.keys is None:
                    raise AuthenticationError(FETCH_FAILED)
                return state.keys
            state.last_attempt = now
            try:
                state.keys = await self._fetch_keys(state)
            except _FetchError as exc:
                log.warning("fetching keys of issuer %s failed: %s", state.config.issuer, exc)
                raise AuthenticationError(FETCH_FAILED) from None
            return state.keys

    async def _fetch_keys(self, state: _IssuerState) -> KeySet:
        uri = state.jwks_uri or await self._discover(state.config.issuer)
        try:
            doc = await self._get_json(uri)
        except _FetchError:
            if state.config.jwks_uri is None:
                state.jwks_uri = None  # rediscover next time; the metadata may have moved it
            raise
        state.jwks_uri = uri
        raw_keys = doc.get("keys")
        if not isinstance(raw_keys, list):
            raise _FetchError(f"{uri} is not a JWK set")
        keys: list[Key] = []
        for data in raw_keys:
            if not isinstance(data, dict):
                continue
            try:
                key = import_key(data)
            except (JoseError, ValueError, TypeError, KeyError):
                continue  # RFC 7517 §5: ignore keys we do not understand
            if key.key_type != "oct":  # a published secret is never a verification key
                keys.append(key)
        if not keys:
            raise _FetchError(f"{uri} holds no usable signing keys")
        return KeySet(keys)

    async def _discover(self, issuer: str) -> str:
        for url in metadata_urls(issuer):
            try:
                meta = await self._get_json(url)
            except _FetchError as exc:
                if exc.status is not None:
                    continue  # not served here; try the next well-known location
                raise
            # RFC 8414 §3.3: "The "issuer" value returned MUST be identical to the authorization
            # server's issuer identifier value ... If these values are not identical, the data
            # contained in the response MUST NOT be used." (OIDC Discovery §4.3 says the same.)
            if meta.get("issuer") != issuer:
                raise _FetchError(f"metadata at {url} names a different issuer")
            jwks_uri = meta.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise _FetchError(f"metadata at {url} has no jwks_uri")
            return jwks_uri
        raise _FetchError("no authorization server metadata found (RFC 8414 or OpenID Connect)")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(
                url, headers={"Accept": "application/json"}, timeout=self._fetch_timeout
            )
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            raise _FetchError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise _FetchError(f"GET {url} answered HTTP {response.status_code}", status=response.status_code)
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise _FetchError(f"GET {url} answered more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            doc = json.loads(response.content)
        except ValueError:
            raise _FetchError(f"GET {url} did not answer JSON", status=response.status_code) from None
        if not isinstance(doc, dict):
            raise _FetchError(f"GET {url} did not answer a JSON object", status=response.status_code)
        return doc

    # -- claims ------------------------------------------------------------------------------

    def _check_claims(self, config: IssuerConfig, claims: dict[str, Any], audience: str) -> None:
        registry = JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            # RFC 9068 §4: "The current time MUST be before the time represented by the "exp"
            # claim. Implementers MAY provide for some small leeway ... to account for clock skew."
            leeway=config.leeway_seconds,
            # RFC 9068 §4: the issuer identifier "MUST exactly match the value of the "iss" claim".
            iss={"essential": True, "value": config.issuer},
            # RFC 9068 §4: "The JWT access token MUST be rejected if "aud" does not contain a
            # resource indicator of the current resource server as a valid audience."
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},  # RFC 9068 §2.2: sub is REQUIRED
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise AuthenticationError("token has expired") from None
        except MissingClaimError as exc:
            names = " and ".join(f"`{name}`" for name in exc.claim.split(","))
            raise AuthenticationError(f"token is missing the {names} claim") from None
        except InvalidClaimError as exc:
            raise AuthenticationError(_invalid_claim(exc.claim, claims)) from None


_PARSER = _Registry(algorithms=[])
"""Only splits and decodes (size limits, base64url, JSON header); verifies nothing."""


def _parse(token: str) -> tuple[jws.CompactSignature, dict[str, Any]]:
    """Decode header and payload without trusting either."""
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_PARSER)
        payload = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError):  # UnicodeError is a ValueError
        raise AuthenticationError("token is malformed") from None
    if not isinstance(obj.headers(), dict) or not isinstance(payload, dict):
        raise AuthenticationError("token is malformed")
    return obj, payload


def _verify_with(
    keys: KeySet, registry: _Registry, obj: jws.CompactSignature, alg: str, kid: str | None
) -> bool:
    key_type = jws.JWSRegistry.algorithms[alg].key_type
    for key in keys:
        if key.key_type != key_type or key.get("use", "sig") != "sig" or key.get("alg", alg) != alg:
            continue
        if kid is not None and key.kid != kid:
            continue
        try:
            if jws.validate_compact(obj, key, registry=registry):
                return True
        except (JoseError, ValueError, TypeError):
            continue  # e.g. an EC key on the wrong curve for this alg
    return False


def _invalid_claim(name: str, claims: dict[str, Any]) -> str:
    if name == "aud":
        return "token was not issued for this resource"
    if name == "iss":
        return "token issuer is not trusted"
    if name in ("nbf", "iat") and isinstance(claims.get(name), int | float):
        return "token is not valid yet"
    if name == "sub" and claims.get("sub") == "":
        return "token is missing the `sub` claim"
    return f"token has an invalid `{name}` claim"


