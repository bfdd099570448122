"""RFC 7662 Token Introspection at ``/idp/introspect``, and the token lookup it shares with revocation.

Only confidential clients may introspect (RFC 7662 §2.1: the endpoint "MUST" require some
form of authorization; here, client authentication with a secret). They may introspect any
token this issuer issued: they are the config's own resource servers and batch agents.

§2.2: a token that is expired, revoked, unknown or not ours is ``{"active": false}`` and
nothing more. A used (rotated) refresh token is inactive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from executor.idp.grants import SECRET_AUTH
from executor.idp.tokens import REFRESH_TOKEN_PREFIX, token_hash


@dataclass(frozen=True, slots=True)
class FoundToken:
    """A token of this issuer, as revocation and introspection see it."""

    kind: Literal["access_token", "refresh_token"]
    client_id: str
    subject: str
    username: str | None
    scope: str
    resource: str
    issued_at: int
    expires_at: int
    revoked: bool
    jti: str | None = None
    family: str | None = None
    now: int = 0

    def check_client(self, client: Any) -> bool:
        return bool(self.client_id == client.get_client_id())

    def is_expired(self) -> bool:
        return self.expires_at <= self.now

    def is_revoked(self) -> bool:
        return self.revoked


def find_token(server: Any, value: str) -> FoundToken | None:
    """Look ``value`` up as an access token (a JWT we signed) or a refresh token (by its hash);
    None when it is neither. The type hint of RFC 7009/7662 is not needed: the forms differ."""
    now: int = server.now()
    if value.startswith(REFRESH_TOKEN_PREFIX):
        refresh = server.store.get_refresh_token(token_hash(value))
        if refresh is None:
            return None
        return FoundToken(kind="refresh_token", client_id=refresh.client_id, subject=refresh.username,
                          username=refresh.username, scope=refresh.scope, resource=refresh.resource,
                          issued_at=refresh.issued_at, expires_at=refresh.expires_at,
                          revoked=refresh.revoked_at is not None or refresh.used_at is not None,
                          family=refresh.family, now=now)
    claims = server.minter.read(value)
    jti = claims.get("jti") if claims else None
    access = server.store.get_access_token(jti) if isinstance(jti, str) else None
    if access is None:
        return None
    return FoundToken(kind="access_token", client_id=access.client_id, subject=access.subject,
                      username=access.subject if access.family is not None else None, scope=access.scope,
                      resource=access.resource, issued_at=access.issued_at, expires_at=access.expires_at,
                      revoked=server.store.is_token_revoked(access.jti), jti=access.jti, family=access.family,
                      now=now)


class TokenIntrospection(IntrospectionEndpoint):  # type: ignore[misc]  # authlib is untyped
    CLIENT_AUTH_METHODS = SECRET_AUTH

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return find_token(self.server, token_string)

    def check_permission(self, token: FoundToken, client: Any, request: Any) -> bool:
        return True  # any authenticated (hence confidential) client, see the module docstring

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.subject,
            "aud": token.resource,
            "iss": self.server.issuer,
            "exp": token.expires_at,
            "iat": token.issued_at,
        }
        if token.username is not None:
            payload["username"] = token.username
        if token.kind == "access_token":
            payload.update(token_type="Bearer", jti=token.jti)
        return payload
