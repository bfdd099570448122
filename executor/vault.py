"""The credential vault: third-party tokens per (agent, user, provider), sealed at rest.

``credential`` is asked on every call that needs a provider. It never caches: a revoke
deletes the row, so the very next call finds nothing and gets an authorization request.
Tokens are refreshed ahead of expiry; concurrent refreshes of one connection collapse into
one (in this process by a shared future, across processes by a compare-and-set on the row's
version). A refresh the provider refuses (``invalid_grant``: revoked or expired grant) is an
authorization request, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import msgspec

from executor.audit import AuditUnavailableError
from executor.audit_recorder import Recorder
from executor.connections import ConnectionKey, ConnectionRow, ConnectionStore, FlowRow
from executor.errors import InterlockError
from executor.principal import User
from executor.provider_client import ProviderClient, ProviderError, TokenSet
from executor.sealing import Sealer

log = logging.getLogger(__name__)

FLOW_TTL_SECONDS = 600.0


class AuthorizationRequired(InterlockError):
    """The call needs the user to (re)connect a provider at ``url``; nothing was called."""

    code = "authorization_required"

    def __init__(self, message: str, *, url: str, flow_id: str, provider: str) -> None:
        super().__init__(message)
        self.url = url
        self.flow_id = flow_id
        self.provider = provider


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Vault:
    def __init__(self, store: ConnectionStore, sealer: Sealer, providers: dict[str, ProviderClient],
                 base_url: str, *, audit: Recorder | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.audit = audit
        self.sealer = sealer
        self.providers = providers
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._refreshing: dict[ConnectionKey, asyncio.Future[TokenSet | None]] = {}
        self._flow_locks: dict[ConnectionKey, asyncio.Lock] = {}

    # -- the call path

    async def credential(self, key: ConnectionKey, scopes: list[str]) -> str:
        """The access token for ``key`` covering ``scopes``, or ``AuthorizationRequired``."""
        row = self.store.get_connection(key)
        if row is None or not set(scopes) <= set(row.scopes):
            raise await self.authorization_request(key, sorted(set(scopes) | set(row.scopes if row else [])))
        tokens = self._open(row)
        ahead = self.providers[key.provider].config.refresh_ahead_seconds
        if row.expires_at is not None and row.expires_at - ahead <= self._clock():
            refreshed = await self._refresh_once(key, row, tokens)
            if refreshed is None:
                raise await self.authorization_request(key, sorted(set(scopes) | set(row.scopes)))
            tokens = refreshed
        return tokens.access_token

    def forget(self, key: ConnectionKey) -> None:
        """The provider rejected the token (an upstream 401): the connection is gone."""
        if self.store.delete_connection(key):
            log.info("connection dropped after the provider rejected its token: %s", key.describe())
            self._changed("revoked", key, reason="upstream_rejected_token")

    # -- authorization requests

    async def authorization_request(self, key: ConnectionKey, scopes: list[str]) -> AuthorizationRequired:
        lock = self._flow_locks.setdefault(key, asyncio.Lock())
        async with lock:  # concurrent calls for one connection share one pending flow
            flow = self.store.pending_flow(key, self._clock())
            if flow is None or not set(scopes) <= set(flow.scopes):
                now = self._clock()
                flow = FlowRow(id=secrets.token_urlsafe(24), key=key, scopes=scopes, status="pending",
                               created_at=now, expires_at=now + FLOW_TTL_SECONDS)
                self.store.put_flow(flow)
        provider = key.provider
        return AuthorizationRequired(
            f"agent `{key.agent}` needs your permission to use `{provider}` on your behalf; open the link to "
            "connect, then retry", url=f"{self.base_url}/connect/{flow.id}", flow_id=flow.id, provider=provider)

    # -- writing and revoking

    def save(self, key: ConnectionKey, tokens: TokenSet, scopes: list[str]) -> None:
        now = _now_iso()
        self.store.put_connection(ConnectionRow(
            key=key, sealed=self._seal(key, tokens), scopes=sorted(set(tokens.scopes or scopes)),
            expires_at=tokens.expires_at, created_at=now, refreshed_at=now))
        self._changed("created", key, credential=tokens.access_token)

    def _changed(self, change: Literal["created", "refreshed", "revoked"], key: ConnectionKey, *,
                 credential: str | None = None, reason: str | None = None) -> None:
        """Record a connection change. It has happened already: a trail that refuses is logged."""
        if self.audit is None:
            return
        try:
            self.audit.connection_changed(change, agent=key.agent, user=User(key.issuer, key.subject),
                                          provider=key.provider, credential_id=credential, reason=reason)
        except AuditUnavailableError as exc:
            log.error("could not audit a connection change (%s): %s", change, exc.message)

    async def revoke(self, key: ConnectionKey) -> bool:
        """Delete the connection, then revoke its tokens at the provider where it offers RFC 7009.
        The delete comes first: whatever the provider says, the next call asks for authorization."""
        row = self.store.get_connection(key)
        if row is None or not self.store.delete_connection(key):
            return False
        self.store.delete_flows(key)
        self._changed("revoked", key, reason="revoked_by_admin")
        client = self.providers.get(key.provider)
        if client is not None:
            try:
                tokens = self._open(row)
                if tokens.refresh_token:
                    await client.revoke(tokens.refresh_token, "refresh_token")
                await client.revoke(tokens.access_token, "access_token")
            except (ProviderError, InterlockError) as exc:
                log.warning("connection revoked here; the provider could not be told: %s", exc.code)
        return True

    # -- internals

    def _seal(self, key: ConnectionKey, tokens: TokenSet) -> str:
        return self.sealer.seal(msgspec.json.encode(tokens), key.aad())

    def _open(self, row: ConnectionRow) -> TokenSet:
        return msgspec.json.decode(self.sealer.open(row.sealed, row.key.aad()), type=TokenSet)

    async def _refresh_once(self, key: ConnectionKey, row: ConnectionRow, tokens: TokenSet) -> TokenSet | None:
        running = self._refreshing.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[TokenSet | None] = asyncio.get_running_loop().create_future()
        self._refreshing[key] = future
        try:
            result = await self._refresh(key, row, tokens)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it; nobody else must see "never retrieved"
            raise
        finally:
            del self._refreshing[key]

    async def _refresh(self, key: ConnectionKey, row: ConnectionRow, tokens: TokenSet) -> TokenSet | None:
        if tokens.refresh_token is None:
            self.store.delete_connection(key)
            self._changed("revoked", key, reason="no_refresh_token")
            return None
        try:
            fresh = await self.providers[key.provider].refresh(tokens.refresh_token, row.scopes)
        except ProviderError as exc:
            if exc.oauth_error in ("invalid_grant", "invalid_token", "unauthorized_client"):
                current = self.store.get_connection(key)
                if current is not None and current.version != row.version:
                    return self._open(current)  # another worker rotated the refresh token first
                log.info("refresh refused by the provider (%s); asking for authorization: %s",
                         exc.oauth_error, key.describe())
                self.store.delete_connection(key)
                self._changed("revoked", key, reason=f"refresh_refused:{exc.oauth_error}")
                return None
            raise
        updated = msgspec.structs.replace(row, sealed=self._seal(key, fresh), expires_at=fresh.expires_at,
                                          refreshed_at=_now_iso(), version=row.version + 1)
        if not self.store.replace_connection(updated, row.version):
            # Another worker refreshed (or revoked) first: use what it stored.
            current = self.store.get_connection(key)
            return None if current is None else self._open(current)
        self._changed("refreshed", key, credential=fresh.access_token)
        return fresh
