"""Who is calling: the verified (agent, user) pair.

A principal is built only by ``identity.verify`` from a verified token, never
from tool arguments (confused-deputy defence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class User:
    issuer: str
    subject: str

    def __str__(self) -> str:
        return f"{self.issuer}#{self.subject}"


@dataclass(frozen=True, slots=True)
class Principal:
    agent: str
    """The agent acting: the outermost `act.sub` of a delegated token, else `client_id` / `azp` (by preset)."""
    user: User
    scopes: frozenset[str]
    permissions: frozenset[str] = frozenset()
    """The user's identity-provider permissions, normalised by the issuer's preset: `role:X`,
    `group:X`, `permission:X` (see executor/claims.py)."""
    claims: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    token_id: str | None = None
    """The token's ``jti`` where present; used for audit fingerprints, never the token itself."""
