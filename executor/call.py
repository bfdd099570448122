"""``Executor.call``: the one choke point through which every tool is invoked.

Direct agent calls (both lean and SDK paths) and every skill step enter here. The path of one call:

    decision  = snapshot.decide(principal, gateway, tool)   agent ∩ user ∩ scopes ∩ blessed ∩ ¬deny
    audit.call_decided(...)                                 decision (+ intent when allowed), one transaction;
                                                            cannot be written -> the call is not made
    credential = vault.credential(agent, user, provider)    none, revoked, refresh refused -> authorization request
    result    = upstream.call_tool(server, tool, args, credential)   a 401 upstream -> authorization request
    audit.call_finished(...)                                outcome and latency, however the call ended

No other module may call ``UpstreamPool.call_tool``; ``tests/test_choke_point.py``
fails if one does.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import anyio
import mcp.types as types

from executor.audit import AuditUnavailableError, Outcome
from executor.audit_recorder import CallAudit, PendingCall, StepContext
from executor.connections import ConnectionKey
from executor.errors import (
    AccessDeniedError,
    ToolUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnauthorizedError,
)
from executor.policy import DENIED_BY_RULE, SCOPE_MISSING, USER_NOT_GRANTED, Decision
from executor.principal import Principal
from executor.provider_client import ProviderError
from executor.upstream import Credential, UpstreamPool
from executor.vault import AuthorizationRequired, Vault

log = logging.getLogger(__name__)

UPSTREAM_IDENTITY = "io.modelcontextprotocol/serverInfo"


class _Catalog(Protocol):
    # Structural view of registry.catalog.Catalog, so executor does not import registry.
    def current(self) -> Any: ...


def denial(tool: str, decision: Decision) -> ToolUnavailableError | AccessDeniedError:
    """The error for a denied call: which side lacked what, without naming any other tool."""
    if decision.hides_existence:
        return not_available(tool)
    if decision.reason == USER_NOT_GRANTED:
        message = (f"your user is not allowed to use `{tool}` (user_not_granted); "
                   "ask an admin to grant it through your identity provider")
    elif decision.reason == DENIED_BY_RULE:
        message = f"`{tool}` is denied by policy (denied_by_rule, {decision.rule})"
    elif decision.reason == SCOPE_MISSING:
        scopes = " ".join(decision.missing_scopes)
        message = f"`{tool}` needs the token scope `{scopes}` (scope_missing); authorize again with it and retry"
    else:
        message = f"`{tool}` is not allowed ({decision.reason})"
    return AccessDeniedError(message, reason=decision.reason, side=decision.side,
                             missing_scopes=decision.missing_scopes)


def not_available(tool: str) -> ToolUnavailableError:
    # One message for "no such tool", "not granted to you" and "quarantined", so a caller
    # cannot probe what exists beyond its own grants.
    return ToolUnavailableError(
        f"tool `{tool}` is not available on this gateway; list the gateway's tools to see what you may call"
    )


def not_audited(tool: str) -> types.CallToolResult:
    """What the agent gets when the intent could not be written: a tool error, and nothing called."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=(
        f"`{tool}` was not called: the action could not be audited (audit_unavailable), so it was not taken; "
        "try again later, or ask an admin to check the audit database"))], is_error=True)


class Executor:
    def __init__(self, catalog: _Catalog, upstreams: UpstreamPool, vault: Vault | None = None, *,
                 audit: CallAudit) -> None:
        self._catalog = catalog
        self._upstreams = upstreams
        self._vault = vault
        self._audit = audit

    async def call(
        self, principal: Principal, gateway: str, tool: str, arguments: dict[str, Any], *,
        step: StepContext | None = None,
    ) -> types.CallToolResult:
        """Decide, audit, then invoke. Denials raise ``ToolUnavailableError`` or ``AccessDeniedError``;
        upstream failures come back as an error result the model can read (the call was allowed;
        the upstream failed), and so does a call whose intent could not be audited (nothing is
        called then). ``step`` names the skill run a skill step belongs to, for the audit."""
        snapshot = self._catalog.current()
        decision = snapshot.decide(principal, gateway, tool)
        entry: Any = snapshot.tools.get(tool)
        try:
            pending = self._audit.call_decided(principal, gateway, tool, arguments, decision, step=step,
                                               tool_version=getattr(entry, "pinned_hash", None))
        except AuditUnavailableError as exc:
            log.error("audit unavailable, refusing %s: %s", tool, exc.message)
            if not decision.allowed:
                raise denial(tool, decision) from None
            return not_audited(tool)
        if not decision.allowed:
            log.info("deny %s agent=%s user=%s tool=%s", decision.reason, principal.agent, principal.user, tool)
            raise denial(tool, decision)
        started = time.perf_counter()
        try:
            result = await self._invoke(principal, snapshot.servers[entry.server], entry.upstream_name, arguments)
        except AuthorizationRequired as exc:
            self._finished(pending, started, "authorization_required", exc.code, authorization=exc)
            raise
        except (UpstreamError, ProviderError) as exc:
            log.warning("upstream failure on %s: %s", tool, exc.code)
            self._finished(pending, started, "timeout" if isinstance(exc, UpstreamTimeoutError) else "upstream_error",
                           exc.code)
            return types.CallToolResult(content=[types.TextContent(type="text", text=exc.message)], is_error=True)
        except BaseException as exc:
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            self._finished(pending, started, "cancelled" if cancelled else "error", getattr(exc, "code", None))
            raise
        self._finished(pending, started, "tool_error" if result.is_error else "success")
        if result.meta and UPSTREAM_IDENTITY in result.meta:
            # The upstream's serverInfo stamp is not ours to relay: the agent talks to Interlock.
            result = result.model_copy(update={"meta": {k: v for k, v in result.meta.items()
                                                        if k != UPSTREAM_IDENTITY} or None})
        return result

    def refuse(self, principal: Principal, gateway: str, tool: str, arguments: dict[str, Any]) -> Decision:
        """Decide ``tool`` for a caller answered before the call path (the HTTP step-up 403) and record
        the refusal. Never invokes anything; an allowed decision (the policy changed meanwhile) is
        returned unrecorded, for the caller to take the call path after all."""
        snapshot = self._catalog.current()
        decision: Decision = snapshot.decide(principal, gateway, tool)
        if not decision.allowed:
            entry: Any = snapshot.tools.get(tool)
            self._audit.call_decided(principal, gateway, tool, arguments, decision,
                                     tool_version=getattr(entry, "pinned_hash", None))
        return decision

    def _finished(self, pending: PendingCall, started: float, outcome: Outcome, error: str | None = None, *,
                  authorization: AuthorizationRequired | None = None) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            if authorization is not None:
                self._audit.call_needs_authorization(pending, latency_ms, provider=authorization.provider,
                                                     flow=authorization.flow_id)
            else:
                self._audit.call_finished(pending, outcome, latency_ms, error=error)
        except AuditUnavailableError as exc:
            # The call has happened: its result is the agent's, and the trail shows an intent without an outcome.
            log.error("could not audit the outcome of request %s: %s", pending.event.request_id, exc.message)

    async def _invoke(self, principal: Principal, spec: Any, upstream_tool: str, arguments: dict[str, Any]
                      ) -> types.CallToolResult:
        key: ConnectionKey | None = None
        scopes: list[str] = []
        try:
            credential = None
            if spec.provider is not None:
                # Raises AuthorizationRequired when there is no usable connection: nothing is called.
                key, scopes, credential = await self._credential(principal, spec, upstream_tool)
            return await self._upstreams.call_tool(spec, upstream_tool, arguments, credential)
        except UpstreamUnauthorizedError:
            if self._vault is None or key is None:
                raise
            # The provider no longer honours the token (revoked at its end): ask the user again.
            self._vault.forget(key)
            raise await self._vault.authorization_request(key, scopes) from None

    async def _credential(self, principal: Principal, spec: Any, upstream_tool: str
                          ) -> tuple[ConnectionKey, list[str], Credential]:
        if self._vault is None or spec.provider not in self._vault.providers:
            raise UpstreamError(f"upstream `{spec.name}` needs provider `{spec.provider}`, which is not set up; "
                                "ask an admin")
        key = ConnectionKey(principal.agent, principal.user.issuer, principal.user.subject, spec.provider)
        provider = self._vault.providers[spec.provider].config
        scopes = sorted({*provider.scopes, *spec.scopes, *spec.tool_scopes.get(upstream_tool, [])})
        token = await self._vault.credential(key, scopes)
        return key, scopes, Credential(slot="\x1f".join((key.agent, key.issuer, key.subject)), token=token)
