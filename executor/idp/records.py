"""What the embedded issuer keeps in the store: plain records, no I/O.

Secrets never reach the store in clear: authorization codes and refresh tokens are stored
as the SHA-256 of their value (``token_hash``); an access token is stored by its ``jti``
(not a secret), so it can be introspected and revoked.
"""

from __future__ import annotations

from typing import Literal

import msgspec

KeyUse = Literal["sig", "session"]
"""`sig`: a JWT signing key (published in the JWKS); `session`: the HMAC key of login sessions and CSRF tokens."""


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    use: KeyUse
    alg: str
    jwk: str
    """The private key as a JWK (JSON text)."""
    created_at: int


class CodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An authorization code, bound to everything the token request must match."""

    code_hash: str
    family: str
    """The token family that tokens issued from this code belong to (revoked if the code is replayed)."""
    client_id: str
    username: str
    redirect_uri: str | None
    """As given in the authorization request; None when it was omitted."""
    scope: str
    resource: str
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    expires_at: int


class AccessTokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    jti: str
    family: str | None
    """None for tokens not issued from a grant chain (client credentials, dev tokens)."""
    client_id: str
    subject: str
    scope: str
    resource: str
    issued_at: int
    expires_at: int


class RefreshTokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    token_hash: str
    family: str
    client_id: str
    username: str
    scope: str
    resource: str
    auth_time: int
    issued_at: int
    expires_at: int
    used_at: int | None = None
    """Set when it was exchanged (rotation): presenting it again revokes the family."""
    revoked_at: int | None = None


CodeOutcome = Literal["ok", "unknown", "expired", "replayed"]
RefreshOutcome = Literal["ok", "unknown", "expired", "revoked", "reused"]


class CodeUse(msgspec.Struct, frozen=True, kw_only=True):
    outcome: CodeOutcome
    code: CodeRecord | None = None
    """The code, when ``outcome`` is `ok`."""


class RefreshUse(msgspec.Struct, frozen=True, kw_only=True):
    outcome: RefreshOutcome
    token: RefreshTokenRecord | None = None
