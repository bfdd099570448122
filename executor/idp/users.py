"""The embedded issuer's users: read from the config, checked by password (see ``passwords``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from executor.idp.passwords import dummy_verify, verify_password
from registry.config import EMBEDDED_RESERVED_CLAIMS, UserConfig

RESERVED_CLAIMS = EMBEDDED_RESERVED_CLAIMS
"""Claims the issuer sets itself; a user's configured claims can never replace them."""


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user, as the token endpoint sees it (authlib calls ``get_user_id``)."""

    username: str
    claims: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    auth_time: int = 0
    """When the user logged in (the `auth_time` claim); 0 when unknown."""

    def get_user_id(self) -> str:
        return self.username


class Users:
    def __init__(self, users: Sequence[UserConfig]) -> None:
        self._users = {u.username: u for u in users}

    def get(self, username: str, *, auth_time: int = 0) -> User | None:
        config = self._users.get(username)
        if config is None:
            return None
        claims = {k: v for k, v in config.claims.items() if k not in RESERVED_CLAIMS}
        return User(username=config.username, claims=claims, auth_time=auth_time)

    def check_password(self, username: str, password: str) -> bool:
        """Slow on purpose (scrypt), and as slow for an unknown user: run it off the event loop."""
        config = self._users.get(username)
        if config is None:
            dummy_verify(password)
            return False
        return verify_password(password, config.password_hash)
