"""The grant and token lifecycle: codes, access tokens, refresh rotation, revocation, verification.

Access tokens are JWTs (RFC 9068: header ``typ: at+jwt``, RS256) with claims ``iss``, ``sub``
(the username), ``aud`` (the MCP URL), ``client_id``, ``scope``, ``iat``, ``exp`` and ``jti``.
A valid signature is not enough: every token also has a server-side record (by ``jti``) that
revocation and ``/_expire_all`` change, so both take effect on the very next request.

Refresh tokens are opaque, stored hashed, and rotate on every use. Presenting a refresh
token that was already rotated away (reuse) revokes the whole grant: that token, its
successor and every access token issued under the grant. So does presenting an
authorization code twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from examples.demo_mail.settings import CODE_TTL
from examples.demo_mail.state import (
    AccessRecord,
    Grant,
    IssuedCode,
    PendingAuthorization,
    ProviderState,
    digest,
    new_secret,
)

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class VerifiedToken:
    """What the MCP server learns from a good access token."""

    token: str
    user: str
    client_id: str
    scopes: list[str]
    expires_at: int
    audience: str
    claims: dict[str, Any]


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class Tokens:
    """Issues, refreshes, revokes and verifies tokens on one :class:`ProviderState`."""

    def __init__(self, state: ProviderState) -> None:
        self.state = state
        self.settings = state.settings

    # -- authorization codes -------------------------------------------------------------------

    def issue_code(self, pending: PendingAuthorization, scopes: list[str]) -> str:
        assert pending.user is not None
        code = new_secret()
        self.state.codes[digest(code)] = IssuedCode(
            user=pending.user, client_id=pending.client_id, redirect_uri=pending.redirect_uri,
            scopes=scopes, resource=pending.resource, code_challenge=pending.code_challenge,
            expires_at=time.time() + CODE_TTL,
        )
        self.state.stats["codes_issued"] += 1
        return code

    def redeem_code(
        self, client_id: str, code: str, redirect_uri: str | None, code_verifier: str | None, resource: str | None,
    ) -> dict[str, Any]:
        """The ``authorization_code`` grant. A code is consumed by its first redemption attempt."""
        issued = self.state.codes.get(digest(code))
        if issued is None or issued.client_id != client_id:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if issued.used:
            if issued.grant_id is not None:
                self.revoke_grant(issued.grant_id, by="code_reuse")
            self.state.stats["code_reuse_detected"] += 1
            self.state.save()
            raise OAuthError("invalid_grant", "authorization code already used; its grant is revoked")
        issued.used = True
        if issued.expires_at <= time.time():
            raise OAuthError("invalid_grant", "authorization code expired")
        if redirect_uri != issued.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if not code_verifier:
            raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
        if not _VERIFIER.match(code_verifier) or not hmac.compare_digest(s256(code_verifier), issued.code_challenge):
            self.state.stats["pkce_failures"] += 1
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        if resource is not None and resource != issued.resource:
            raise OAuthError("invalid_target", "resource does not match the authorization request")
        grant = Grant(
            id=uuid.uuid4().hex, user=issued.user, client_id=client_id, scopes=list(issued.scopes),
            resource=issued.resource, created_at=time.time(),
        )
        self.state.grants[grant.id] = grant
        issued.grant_id = grant.id
        self.state.stats["code_exchanges"] += 1
        response = self._token_response(grant, grant.scopes)
        self.state.save()
        return response

    # -- refresh -------------------------------------------------------------------------------

    def refresh(self, client_id: str, refresh_token: str, scope: str | None, resource: str | None) -> dict[str, Any]:
        """The ``refresh_token`` grant: a new access token and a new refresh token (rotation)."""
        found = self.state.grant_by_refresh_hash(digest(refresh_token))
        if found is None or found[0].client_id != client_id:
            raise OAuthError("invalid_grant", "unknown refresh token")
        grant, current = found
        if grant.revoked:
            raise OAuthError("invalid_grant", "refresh token revoked")
        if not current:
            self.revoke_grant(grant.id, by="refresh_reuse")
            self.state.stats["refresh_reuse_detected"] += 1
            self.state.save()
            raise OAuthError("invalid_grant", "refresh token already used; its grant is revoked")
        scopes = grant.scopes
        if scope is not None:
            asked = scope.split()
            if not asked or not set(asked) <= set(grant.scopes):
                raise OAuthError("invalid_scope", f"scope must be a subset of {' '.join(grant.scopes)}")
            scopes = [s for s in grant.scopes if s in asked]
        if resource is not None and resource != grant.resource:
            raise OAuthError("invalid_target", "resource does not match the grant")
        self.state.stats["refreshes"] += 1
        response = self._token_response(grant, scopes)
        self.state.save()
        return response

    def _token_response(self, grant: Grant, scopes: list[str]) -> dict[str, Any]:
        """Mint an access token for ``grant`` and rotate its refresh token."""
        access_token = self._mint_access_token(grant, scopes)
        refresh_token = new_secret()
        if grant.refresh_hash is not None:
            grant.spent_refresh_hashes.append(grant.refresh_hash)
        grant.refresh_hash = digest(refresh_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "refresh_token": refresh_token,
            "scope": " ".join(scopes),
        }

    def _mint_access_token(self, grant: Grant, scopes: list[str]) -> str:
        now = time.time()
        record = AccessRecord(
            jti=uuid.uuid4().hex, grant_id=grant.id, user=grant.user, client_id=grant.client_id,
            scopes=list(scopes), issued_at=now, expires_at=now + self.settings.access_token_ttl,
        )
        self.state.forget_stale()
        self.state.access_tokens[record.jti] = record
        self.state.stats["access_tokens_issued"] += 1
        claims = {
            "iss": self.settings.issuer, "sub": grant.user, "aud": grant.resource, "client_id": grant.client_id,
            "scope": " ".join(scopes), "iat": int(now), "exp": int(record.expires_at), "jti": record.jti,
        }
        key = self.state.signing_key
        return jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=["RS256"])

    # -- revocation ----------------------------------------------------------------------------

    def revoke_grant(self, grant_id: str, *, by: str) -> int:
        """Revoke a grant, its refresh token and every access token issued under it."""
        grant = self.state.grants.get(grant_id)
        if grant is None or grant.revoked:
            return 0
        grant.revoked = True
        grant.revoked_by = by
        for record in self.state.access_tokens.values():
            if record.grant_id == grant_id:
                record.revoked = True
        return 1

    def revoke(self, client_id: str, token: str) -> str:
        """RFC 7009: revoke an access or refresh token of ``client_id``. Returns what it was.

        An unknown, expired or already revoked token is not an error (RFC 7009 §2.2).
        """
        record = self._record_of(token)
        if record is not None:
            if record.client_id != client_id:
                raise OAuthError("unauthorized_client", "the token was not issued to this client")
            if not record.revoked:
                record.revoked = True
                self.state.stats["revocations"] += 1
                self.state.save()
            return "access_token"
        found = self.state.grant_by_refresh_hash(digest(token))
        if found is not None:
            grant, current = found
            if grant.client_id != client_id:
                raise OAuthError("unauthorized_client", "the token was not issued to this client")
            if current and self.revoke_grant(grant.id, by="client"):
                self.state.stats["revocations"] += 1
                self.state.save()
            return "refresh_token"
        return "unknown"

    def revoke_user(self, user: str) -> int:
        """The user withdraws every client's access at the provider. Returns the grants revoked."""
        n = sum(self.revoke_grant(g.id, by="user") for g in list(self.state.grants.values()) if g.user == user)
        self.state.stats["user_revocations"] += n
        self.state.save()
        return n

    def expire_all(self, user: str | None = None) -> int:
        """Make every current access token (of ``user``, or everyone's) expired now."""
        now = time.time()
        n = 0
        for record in self.state.access_tokens.values():
            if record.expires_at > now and not record.revoked and (user is None or record.user == user):
                record.expires_at = now - 1
                n += 1
        self.state.stats["forced_expiries"] += n
        self.state.save()
        return n

    # -- verification --------------------------------------------------------------------------

    def _record_of(self, token: str) -> AccessRecord | None:
        """The record of a token this server signed (whatever its validity), else ``None``."""
        try:
            decoded = jwt.decode(token, self.state.signing_key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        jti = decoded.claims.get("jti")
        return self.state.access_tokens.get(jti) if isinstance(jti, str) else None

    def verify(self, token: str) -> VerifiedToken | None:
        """A usable access token for the MCP endpoint, or ``None`` (→ 401 invalid_token)."""
        try:
            decoded = jwt.decode(token, self.state.signing_key, algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        header, claims = decoded.header, decoded.claims
        now = time.time()
        if header.get("typ") != "at+jwt" or claims.get("iss") != self.settings.issuer:
            return None
        if claims.get("aud") != self.settings.mcp_url:
            return None
        exp, jti = claims.get("exp"), claims.get("jti")
        if not isinstance(exp, int) or exp <= now or not isinstance(jti, str):
            return None
        record = self.state.access_tokens.get(jti)
        if record is None or record.revoked or record.expires_at <= now:
            return None
        grant = self.state.grants.get(record.grant_id)
        if grant is None or grant.revoked or record.user != claims.get("sub"):
            return None
        return VerifiedToken(
            token=token, user=record.user, client_id=record.client_id, scopes=list(record.scopes),
            expires_at=exp, audience=self.settings.mcp_url, claims=dict(claims),
        )
