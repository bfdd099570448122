"""``Executor.call``: the one choke point through which every tool is invoked.

Direct agent calls and (later) every skill step enter here. The path of one call:

    decision  = snapshot.decide(principal, gateway, tool)   agent ∩ user ∩ scopes ∩ blessed ∩ ¬deny
    (audit intent, fail closed)                             -- audit issue
    credential = vault.credential(agent, user, provider)    none, revoked, refresh refused -> authorization request
    result    = upstream.call_tool(server, tool, args, credential)   a 401 upstream -> authorization request
    (audit outcome)                                         -- audit issue

No other module may call ``UpstreamPool.call_tool``; ``tests/test_choke_point.py``
fails if one does.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import mcp.types as types

from executor.connections import ConnectionKey
from executor.errors import AccessDeniedError, ToolUnavailableError, UpstreamError, UpstreamUnauthorizedError
from executor.policy import DENIED_BY_RULE, SCOPE_MISSING, USER_NOT_GRANTED, Decision
from executor.principal import Principal
from executor.provider_client import ProviderError
from executor.upstream import Credential, UpstreamPool
from executor.vault import Vault

log = logging.getLogger(__name__)


class _Snapshot(Protocol):
    # Structural view of registry.catalog.Snapshot, so executor does not import registry.
    servers: Any
    tools: Any

    def decide(self, principal: Principal, gateway: str, tool: str) -> Any: ...


class _Catalog(Protocol):
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


class Executor:
    def __init__(self, catalog: _Catalog, upstreams: UpstreamPool, vault: Vault | None = None) -> None:
        self._catalog = catalog
        self._upstreams = upstreams
        self._vault = vault

    async def call(
        self, principal: Principal, gateway: str, tool: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        """Decide, then invoke. Denials raise ``ToolUnavailableError`` or ``AccessDeniedError``;
        upstream failures come back as an error result the model can read (the call was allowed;
        the upstream failed)."""
        snapshot = self._catalog.current()
        decision = snapshot.decide(principal, gateway, tool)
        if not decision.allowed:
            log.info("deny %s agent=%s user=%s tool=%s", decision.reason, principal.agent, principal.user, tool)
            raise denial(tool, decision)
        entry = snapshot.tools[tool]
        spec = snapshot.servers[entry.server]
        key: ConnectionKey | None = None
        scopes: list[str] = []
        try:
            credential = None
            if spec.provider is not None:
                # Raises AuthorizationRequired when there is no usable connection: nothing is called.
                key, scopes, credential = await self._credential(principal, spec, entry.upstream_name)
            return await self._upstreams.call_tool(spec, entry.upstream_name, arguments, credential)
        except UpstreamUnauthorizedError:
            if self._vault is None or key is None:
                raise
            # The provider no longer honours the token (revoked at its end): ask the user again.
            self._vault.forget(key)
            raise await self._vault.authorization_request(key, scopes) from None
        except (UpstreamError, ProviderError) as exc:
            log.warning("upstream failure on %s: %s", tool, exc.code)
            return types.CallToolResult(content=[types.TextContent(type="text", text=exc.message)], is_error=True)

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
