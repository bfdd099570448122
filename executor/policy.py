"""The decision: may this principal call this tool on this gateway?

A pure function over plain data: no store, no HTTP, no clock. The caller
fetches, the core computes. The rule reads as a table, one arm per case,
checked in order; anything not explicitly allowed is denied.

    allowed(agent, user, tool) = agent grant ∧ user grant ∧ token scopes ∧ blessed ∧ ¬deny

Every decision carries a machine-readable reason and the side that lacked
something, so audit rows and error messages reuse it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from executor.principal import Principal

Side = Literal["agent", "user", "token", "tool", "gateway", "rule"]

# Stable reasons.
ALLOWED = "allowed"
UNKNOWN_GATEWAY = "unknown_gateway"
UNKNOWN_TOOL = "unknown_tool"
AGENT_NOT_BOUND = "agent_not_bound"
AGENT_NOT_GRANTED = "agent_not_granted"
TOOL_QUARANTINED = "tool_quarantined"
TOOL_NOT_BLESSED = "tool_not_blessed"
USER_NOT_GRANTED = "user_not_granted"
DENIED_BY_RULE = "denied_by_rule"
SCOPE_MISSING = "scope_missing"

NEVER = re.compile(r"(?!)")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    side: Side | None = None
    missing_scopes: tuple[str, ...] = ()
    rule: str | None = None
    """Which rule denied, as its place in the config (`policy.rules[2]`)."""

    @property
    def hides_existence(self) -> bool:
        """Reasons the caller must not be able to tell apart from "no such tool", so an agent
        cannot probe what exists beyond its own grants."""
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
    annotations: frozenset[str] = frozenset()
    """The annotation hints that hold for this tool, with the MCP defaults applied
    (e.g. `destructiveHint` for a tool that does not say otherwise)."""


@dataclass(frozen=True, slots=True)
class GatewayGrants:
    """The agent side for one gateway: agent id -> one compiled alternation of its tool patterns."""

    name: str
    agents: Mapping[str, re.Pattern[str]]


@dataclass(frozen=True, slots=True)
class Rule:
    """Rules only take away: `deny`, or `require_scope` (a step-up the client can satisfy)."""

    where: str
    tools: re.Pattern[str]
    annotations: tuple[tuple[str, bool], ...] = ()
    agents: frozenset[str] | None = None
    gateways: frozenset[str] | None = None
    deny: bool = False
    require_scope: str | None = None

    def matches(self, principal: Principal, gateway: str, tool: ToolFacts) -> bool:
        return ((self.agents is None or principal.agent in self.agents)
                and (self.gateways is None or gateway in self.gateways)
                and all((name in tool.annotations) == want for name, want in self.annotations)
                and self.tools.fullmatch(tool.exposed_name) is not None)


@dataclass(frozen=True, slots=True)
class UserGrants:
    """The user side: identity-provider permission -> the compiled tool patterns it grants.

    Keys are `role:X` / `group:X` / `permission:X`, or `<issuer> role:X` for a grant limited
    to one issuer. Each permission keeps its own pattern (rather than one per user's permission
    set): a user holds a handful, so checking each is cheap and needs no cache."""

    by_permission: Mapping[str, re.Pattern[str]]

    def grants(self, principal: Principal, tool: str) -> bool:
        issuer = principal.user.issuer
        for perm in principal.permissions:
            for key in (perm, f"{issuer} {perm}"):
                pattern = self.by_permission.get(key)
                if pattern is not None and pattern.fullmatch(tool) is not None:
                    return True
        return False


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything besides the gateway and the tool that a decision reads."""

    users: UserGrants
    rules: tuple[Rule, ...] = ()


EMPTY_POLICY = Policy(UserGrants({}))


def decide(principal: Principal, gateway: GatewayGrants | None, tool: ToolFacts | None, policy: Policy) -> Decision:
    # 1. unknown anything is denied
    if gateway is None:
        return Decision(False, UNKNOWN_GATEWAY, "gateway")
    if tool is None:
        return Decision(False, UNKNOWN_TOOL, "tool")
    # 2. the agent side: bound to this gateway and granted this tool there
    agent_grants = gateway.agents.get(principal.agent)
    if agent_grants is None:
        return Decision(False, AGENT_NOT_BOUND, "agent")
    if agent_grants.fullmatch(tool.exposed_name) is None:
        return Decision(False, AGENT_NOT_GRANTED, "agent")
    # 3. only pinned definitions are served: a drifted or new tool waits for an admin
    if tool.status == "quarantined":
        return Decision(False, TOOL_QUARANTINED, "tool")
    if tool.status != "pinned":
        return Decision(False, TOOL_NOT_BLESSED, "tool")
    # 4. the user side: the identity provider's permissions must grant it too
    if not policy.users.grants(principal, tool.exposed_name):
        return Decision(False, USER_NOT_GRANTED, "user")
    # 5. deny beats any grant
    missing: list[str] = []
    for rule in policy.rules:
        if not rule.matches(principal, gateway.name, tool):
            continue
        if rule.deny:
            return Decision(False, DENIED_BY_RULE, "rule", rule=rule.where)
        if rule.require_scope is not None and rule.require_scope not in principal.scopes:
            missing.append(rule.require_scope)
    # 6. the token's scopes must cover what the rules demand (a step-up can fix this one)
    if missing:
        return Decision(False, SCOPE_MISSING, "token", missing_scopes=tuple(sorted(set(missing))))
    return Decision(True, ALLOWED)


def is_admin(principal: Principal, admin_permissions: frozenset[str], admin_clients: frozenset[str]) -> Decision:
    """Curating needs an admin *user* acting through an admin *client*: an agent never inherits
    admin power from its user's admin role, and an admin client is nothing without an admin user."""
    if principal.agent not in admin_clients:
        return Decision(False, AGENT_NOT_GRANTED, "agent")
    if not (principal.permissions & admin_permissions):
        return Decision(False, USER_NOT_GRANTED, "user")
    return Decision(True, ALLOWED)
