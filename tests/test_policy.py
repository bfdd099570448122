"""The decision core: table cases and a Hypothesis model of the rule."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.policy import (
    AGENT_NOT_BOUND,
    AGENT_NOT_GRANTED,
    ALLOWED,
    TOOL_NOT_BLESSED,
    TOOL_QUARANTINED,
    UNKNOWN_GATEWAY,
    UNKNOWN_TOOL,
    Decision,
    GatewayGrants,
    ToolFacts,
    decide,
)
from executor.principal import Principal, User
from registry.catalog import _grant_regex

ALICE = User("https://idp.test", "alice")


def principal(agent: str) -> Principal:
    return Principal(agent=agent, user=ALICE, scopes=frozenset())


GW = GatewayGrants("default", {"cursor": _grant_regex(["mail.read_*", "jira.get_issue"]), "idle": _grant_regex([])})


def test_table() -> None:
    pinned = ToolFacts("mail.read_message", "pinned")
    cases = [
        (principal("cursor"), None, pinned, Decision(False, UNKNOWN_GATEWAY, "gateway")),
        (principal("cursor"), GW, None, Decision(False, UNKNOWN_TOOL, "tool")),
        (principal("claude"), GW, pinned, Decision(False, AGENT_NOT_BOUND, "agent")),
        (principal("idle"), GW, pinned, Decision(False, AGENT_NOT_GRANTED, "agent")),
        (principal("cursor"), GW, ToolFacts("mail.send_reply", "pinned"), Decision(False, AGENT_NOT_GRANTED, "agent")),
        (principal("cursor"), GW, ToolFacts("mail.read_x", "quarantined"), Decision(False, TOOL_QUARANTINED, "tool")),
        (principal("cursor"), GW, ToolFacts("mail.read_x", "pending"), Decision(False, TOOL_NOT_BLESSED, "tool")),
        (principal("cursor"), GW, pinned, Decision(True, ALLOWED)),
        (principal("cursor"), GW, ToolFacts("jira.get_issue", "pinned"), Decision(True, ALLOWED)),
        # a pattern is anchored: no prefix/suffix smuggling
        (principal("cursor"), GW, ToolFacts("jira.get_issue_and_delete", "pinned"),
         Decision(False, AGENT_NOT_GRANTED, "agent")),
        (principal("cursor"), GW, ToolFacts("evil.mail.read_x", "pinned"), Decision(False, AGENT_NOT_GRANTED, "agent")),
    ]
    for p, gw, tool, expected in cases:
        assert decide(p, gw, tool) == expected, (p.agent, tool)


# --- the reference model: the agent side as plain set operations --------------------------------

SERVERS = ["mail", "jira", "crm"]
NAMES = ["read", "read_all", "send", "delete"]
TOOLS = [f"{s}.{n}" for s in SERVERS for n in NAMES]
PATTERNS = [*TOOLS, "mail.*", "*.read", "*.read*", "jira.*", "*.*"]
STATUSES = ["pinned", "quarantined", "pending", "removed"]


def expand(pattern: str) -> set[str]:
    rx = re.compile(re.escape(pattern).replace(r"\*", ".*"))
    return {t for t in TOOLS if rx.fullmatch(t)}


agents = st.sampled_from(["a1", "a2", "a3", "ghost"])
grants = st.dictionaries(st.sampled_from(["a1", "a2", "a3"]), st.lists(st.sampled_from(PATTERNS), max_size=4))
tools = st.dictionaries(st.sampled_from(TOOLS), st.sampled_from(STATUSES))


def model_allows(agent: str, grant: dict[str, list[str]], status: dict[str, str], tool: str) -> bool:
    granted = set().union(*(expand(p) for p in grant.get(agent, [])))
    served = {t for t, s in status.items() if s == "pinned"}
    return tool in granted & served


def production(agent: str, grant: dict[str, list[str]], status: dict[str, str], tool: str) -> Decision:
    gw = GatewayGrants("g", {a: _grant_regex(p) for a, p in grant.items()})
    facts = ToolFacts(tool, status[tool]) if tool in status else None
    return decide(principal(agent), gw, facts)


@settings(max_examples=400)
@given(agents, grants, tools, st.sampled_from([*TOOLS, "unknown.tool"]))
def test_decision_agrees_with_model(agent: str, grant: dict[str, list[str]], status: dict[str, str],
                                    tool: str) -> None:
    assert production(agent, grant, status, tool).allowed == model_allows(agent, grant, status, tool)


@settings(max_examples=300)
@given(agents, grants, tools, st.sampled_from(TOOLS), st.data())
def test_removing_a_grant_never_allows_more(agent: str, grant: dict[str, list[str]], status: dict[str, str],
                                            tool: str, data: st.DataObject) -> None:
    if not grant.get(agent):
        return
    smaller = dict(grant)
    drop = data.draw(st.integers(0, len(grant[agent]) - 1))
    smaller[agent] = grant[agent][:drop] + grant[agent][drop + 1:]
    if not production(agent, grant, status, tool).allowed:
        assert not production(agent, smaller, status, tool).allowed


@given(grants, tools, st.sampled_from(TOOLS))
def test_unknown_agent_is_denied(grant: dict[str, list[str]], status: dict[str, str], tool: str) -> None:
    assert production("ghost", grant, status, tool).reason in {AGENT_NOT_BOUND, UNKNOWN_TOOL}
