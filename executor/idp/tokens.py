"""The embedded issuer's tokens: JWT access tokens (RFC 9068) and opaque refresh tokens.

An access token is a JWT signed with the newest key of the ``KeyRing``::

    header  {"alg": "ES256", "typ": "at+jwt", "kid": ...}
    claims  iss, sub, aud, exp, iat, jti, client_id, scope      RFC 9068 §2.2 (all REQUIRED but scope)
            auth_time                                           when a user logged in
            + the user's configured claims (roles, groups, ...), never replacing the ones above

``aud`` is the RFC 8707 ``resource`` the client asked for: one gateway's resource URI.
A refresh token is 256 random bits; the store keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from executor.idp.keys import SIGNING_ALG, KeyRing
from executor.idp.records import AccessTokenRecord, RefreshTokenRecord
from executor.idp.users import RESERVED_CLAIMS

REFRESH_TOKEN_PREFIX = "ilrt_"
"""Makes a leaked refresh token recognisable to secret scanners."""


def token_hash(value: str) -> str:
    """How codes and refresh tokens are stored: the hex SHA-256 of the value."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token is issued for."""

    client_id: str
    subject: str
    """The username; the client id for client credentials (RFC 9068 §2.2)."""
    scope: str
    resource: str
    family: str | None
    """The authorization this belongs to (refresh rotation and revocation); None for one-off tokens."""
    username: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    auth_time: int | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    response: dict[str, Any] = field(repr=False)
    """The token endpoint's JSON answer (RFC 6749 §5.1); holds the tokens, so never in a repr."""
    access: AccessTokenRecord
    refresh: RefreshTokenRecord | None


class TokenMinter:
    def __init__(
        self, issuer: str, keys: KeyRing, *, access_ttl: int, refresh_ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock = clock

    def mint(self, grant: Grant, *, refresh: bool) -> Issued:
        now = int(self.clock())
        jti = secrets.token_urlsafe(18)
        claims: dict[str, Any] = {k: v for k, v in grant.claims.items() if k not in RESERVED_CLAIMS}
        claims.update({
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": grant.resource,
            "exp": now + self.access_ttl,
            "iat": now,
            "jti": jti,
            "client_id": grant.client_id,
            "scope": grant.scope,
        })
        if grant.auth_time:
            claims["auth_time"] = grant.auth_time
        key = self.keys.signing_key()
        header = {"alg": SIGNING_ALG, "typ": "at+jwt", "kid": key.kid}
        access_token = jwt.encode(header, claims, key, algorithms=[SIGNING_ALG])
        response: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer",
                                    "expires_in": self.access_ttl, "scope": grant.scope}
        access = AccessTokenRecord(jti=jti, family=grant.family, client_id=grant.client_id, subject=grant.subject,
                                   scope=grant.scope, resource=grant.resource, issued_at=now,
                                   expires_at=now + self.access_ttl)
        refresh_record = None
        if refresh and grant.family is not None and grant.username is not None:
            refresh_token = new_secret(REFRESH_TOKEN_PREFIX)
            response["refresh_token"] = refresh_token
            refresh_record = RefreshTokenRecord(
                token_hash=token_hash(refresh_token), family=grant.family, client_id=grant.client_id,
                username=grant.username, scope=grant.scope, resource=grant.resource,
                auth_time=grant.auth_time or 0, issued_at=now, expires_at=now + self.refresh_ttl)
        return Issued(response=response, access=access, refresh=refresh_record)

    def read(self, token: str) -> dict[str, Any] | None:
        """The claims of an access token this issuer signed (any age), or None. For revocation and
        introspection; the gateway verifies tokens through ``executor.identity`` instead."""
        if token.count(".") != 2 or len(token) > 16 * 1024:
            return None
        for refresh in (False, True):
            try:
                decoded = jwt.decode(token, self.keys.verification_keys(refresh=refresh), algorithms=[SIGNING_ALG])
            except (JoseError, ValueError, TypeError):
                continue
            if decoded.header.get("typ") != "at+jwt" or decoded.claims.get("iss") != self.issuer:
                return None
            claims: dict[str, Any] = decoded.claims
            return claims
        return None
