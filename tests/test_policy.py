"""The decision core: a table of cases, and Hypothesis against a tiny reference model of the rule.

The model is the rule written as set operations:

    allowed = agent_grant & user_grant & pinned - denied_by_rules,  and required scopes ⊆ token scopes
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mcp.types as types
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.policy import (
    AGENT_NOT_BOUND,
    AGENT_NOT_GRANTED,
    ALLOWED,
    DENIED_BY_RULE,
    SCOPE_MISSING,
    TOOL_NOT_BLESSED,
    TOOL_QUARANTINED,
    UNKNOWN_GATEWAY,
    UNKNOWN_TOOL,
    USER_NOT_GRANTED,
    Decision,
    GatewayGrants,
    Policy,
    ToolFacts,
    decide,
    is_admin,
)
from executor.principal import Principal, User
from registry.catalog import CatalogTool, Snapshot, _grant_regex, build_policy, effective_annotations
from registry.config import PolicyConfig, PolicyRule, UserGrant

ISSUER = "https://idp.test"


def principal(agent: str, *permissions: str, scopes: frozenset[str] = frozenset(), issuer: str = ISSUER) -> Principal:
    return Principal(agent=agent, user=User(issuer, "alice"), scopes=scopes, permissions=frozenset(permissions))


GW = GatewayGrants("default", {"cursor": _grant_regex(["mail.read_*", "billing.*"]), "idle": _grant_regex([])})
POLICY = build_policy(
    [UserGrant(role="Mail.Read", tools=["mail.read_*"]),
     UserGrant(permission="Issue_Credit", tools=["billing.issue_credit"]),
     UserGrant(group="finance", issuer="https://other.idp", tools=["billing.*"])],
    PolicyConfig(rules=[PolicyRule(annotations={"destructiveHint": True}, require_scope="actions:destructive"),
                        PolicyRule(tools=["billing.refund_all"], deny=True)]))
READ = ToolFacts("mail.read_message", "pinned", frozenset({"readOnlyHint"}))
CREDIT = ToolFacts("billing.issue_credit", "pinned", frozenset({"destructiveHint"}))


def test_decision_table() -> None:
    cases = [
        (principal("cursor", "role:Mail.Read"), None, READ, Decision(False, UNKNOWN_GATEWAY, "gateway")),
        (principal("cursor", "role:Mail.Read"), GW, None, Decision(False, UNKNOWN_TOOL, "tool")),
        (principal("claude", "role:Mail.Read"), GW, READ, Decision(False, AGENT_NOT_BOUND, "agent")),
        (principal("idle", "role:Mail.Read"), GW, READ, Decision(False, AGENT_NOT_GRANTED, "agent")),
        (principal("cursor", "role:Mail.Read"), GW, ToolFacts("mail.send_reply", "pinned"),
         Decision(False, AGENT_NOT_GRANTED, "agent")),
        (principal("cursor", "role:Mail.Read"), GW, ToolFacts("mail.read_x", "quarantined"),
         Decision(False, TOOL_QUARANTINED, "tool")),
        (principal("cursor", "role:Mail.Read"), GW, ToolFacts("mail.read_x", "pending"),
         Decision(False, TOOL_NOT_BLESSED, "tool")),
        # the agent may, the user may not
        (principal("cursor"), GW, READ, Decision(False, USER_NOT_GRANTED, "user")),
        (principal("cursor", "role:Other"), GW, READ, Decision(False, USER_NOT_GRANTED, "user")),
        (principal("cursor", "role:Mail.Read"), GW, READ, Decision(True, ALLOWED)),
        # destructive tools need the step-up scope
        (principal("cursor", "permission:Issue_Credit"), GW, CREDIT,
         Decision(False, SCOPE_MISSING, "token", missing_scopes=("actions:destructive",))),
        (principal("cursor", "permission:Issue_Credit", scopes=frozenset({"actions:destructive"})), GW, CREDIT,
         Decision(True, ALLOWED)),
        # an issuer-scoped grant counts only for that issuer's tokens
        (principal("cursor", "group:finance"), GW, CREDIT, Decision(False, USER_NOT_GRANTED, "user")),
        (principal("cursor", "group:finance", issuer="https://other.idp", scopes=frozenset({"actions:destructive"})),
         GW, CREDIT, Decision(True, ALLOWED)),
        # deny beats every grant
        (principal("cursor", "group:finance", issuer="https://other.idp"), GW,
         ToolFacts("billing.refund_all", "pinned", frozenset({"readOnlyHint"})),
         Decision(False, DENIED_BY_RULE, "rule", rule="policy.rules[1]")),
        # patterns are anchored
        (principal("cursor", "role:Mail.Read"), GW, ToolFacts("evil.mail.read_x", "pinned"),
         Decision(False, AGENT_NOT_GRANTED, "agent")),
    ]
    for p, gw, tool, expected in cases:
        assert decide(p, gw, tool, POLICY) == expected, (p, tool)


def test_annotation_defaults_follow_mcp() -> None:
    assert effective_annotations({}) == {"destructiveHint", "openWorldHint"}
    assert effective_annotations({"annotations": {"readOnlyHint": True}}) == {"readOnlyHint", "openWorldHint"}
    assert effective_annotations({"annotations": {"destructiveHint": False, "openWorldHint": False}}) == set()


def test_admin_needs_an_admin_user_through_an_admin_client() -> None:
    perms, clients = frozenset({"role:Interlock.Admin"}), frozenset({"interlock-admin"})
    assert is_admin(principal("interlock-admin", "role:Interlock.Admin"), perms, clients).allowed
    # an agent never inherits its user's admin power
    assert is_admin(principal("cursor", "role:Interlock.Admin"), perms, clients).side == "agent"
    assert is_admin(principal("interlock-admin", "role:Mail.Read"), perms, clients).side == "user"


# --- the reference model ---------------------------------------------------------------------------

SERVERS = ["mail", "jira", "crm"]
NAMES = ["read", "read_all", "send", "delete"]
TOOLS = [f"{s}.{n}" for s in SERVERS for n in NAMES]
PATTERNS = [*TOOLS, "mail.*", "*.read", "*.read*", "jira.*", "*.*"]
PERMISSIONS = ["role:A", "role:B", "group:G", "permission:P"]
AGENTS = ["a1", "a2", "a3"]
HINTS = ["readOnlyHint", "destructiveHint", "openWorldHint"]
SCOPES = ["s1", "s2"]


def expand(pattern: str) -> set[str]:
    server, _, tool = pattern.partition(".")
    rx = re.compile(("[^.]+" if server == "*" else re.escape(server)) + r"\." + re.escape(tool).replace(r"\*", ".*"))
    return {t for t in TOOLS if rx.fullmatch(t)}


@dataclass(frozen=True)
class World:
    agent_grants: dict[str, list[str]]
    user_grants: dict[str, list[str]]
    status: dict[str, str]
    hints: dict[str, frozenset[str]]
    rules: list[PolicyRule]


rules = st.builds(
    lambda tools, hints, agents, deny, scope: PolicyRule(
        tools=tools, annotations=hints, agents=agents, deny=deny, require_scope=None if deny else scope),
    st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(HINTS), st.booleans(), max_size=1),
    st.lists(st.sampled_from(AGENTS), max_size=2),
    st.booleans(),
    st.sampled_from(SCOPES),
)
worlds = st.builds(
    World,
    st.fixed_dictionaries({a: st.lists(st.sampled_from(PATTERNS), max_size=3) for a in AGENTS}),
    st.fixed_dictionaries({p: st.lists(st.sampled_from(PATTERNS), max_size=3) for p in PERMISSIONS}),
    st.fixed_dictionaries({t: st.sampled_from(["pinned", "pinned", "pinned", "quarantined", "pending"])
                           for t in TOOLS}),
    st.fixed_dictionaries({t: st.frozensets(st.sampled_from(HINTS)) for t in TOOLS}),
    st.lists(rules, max_size=3),
)
callers = st.tuples(st.sampled_from([*AGENTS, "ghost"]), st.frozensets(st.sampled_from([*PERMISSIONS, "role:Z"])),
                    st.frozensets(st.sampled_from(SCOPES)))


def rule_matches(rule: PolicyRule, agent: str, tool: str, world: World) -> bool:
    return (tool in set().union(*(expand(p) for p in rule.tools))
            and (not rule.agents or agent in rule.agents)
            and all((h in world.hints[tool]) == v for h, v in rule.annotations.items()))


def model_allowed(world: World, agent: str, perms: frozenset[str], scopes: frozenset[str]) -> set[str]:
    by_agent = set().union(*(expand(p) for p in world.agent_grants.get(agent, [])))
    by_user = set().union(*(expand(p) for perm in perms for p in world.user_grants.get(perm, [])))
    pinned = {t for t, s in world.status.items() if s == "pinned"}
    matching = {t: [r for r in world.rules if rule_matches(r, agent, t, world)] for t in TOOLS}
    denied = {t for t in TOOLS if any(r.deny for r in matching[t])}
    short = {t for t in TOOLS if {r.require_scope for r in matching[t] if r.require_scope} - scopes}
    return (by_agent & by_user & pinned) - denied - short


def snapshot(world: World) -> Snapshot:
    policy = build_policy([UserGrant(**{p.split(":")[0]: p.split(":")[1]}, tools=ts)  # type: ignore[arg-type]
                           for p, ts in world.user_grants.items() if ts], PolicyConfig(rules=world.rules))
    tools = {t: CatalogTool(ToolFacts(t, s, world.hints[t]), t.split(".")[0], t.split(".")[1],
                            types.Tool(name=t, input_schema={"type": "object"}) if s == "pinned" else None)
             for t, s in world.status.items()}
    gateways = {"g": GatewayGrants("g", {a: _grant_regex(p) for a, p in world.agent_grants.items()})}
    listing = sorted(t for t, e in tools.items() if e.exposed is not None)
    return Snapshot(1, gateways, tools, listing, {}, [], policy)


def production_allowed(snap: Snapshot, p: Principal) -> set[str]:
    return {t for t in [*TOOLS, "nope.tool"] if snap.decide(p, "g", t).allowed}


def as_principal(caller: tuple[str, frozenset[str], frozenset[str]]) -> Principal:
    agent, perms, scopes = caller
    return principal(agent, *perms, scopes=scopes)


@settings(max_examples=500, deadline=None)
@given(worlds, callers)
def test_decision_agrees_with_the_model_and_the_listing_with_the_decision(world: World, caller: tuple) -> None:
    snap, p = snapshot(world), as_principal(caller)
    allowed = production_allowed(snap, p)
    assert allowed == model_allowed(world, *caller)
    assert [e.facts.exposed_name for e in snap.allowed_tools(p, "g")] == sorted(allowed)
    assert list(snap.allowed_tools(p, "unknown-gateway")) == []


@settings(max_examples=300, deadline=None)
@given(worlds, callers, st.data())
def test_removing_any_grant_never_allows_more(world: World, caller: tuple, data: st.DataObject) -> None:
    before = production_allowed(snapshot(world), as_principal(caller))
    side = data.draw(st.sampled_from(["agent_grants", "user_grants"]))
    grants: dict[str, list[str]] = getattr(world, side)
    if not any(grants.values()):
        return
    key = data.draw(st.sampled_from(sorted(k for k, v in grants.items() if v)))
    i = data.draw(st.integers(0, len(grants[key]) - 1))
    smaller = {**grants, key: grants[key][:i] + grants[key][i + 1:]}
    after = production_allowed(snapshot(World(**{**world.__dict__, side: smaller})), as_principal(caller))
    assert after <= before


@settings(max_examples=300, deadline=None)
@given(worlds, callers)
def test_both_sides_are_needed(world: World, caller: tuple) -> None:
    _, perms, scopes = caller
    agent_only = World(**{**world.__dict__, "user_grants": {}})
    user_only = World(**{**world.__dict__, "agent_grants": {}})
    assert production_allowed(snapshot(agent_only), as_principal(caller)) == set()
    assert production_allowed(snapshot(user_only), as_principal(caller)) == set()
    assert production_allowed(snapshot(world), principal("ghost", *perms, scopes=scopes)) == set()


@settings(max_examples=300, deadline=None)
@given(worlds, callers, st.sampled_from(PATTERNS))
def test_a_matching_deny_rule_beats_every_grant(world: World, caller: tuple, pattern: str) -> None:
    denied = World(**{**world.__dict__, "rules": [*world.rules, PolicyRule(tools=[pattern], deny=True)]})
    assert production_allowed(snapshot(denied), as_principal(caller)).isdisjoint(expand(pattern))


def test_unknown_claims_and_users_are_denied() -> None:
    snap = snapshot(World({"a1": ["*.*"]}, {"role:A": ["*.*"]}, dict.fromkeys(TOOLS, "pinned"),
                          {t: frozenset() for t in TOOLS}, []))
    assert production_allowed(snap, principal("a1", "role:A")) == set(TOOLS)
    assert production_allowed(snap, principal("a1", "role:Unknown")) == set()
    assert production_allowed(snap, principal("a1")) == set()
    assert isinstance(POLICY, Policy)


@settings(max_examples=300, deadline=None)
@given(worlds, callers, st.sampled_from(PATTERNS))
def test_a_required_scope_is_needed_and_enough(world: World, caller: tuple, pattern: str) -> None:
    agent, perms, scopes = caller
    stepped = World(**{**world.__dict__, "rules": [*world.rules, PolicyRule(tools=[pattern], require_scope="s3")]})
    without = production_allowed(snapshot(stepped), principal(agent, *perms, scopes=scopes))
    assert without.isdisjoint(expand(pattern))
    with_scope = production_allowed(snapshot(stepped), principal(agent, *perms, scopes=scopes | {"s3"}))
    assert with_scope == production_allowed(snapshot(world), principal(agent, *perms, scopes=scopes | {"s3"}))
