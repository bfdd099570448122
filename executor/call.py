"""``Executor.call``: the one choke point through which every tool is invoked.

Direct agent calls and (later) every skill step enter here. The path of one call:

    decision  = snapshot.decide(principal, gateway, tool)   agent ∩ user ∩ scopes ∩ blessed ∩ ¬deny
    (audit intent, fail closed)                             -- audit issue
    (credential = vault.get(agent, user, provider))         -- connections issue
    result    = upstream.call_tool(server, tool, args)
    (audit outcome)                                         -- audit issue

No other module may call ``UpstreamPool.call_tool``; ``tests/test_choke_point.py``
fails if one does.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import mcp.types as types

from executor.errors import ToolUnavailableError, UpstreamError
from executor.principal import Principal
from executor.upstream import UpstreamPool

log = logging.getLogger(__name__)


class _Snapshot(Protocol):
    # Structural view of registry.catalog.Snapshot, so executor does not import registry.
    servers: Any
    tools: Any

    def decide(self, principal: Principal, gateway: str, tool: str) -> Any: ...


class _Catalog(Protocol):
    def current(self) -> Any: ...


def not_available(tool: str) -> ToolUnavailableError:
    # One message for "no such tool", "not granted to you" and "quarantined", so a caller
    # cannot probe what exists beyond its own grants.
    return ToolUnavailableError(
        f"tool `{tool}` is not available on this gateway; list the gateway's tools to see what you may call"
    )


class Executor:
    def __init__(self, catalog: _Catalog, upstreams: UpstreamPool) -> None:
        self._catalog = catalog
        self._upstreams = upstreams

    async def call(
        self, principal: Principal, gateway: str, tool: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        """Decide, then invoke. Denials raise ``ToolUnavailableError``; upstream failures come back
        as an error result the model can read (the call was allowed; the upstream failed)."""
        snapshot = self._catalog.current()
        decision = snapshot.decide(principal, gateway, tool)
        if not decision.allowed:
            log.info("deny %s agent=%s user=%s tool=%s", decision.reason, principal.agent, principal.user, tool)
            raise not_available(tool)
        entry = snapshot.tools[tool]
        spec = snapshot.servers[entry.server]
        try:
            return await self._upstreams.call_tool(spec, entry.upstream_name, arguments)
        except UpstreamError as exc:
            log.warning("upstream failure on %s: %s", tool, exc.code)
            return types.CallToolResult(content=[types.TextContent(type="text", text=exc.message)], is_error=True)
