"""The decision: may this principal call this tool on this gateway?

A pure function over plain data: no store, no HTTP, no clock. The caller
fetches, the core computes. The rule reads as a table, one arm per case,
checked in order; anything not explicitly allowed is denied.

    allowed(agent, user, tool) = agent grant ∧ user grant ∧ token scopes ∧ blessed ∧ ¬deny

This issue's gateway core decides the agent side and the blessing; the user
side, scopes and deny rules slot in as further arms (see ``decide``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from executor.principal import Principal

Side = Literal["agent", "user", "token", "tool", "gateway"]

# Stable, machine-readable reasons. Audit rows and error messages reuse them.
ALLOWED = "allowed"
UNKNOWN_GATEWAY = "unknown_gateway"
UNKNOWN_TOOL = "unknown_tool"
AGENT_NOT_BOUND = "agent_not_bound"
AGENT_NOT_GRANTED = "agent_not_granted"
TOOL_QUARANTINED = "tool_quarantined"
TOOL_NOT_BLESSED = "tool_not_blessed"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    side: Side | None = None

    @property
    def hides_existence(self) -> bool:
        """Deny reasons the caller must not be able to tell apart from "no such tool", so the
        agent cannot probe what exists beyond its own grants."""
        return self.reason in _INDISTINGUISHABLE


_INDISTINGUISHABLE = frozenset(
    {UNKNOWN_GATEWAY, UNKNOWN_TOOL, AGENT_NOT_BOUND, AGENT_NOT_GRANTED, TOOL_QUARANTINED, TOOL_NOT_BLESSED}
)


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What the decision may know about a tool. Never its description text (invariant 5)."""

    exposed_name: str
    status: str
    """`pinned` is the only servable status."""


@dataclass(frozen=True, slots=True)
class GatewayGrants:
    """The agent side for one gateway: agent id -> one compiled alternation of its tool patterns."""

    name: str
    agents: Mapping[str, re.Pattern[str]]


def decide(principal: Principal, gateway: GatewayGrants | None, tool: ToolFacts | None) -> Decision:
    # 1. unknown anything is denied
    if gateway is None:
        return Decision(False, UNKNOWN_GATEWAY, "gateway")
    if tool is None:
        return Decision(False, UNKNOWN_TOOL, "tool")
    # 2. the agent must be bound to this gateway ...
    grants = gateway.agents.get(principal.agent)
    if grants is None:
        return Decision(False, AGENT_NOT_BOUND, "agent")
    # 3. ... and granted this tool there
    if grants.fullmatch(tool.exposed_name) is None:
        return Decision(False, AGENT_NOT_GRANTED, "agent")
    # 4. only pinned definitions are served: a drifted tool waits for an admin
    if tool.status == "quarantined":
        return Decision(False, TOOL_QUARANTINED, "tool")
    if tool.status != "pinned":
        return Decision(False, TOOL_NOT_BLESSED, "tool")
    # (next: user grant from IdP claims, token scopes, deny rules)
    return Decision(True, ALLOWED)
