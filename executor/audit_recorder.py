"""The recording API: one method per thing that happened, each appending its events.

``Executor.call`` records every call through ``call_decided`` (the decision, plus the intent
when allowed, in one transaction, before the upstream is called) and ``call_finished`` (the
outcome). The authorization flow, the connection vault and the skill runner record through
``authorization_requested`` / ``authorization_completed``, ``connection_changed`` and
``skill_run_started`` / ``skill_step`` / ``skill_run_finished``; admin paths through
``admin(actor).change``.

Every method raises ``AuditUnavailableError`` when the trail refuses the write: a caller that
is about to cause an effect must not cause it then (invariant 6). Credentials are passed as
ids and kept only as fingerprints; arguments only as digests unless the gateway opts in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from msgspec.structs import replace

from executor.audit import AuditLog, Event, EventKind, Outcome, digest, fingerprint, plain, redact
from executor.policy import Decision
from executor.principal import Principal, User

_CONNECTION_KINDS: dict[str, EventKind] = {
    "created": "connection_created", "refreshed": "connection_refreshed", "revoked": "connection_revoked"}
MAX_NAME = 200
"""Longer tool names (an agent may send anything) are cut to this many characters."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_request_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ArgumentPolicy:
    """How a gateway's tool arguments are audited (its `record_arguments` and `redact_fields`)."""

    record: bool = False
    redact: frozenset[str] = frozenset()


DIGEST_ONLY = ArgumentPolicy()


@dataclass(frozen=True, slots=True)
class StepContext:
    """Which skill run a call belongs to, when a skill step enters ``Executor.call``."""

    skill: str
    skill_version: str
    run_id: str
    step: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made an admin change: an admin client and user, the CLI (OS user), or the server itself."""

    agent: str
    user: User | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.agent, principal.user)


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A decided call awaiting its outcome; the outcome event repeats its who and what."""

    event: Event


class CallAudit(Protocol):
    """What ``Executor.call`` needs of the audit."""

    def call_decided(self, principal: Principal, gateway: str, tool: str, arguments: Mapping[str, Any],
                     decision: Decision, *, tool_version: str | None = None,
                     step: StepContext | None = None) -> PendingCall: ...

    def call_finished(self, pending: PendingCall, outcome: Outcome, latency_ms: float, *,
                      error: str | None = None) -> None: ...

    def call_needs_authorization(self, pending: PendingCall, latency_ms: float, *, provider: str,
                                 flow: str) -> None: ...


class Recorder:
    def __init__(self, log: AuditLog, arguments: Callable[[str], ArgumentPolicy] | None = None, *,
                 clock: Callable[[], str] = now_iso, ids: Callable[[], str] = new_request_id) -> None:
        """``arguments(gateway)`` says how that gateway's arguments are audited (default: digest only)."""
        self.log = log
        self._arguments = arguments or (lambda _gateway: DIGEST_ONLY)
        self._clock = clock
        self._ids = ids

    # ------------------------------------------------------------------ calls (the choke point)

    def call_decided(self, principal: Principal, gateway: str, tool: str, arguments: Mapping[str, Any],
                     decision: Decision, *, tool_version: str | None = None,
                     step: StepContext | None = None) -> PendingCall:
        """Record the decision and, when it allows the call, the intent: one transaction, before
        the upstream is called. Raw arguments (when the gateway records them) go on the intent,
        or on the decision of a denied call."""
        decided = Event(
            kind="decision", time=self._clock(), request_id=self._ids(), gateway=gateway,
            **_who(principal), tool=_name(tool), tool_version=tool_version, **_step(step),
            arguments_digest=digest(arguments), decision="allow" if decision.allowed else "deny",
            reason=decision.reason, side=decision.side, rule=decision.rule,
            detail={"missing_scopes": list(decision.missing_scopes)} if decision.missing_scopes else None)
        policy = self._arguments(gateway)
        recorded = redact(arguments, policy.redact) if policy.record else None
        if decision.allowed:
            self.log.append([decided, replace(decided, kind="intent", arguments=recorded)])
        else:
            self.log.append([replace(decided, arguments=recorded)])
        return PendingCall(decided)

    def call_finished(self, pending: PendingCall, outcome: Outcome, latency_ms: float, *,
                      error: str | None = None) -> None:
        self.log.append([replace(pending.event, kind="outcome", time=self._clock(), outcome=outcome, error=error,
                                 latency_ms=round(latency_ms, 3))])

    def call_needs_authorization(self, pending: PendingCall, latency_ms: float, *, provider: str,
                                 flow: str) -> None:
        """The call stopped for a third-party authorization (nothing was called): its outcome and
        the authorization request, in one transaction."""
        outcome = replace(pending.event, kind="outcome", time=self._clock(), outcome="authorization_required",
                          error="authorization_required", provider=provider, latency_ms=round(latency_ms, 3))
        self.log.append([outcome, replace(outcome, kind="authorization_requested", outcome=None, error=None,
                                          latency_ms=None, target=fingerprint(flow))])

    # ------------------------------------------------------------------ third-party authorization

    def authorization_requested(self, principal: Principal, *, gateway: str, provider: str, flow: str,
                                scopes: Sequence[str] = (), tool: str | None = None,
                                request_id: str | None = None, step: StepContext | None = None) -> None:
        """An authorization request (URL elicitation) was issued for (agent, user, provider).
        ``flow`` identifies the flow (e.g. its `state`); only its fingerprint is kept."""
        self._append(Event(kind="authorization_requested", time=self._clock(), request_id=request_id,
                           gateway=gateway, **_who(principal), tool=tool, **_step(step), provider=provider,
                           target=fingerprint(flow), detail={"scopes": list(scopes)} if scopes else None))

    def authorization_completed(self, *, agent: str, user: User, provider: str, flow: str,
                                outcome: Literal["success", "denied", "expired", "mismatch", "failed"],
                                credential_id: str | None = None, gateway: str | None = None,
                                reason: str | None = None) -> None:
        """The flow came back. ``mismatch``: completed by another user than the one it is bound to
        (nothing is bound then). ``credential_id`` (of the new credential) is kept as a fingerprint."""
        self._append(Event(kind="authorization_completed", time=self._clock(), gateway=gateway, agent=agent,
                           user_issuer=user.issuer, user_subject=user.subject, provider=provider,
                           target=fingerprint(flow), outcome=outcome, reason=reason,
                           credential=_fingerprint(credential_id)))

    # ------------------------------------------------------------------ connections

    def connection_changed(self, change: Literal["created", "refreshed", "revoked"], *, agent: str, user: User,
                           provider: str, credential_id: str | None = None, reason: str | None = None,
                           request_id: str | None = None) -> None:
        """A third-party connection of (agent, user, provider) was created, refreshed or revoked.
        ``credential_id``: the token's id (or the token: only a fingerprint is kept)."""
        self._append(Event(kind=_CONNECTION_KINDS[change], time=self._clock(), request_id=request_id,
                           agent=agent, user_issuer=user.issuer, user_subject=user.subject, provider=provider,
                           action=change, reason=reason, credential=_fingerprint(credential_id)))

    # ------------------------------------------------------------------ skills

    def skill_run_started(self, principal: Principal, *, gateway: str, skill: str, version: str, run_id: str,
                          arguments: Mapping[str, Any]) -> None:
        policy = self._arguments(gateway)
        self._append(Event(kind="skill_run_started", time=self._clock(), gateway=gateway, **_who(principal),
                           skill=skill, skill_version=version, run_id=run_id, arguments_digest=digest(arguments),
                           arguments=redact(arguments, policy.redact) if policy.record else None))

    def skill_step(self, principal: Principal, *, gateway: str, skill: str, version: str, run_id: str, step: str,
                   status: str, tool: str | None = None, reason: str | None = None) -> None:
        """A step changed state (`started`, `paused`, `skipped`, `succeeded`, `failed`, ...). The
        step's tool call itself is recorded by ``Executor.call`` (given a ``StepContext``)."""
        self._append(Event(kind="skill_step", time=self._clock(), gateway=gateway, **_who(principal),
                           skill=skill, skill_version=version, run_id=run_id, step=step, tool=tool,
                           outcome=status, reason=reason))

    def skill_run_finished(self, principal: Principal, *, gateway: str, skill: str, version: str, run_id: str,
                           outcome: str, latency_ms: float | None = None, reason: str | None = None) -> None:
        self._append(Event(kind="skill_run_finished", time=self._clock(), gateway=gateway, **_who(principal),
                           skill=skill, skill_version=version, run_id=run_id, outcome=outcome, reason=reason,
                           latency_ms=None if latency_ms is None else round(latency_ms, 3)))

    # ------------------------------------------------------------------ admin changes

    def admin(self, actor: Actor) -> AdminAudit:
        return AdminAudit(self, actor)

    def _append(self, event: Event) -> None:
        self.log.append([event])


class AdminAudit:
    """Records admin changes made by one actor."""

    def __init__(self, recorder: Recorder, actor: Actor) -> None:
        self._recorder = recorder
        self.actor = actor

    def change(self, action: str, target: str, diff: Mapping[str, Any] | Sequence[Any], *,
               tool: str | None = None, tool_version: str | None = None, gateway: str | None = None) -> None:
        """``action``: `bless`, `quarantine`, `apply`, ...; ``diff``: plain data (no secrets)."""
        user = self.actor.user
        self._recorder._append(Event(
            kind="admin_change", time=self._recorder._clock(), agent=self.actor.agent,
            user_issuer=user.issuer if user else None, user_subject=user.subject if user else None,
            gateway=gateway, tool=tool, tool_version=tool_version, action=action, target=target,
            detail={"diff": plain(diff)}))


def _who(principal: Principal) -> dict[str, Any]:
    return {"agent": principal.agent, "user_issuer": principal.user.issuer,
            "user_subject": principal.user.subject, "credential": _fingerprint(principal.token_id)}


def _step(step: StepContext | None) -> dict[str, Any]:
    if step is None:
        return {}
    return {"skill": step.skill, "skill_version": step.skill_version, "run_id": step.run_id, "step": step.step}


def _fingerprint(credential_id: str | None) -> str | None:
    return None if credential_id is None else fingerprint(credential_id)


def _name(tool: str) -> str:
    return tool if len(tool) <= MAX_NAME else tool[: MAX_NAME - 1] + "…"
