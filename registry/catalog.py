"""The catalogue as the serving path sees it: an immutable snapshot of the store.

Built once per store generation, so no per-call work repeats what can be done
once (compiled grant patterns, exposed tool models, the sorted listing), while
a change made by ``interlock apply``, a bless or a sync on any worker is seen
on the very next request: every ``current()`` reads the store's generation
counter (one cheap SELECT) and rebuilds when it moved. Decisions are never
cached, only the facts they are computed from.
"""

from __future__ import annotations

import base64
import bisect
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import mcp.types as types

from executor.policy import (
    NEVER,
    SCOPE_MISSING,
    Decision,
    GatewayGrants,
    Policy,
    Rule,
    ToolFacts,
    UserGrants,
    decide,
    is_admin,
)
from executor.principal import Principal
from executor.skill_format import skill_is_listable
from registry.config import AdminConfig, IssuerConfig, PolicyConfig, UpstreamConfig, UserGrant, compile_pattern
from registry.skill_registry import SkillVersion, exposed_on, list_skills
from registry.store import Store

log = logging.getLogger(__name__)

# MCP ToolAnnotations defaults (untrusted hints, but pinned): a tool that says nothing is
# treated as possibly destructive and open-world.
ANNOTATION_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False,
                       "openWorldHint": True}


@dataclass(frozen=True, slots=True)
class CatalogTool:
    facts: ToolFacts
    server: str
    upstream_name: str
    exposed: types.Tool | None
    """The pinned definition under its exposed name; None unless servable (pinned)."""
    pinned_hash: str = ""
    """The pin, recorded in the audit as the tool's version."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    gateways: dict[str, GatewayGrants]
    tools: dict[str, CatalogTool]
    listing: list[str]
    """Exposed names of servable tools, sorted: the deterministic `tools/list` order."""
    servers: dict[str, UpstreamConfig]
    issuers: list[IssuerConfig]
    policy: Policy
    admin: AdminConfig = field(default_factory=AdminConfig)
    skills: dict[str, SkillVersion] = field(default_factory=dict)
    """The latest published, unyanked version of each skill."""
    skill_patterns: dict[str, list[str]] = field(default_factory=dict)
    """gateway -> the skill name patterns it exposes."""

    def skill_visible(self, principal: Principal, gateway: str, name: str) -> SkillVersion | None:
        """The skill, if this gateway exposes it and *every* step it could run is allowed for this
        principal (invariant 8: a skill is listed only when all its steps are)."""
        version = self.skills.get(name)
        if version is None or not exposed_on(self.skill_patterns.get(gateway, []), name):
            return None
        listable = skill_is_listable(version.skill, lambda tool: self.decide(principal, gateway, tool).allowed)
        return version if listable else None

    def exposed_skill(self, gateway: str, name: str) -> SkillVersion | None:
        """The skill, if this gateway exposes its name (whether the caller may run it is the runner's
        preflight, made of the same decisions)."""
        version = self.skills.get(name)
        return version if version is not None and exposed_on(self.skill_patterns.get(gateway, []), name) else None

    def only_missing_scopes(self, principal: Principal, gateway: str, name: str) -> tuple[str, ...]:
        """The scopes a step-up would add when a missing token scope is the *only* obstacle to calling
        ``name`` (a tool, or every step of a skill `skill.<name>`); empty otherwise."""
        if name.startswith("skill."):
            version = self.exposed_skill(gateway, name.removeprefix("skill."))
            tools = [step.tool for step in version.skill.steps] if version is not None else []
        else:
            tools = [name]
        decisions = [self.decide(principal, gateway, tool) for tool in tools]
        if not decisions or any(not d.allowed and d.reason != SCOPE_MISSING for d in decisions):
            return ()
        return tuple(sorted({s for d in decisions for s in d.missing_scopes}))

    def visible_skills(self, principal: Principal, gateway: str) -> list[SkillVersion]:
        return [v for name in sorted(self.skills) if (v := self.skill_visible(principal, gateway, name))]

    def is_admin(self, principal: Principal) -> Decision:
        perms = {f"role:{self.admin.role}"} if self.admin.role else set()
        perms |= {f"group:{self.admin.group}"} if self.admin.group else set()
        return is_admin(principal, frozenset(perms), frozenset(self.admin.clients))

    def resolve(self, gateway: str, tool: str) -> tuple[GatewayGrants | None, CatalogTool | None]:
        return self.gateways.get(gateway), self.tools.get(tool)

    def decide(self, principal: Principal, gateway: str, tool: str) -> Decision:
        grants, entry = self.resolve(gateway, tool)
        return decide(principal, grants, entry.facts if entry else None, self.policy)

    def allowed_tools(self, principal: Principal, gateway: str, after: str | None = None) -> Iterator[CatalogTool]:
        """Servable tools this principal may call here, in listing order, starting after ``after``.
        Uses the same ``decide`` as a call, so a listing never disagrees with a call."""
        grants = self.gateways.get(gateway)
        if grants is None:
            return
        start = 0 if after is None else bisect.bisect_right(self.listing, after)
        for name in self.listing[start:]:
            entry = self.tools[name]
            if decide(principal, grants, entry.facts, self.policy).allowed:
                yield entry


def _alternation(patterns: list[str]) -> str:
    return "|".join(f"(?:{compile_pattern(p).pattern})" for p in patterns)


def _grant_regex(patterns: list[str]) -> re.Pattern[str]:
    return re.compile(_alternation(patterns)) if patterns else NEVER


def effective_annotations(definition: dict[str, object]) -> frozenset[str]:
    given = definition.get("annotations")
    hints = {**ANNOTATION_DEFAULTS, **(given if isinstance(given, dict) else {})}
    if hints.get("readOnlyHint") is True:
        hints["destructiveHint"] = False  # MCP: destructiveHint is meaningful only when not read-only
    return frozenset(name for name, value in hints.items() if value is True)


def build_policy(user_grants: list[UserGrant], policy: PolicyConfig) -> Policy:
    by_permission: dict[str, list[str]] = {}
    for grant in user_grants:
        kind, value = next((k, v) for k, v in (("role", grant.role), ("group", grant.group),
                                                ("permission", grant.permission)) if v is not None)
        key = f"{kind}:{value}" if grant.issuer is None else f"{grant.issuer} {kind}:{value}"
        by_permission.setdefault(key, []).extend(grant.tools)
    users = UserGrants({k: re.compile(_alternation(v)) for k, v in by_permission.items() if v})
    rules = tuple(
        Rule(where=f"policy.rules[{i}]", tools=_grant_regex(r.tools), annotations=tuple(sorted(r.annotations.items())),
             agents=frozenset(r.agents) if r.agents else None, gateways=frozenset(r.gateways) if r.gateways else None,
             deny=r.deny, require_scope=r.require_scope)
        for i, r in enumerate(policy.rules))
    return Policy(users, rules)


def build_snapshot(store: Store, generation: int) -> Snapshot:
    gateways = {
        g.name: GatewayGrants(g.name, {agent: _grant_regex(p) for agent, p in g.spec.agents.items()})
        for g in store.list_gateways()
    }
    servers = {s.name: s.spec for s in store.list_servers()}
    tools: dict[str, CatalogTool] = {}
    for t in store.list_tools():
        if t.server not in servers:
            continue
        exposed = None
        if t.status == "pinned":
            try:
                exposed = types.Tool.model_validate({**t.definition, "name": t.exposed_name})
            except ValueError:
                # A definition we cannot serve is not served; the decision sees it as unblessed.
                log.warning("tool %s has a definition that does not validate; not serving it", t.exposed_name)
        status = t.status if exposed is not None or t.status != "pinned" else "invalid"
        facts = ToolFacts(t.exposed_name, status, effective_annotations(t.definition))
        tools[t.exposed_name] = CatalogTool(facts, t.server, t.name, exposed, t.pinned_hash)
    listing = sorted(n for n, t in tools.items() if t.exposed is not None)
    issuers = [i.spec for i in store.list_issuers()]
    access = store.get_access_policy()
    skills = {v.name: v for v in list_skills(store)}
    patterns = {g.name: list(g.spec.skills) for g in store.list_gateways()}
    return Snapshot(generation, gateways, tools, listing, servers, issuers,
                    build_policy(access.user_grants, access.policy), access.admin, skills, patterns)


class Catalog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        generation = self._store.generation()
        snap = self._snapshot
        if snap is None or snap.generation != generation:
            snap = self._snapshot = build_snapshot(self._store, generation)
        return snap


def encode_cursor(last_name: str) -> str:
    return base64.urlsafe_b64encode(last_name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ValueError for a cursor we did not issue."""
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()
