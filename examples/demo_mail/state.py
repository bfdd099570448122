"""Everything the provider process remembers, and the optional state file.

All of it lives in one :class:`ProviderState` per process. Handlers mutate it synchronously
on the event loop, so no locks are needed. With a state file, every mutation that matters
across a restart (mailboxes, grants, access-token records, the signing key) is followed by
an atomic rewrite of that file; pending logins, authorization codes and counters are kept
in memory only.

Secrets are stored hashed: refresh tokens and authorization codes by SHA-256. The state
file does hold the private signing key (it is a demo).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from joserfc.jwk import RSAKey

from examples.demo_mail.mailbox import Mailbox, seed_mailboxes
from examples.demo_mail.settings import ProviderSettings


def digest(secret: str) -> str:
    """How a refresh token or authorization code is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Grant(msgspec.Struct):
    """One user's consent to one client, and the refresh-token family that carries it."""

    id: str
    user: str
    client_id: str
    scopes: list[str]
    resource: str
    created_at: float
    refresh_hash: str | None = None
    """The current refresh token (hashed); rotated on every refresh."""
    spent_refresh_hashes: list[str] = []
    """Refresh tokens already rotated away; presenting one again revokes the whole grant."""
    revoked: bool = False
    revoked_by: str | None = None


class AccessRecord(msgspec.Struct):
    """The server-side record of one access token (the JWT's ``jti``)."""

    jti: str
    grant_id: str
    user: str
    client_id: str
    scopes: list[str]
    issued_at: float
    expires_at: float
    """Starts as the JWT's ``exp``; ``/_expire_all`` moves it to the past."""
    revoked: bool = False


class PendingAuthorization(msgspec.Struct):
    """An ``/authorize`` request waiting for the user to log in and consent."""

    id: str
    csrf_token: str
    browser: str
    """The value of the browser cookie that started it; the forms only work from that browser."""
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str
    resource: str
    expires_at: float
    user: str | None = None


class IssuedCode(msgspec.Struct):
    user: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    resource: str
    code_challenge: str
    expires_at: float
    used: bool = False
    grant_id: str | None = None


class Snapshot(msgspec.Struct):
    """The state file's content."""

    signing_key: dict[str, Any]
    mailboxes: dict[str, Mailbox]
    grants: dict[str, Grant]
    access_tokens: dict[str, AccessRecord]
    version: int = 1


class ProviderState:
    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, IssuedCode] = {}
        self.stats: Counter[str] = Counter()
        self.mcp_calls: Counter[str] = Counter()
        snapshot = self._load()
        if snapshot is None:
            key = RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, private=True)
            key.ensure_kid()
            self.signing_key = key
            self.mailboxes = seed_mailboxes(list(settings.users))
            self.grants: dict[str, Grant] = {}
            self.access_tokens: dict[str, AccessRecord] = {}
            self.save()
        else:
            self.signing_key = RSAKey.import_key(snapshot.signing_key)
            self.mailboxes = snapshot.mailboxes
            for name, box in seed_mailboxes(list(settings.users)).items():
                self.mailboxes.setdefault(name, box)
            self.grants = snapshot.grants
            self.access_tokens = snapshot.access_tokens

    # -- lookups -----------------------------------------------------------------------------

    def grant_by_refresh_hash(self, refresh_hash: str) -> tuple[Grant, bool] | None:
        """The grant a refresh token belongs to, and whether that token is the current one."""
        for grant in self.grants.values():
            if grant.refresh_hash == refresh_hash:
                return grant, True
            if refresh_hash in grant.spent_refresh_hashes:
                return grant, False
        return None

    def mailbox(self, user: str) -> Mailbox:
        return self.mailboxes[user]

    # -- housekeeping ------------------------------------------------------------------------

    def forget_stale(self) -> None:
        """Drop abandoned logins, old codes, and access records long past their expiry."""
        now = time.time()
        self.pending = {k: v for k, v in self.pending.items() if v.expires_at > now}
        self.codes = {k: v for k, v in self.codes.items() if v.expires_at > now - 3600}
        self.access_tokens = {k: v for k, v in self.access_tokens.items() if v.expires_at > now - 3600}

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> Snapshot | None:
        path = self.settings.state_file
        if path is None or not path.exists() or path.stat().st_size == 0:
            return None
        return msgspec.json.decode(path.read_bytes(), type=Snapshot)

    def save(self) -> None:
        """Rewrite the state file atomically (a no-op without one)."""
        path = self.settings.state_file
        if path is None:
            return
        snapshot = Snapshot(
            signing_key=dict(self.signing_key.as_dict(private=True)),
            mailboxes=self.mailboxes,
            grants=self.grants,
            access_tokens=self.access_tokens,
        )
        tmp = Path(f"{path}.tmp-{os.getpid()}")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(snapshot)))
        tmp.replace(path)
