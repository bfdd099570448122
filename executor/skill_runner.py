"""Running a skill: each step a tool call through ``Executor.call``, under the same decision.

A skill is never a way around authorization (invariant 8):

- **Preflight.** Before the first side effect, every step that has yet to run is decided for
  this principal; a run that would be denied at step 3 is refused before step 1, with the reason.
- **Every step is decided again** as it runs (``Executor.call`` decides): a grant or connection
  revoked mid-run stops the next step.
- **Pause and resume.** A step that needs an authorization request pauses the run (persisted);
  the same call retried resumes at that step, without repeating completed steps.

Limits (steps, run time, argument and output size) end a run with a clear error.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import jsonschema
import mcp.types as types
import msgspec

from executor.audit import AuditUnavailableError
from executor.audit_recorder import Recorder, StepContext
from executor.call import Executor, denial
from executor.errors import AccessDeniedError, InterlockError, ToolUnavailableError
from executor.principal import Principal
from executor.runs import RunRecord, RunStore, StepRecord
from executor.skill_format import Skill, Step
from executor.skill_templates import (
    SkillTemplateError,
    StepState,
    skill_outputs,
    step_arguments,
    step_condition,
    step_output,
)
from executor.vault import AuthorizationRequired

log = logging.getLogger(__name__)

Progress = Callable[[float, float, str], Awaitable[None]]


class RunLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_steps: int = 50
    max_run_seconds: float = 300.0
    max_argument_bytes: int = 64 * 1024
    max_output_bytes: int = 256 * 1024


class SkillPaused(InterlockError):
    """The run paused at a step that needs the user's authorization; retrying the call resumes it."""

    code = "skill_paused"

    def __init__(self, request: AuthorizationRequired, run_id: str, step: str) -> None:
        super().__init__(f"{request.message} (skill run `{run_id}` paused at step `{step}`; retry to resume)")
        self.request = request
        self.run_id = run_id
        self.step = step


class SkillRunError(InterlockError):
    code = "skill_run_failed"


class SkillInputError(InterlockError):
    code = "skill_input_invalid"


def _input_problems(skill: Skill, inputs: dict[str, Any]) -> list[str]:
    """The inputs checked against the skill's JSON Schema 2020-12 (`inputs`)."""
    validator = jsonschema.Draft202012Validator(skill.inputs, format_checker=jsonschema.FormatChecker())
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(inputs)'}: {e.message}"
            for e in validator.iter_errors(inputs)]


class _Decider(Protocol):
    def current(self) -> Any: ...


def inputs_digest(inputs: Any) -> str:
    return "sha256:" + hashlib.sha256(msgspec.json.Encoder(order="sorted").encode(inputs)).hexdigest()


def _size(value: Any) -> int:
    return len(msgspec.json.encode(value))


class SkillRunner:
    def __init__(self, executor: Executor, catalog: _Decider, runs: RunStore, *, audit: Recorder | None = None,
                 limits: RunLimits = RunLimits(), clock: Callable[[], float] = time.time) -> None:
        self._executor = executor
        self._catalog = catalog
        self._runs = runs
        self._audit = audit
        self._limits = limits
        self._clock = clock

    def _note(self, what: str, principal: Principal, gateway: str, run: RunRecord, **details: Any) -> None:
        """Record a run or step event in the audit trail (the steps' tool calls are recorded by
        ``Executor.call``). Raises ``AuditUnavailableError`` when the trail refuses."""
        if self._audit is None:
            return
        common: dict[str, Any] = {"gateway": gateway, "skill": run.skill, "version": run.version, "run_id": run.id}
        if what == "started":
            self._audit.skill_run_started(principal, **common, arguments=run.inputs)
        elif what == "finished":
            self._audit.skill_run_finished(principal, **common, **details)
        else:
            self._audit.skill_step(principal, **common, **details)

    def preflight(self, principal: Principal, gateway: str, skill: Skill, steps: list[Step]) -> None:
        """Decide every step before any runs. Raises the first denial, naming the step. A step the
        agent could not even see makes the whole skill "not available", like an unknown tool."""
        snapshot = self._catalog.current()
        decisions = [(step, snapshot.decide(principal, gateway, step.tool)) for step in steps]
        if any(d.hides_existence for _, d in decisions):
            raise ToolUnavailableError(f"tool `skill.{skill.name}` is not available on this gateway; list the "
                                       "gateway's tools to see what you may call")
        for step, decision in decisions:
            if not decision.allowed:
                error = denial(step.tool, decision)
                assert isinstance(error, AccessDeniedError)
                raise AccessDeniedError(f"skill refused before it started: step `{step.id}`: {error.message}",
                                        reason=error.reason, side=error.side, missing_scopes=error.missing_scopes)

    async def run(self, principal: Principal, gateway: str, skill: Skill, digest: str, inputs: dict[str, Any],
                  *, progress: Progress | None = None) -> types.CallToolResult:
        if len(skill.steps) > self._limits.max_steps:
            raise SkillRunError(f"skill `{skill.name}` has {len(skill.steps)} steps; the limit is "
                                f"{self._limits.max_steps}")
        problems = sorted(_input_problems(skill, inputs))
        if problems:
            raise SkillInputError(f"skill `{skill.name}` inputs are invalid: " + "; ".join(problems[:10]))
        key = inputs_digest(inputs)
        run = self._runs.paused_run(skill=skill.name, version=skill.version, gateway=gateway, agent=principal.agent,
                                    issuer=principal.user.issuer, subject=principal.user.subject, inputs_digest=key)
        states: dict[str, StepState] = {}
        now = self._clock()
        if run is None:
            run = RunRecord(id=secrets.token_hex(12), skill=skill.name, version=skill.version, digest=digest,
                            gateway=gateway, agent=principal.agent, issuer=principal.user.issuer,
                            subject=principal.user.subject, inputs_digest=key, inputs=inputs, status="running",
                            created_at=now, updated_at=now)
        else:
            for done in self._runs.run_steps(run.id):
                states[done.step_id] = StepState(output=done.output, error=done.error, status={
                    "succeeded": "ok", "failed": "error", "skipped": "skipped"}[done.status])  # type: ignore[arg-type]
            run = msgspec.structs.replace(run, status="running", updated_at=now)
        try:
            self.preflight(principal, gateway, skill, skill.steps[run.next_step:])
        except (ToolUnavailableError, AccessDeniedError) as exc:
            self._runs.put_run(msgspec.structs.replace(run, status="refused", error=exc.message,
                                                       updated_at=self._clock()))
            self._quietly("finished", principal, gateway, run, outcome="refused",
                          reason=getattr(exc, "reason", exc.code))
            raise
        self._runs.put_run(run)
        try:
            self._note("started" if run.next_step == 0 else "step", principal, gateway, run,
                       **({} if run.next_step == 0 else {"step": skill.steps[run.next_step].id, "status": "resumed"}))
        except AuditUnavailableError:
            return self._fail(principal, gateway, run,
                              "the run could not be audited (audit_unavailable), so it was not started")
        deadline = run.created_at + self._limits.max_run_seconds
        for index in range(run.next_step, len(skill.steps)):
            step = skill.steps[index]
            if self._clock() > deadline:
                return self._fail(principal, gateway, run,
                                  f"the run took longer than {self._limits.max_run_seconds:g}s; it was stopped "
                                  f"before step `{step.id}`")
            if progress is not None:
                await progress(index, len(skill.steps), f"step {step.id}: {step.tool}")
            started = self._clock()
            try:
                if not step_condition(step, run.inputs, states):
                    states[step.id] = StepState(status="skipped")
                    run = self._record(run, index, step, "skipped", 0, None, None, started)
                    self._quietly("step", principal, gateway, run, step=step.id, status="skipped", tool=step.tool)
                    continue
                arguments = step_arguments(step, run.inputs, states)
            except SkillTemplateError as exc:
                return self._fail(principal, gateway, run, f"step `{step.id}`: {exc.message}")
            if _size(arguments) > self._limits.max_argument_bytes:
                limit = self._limits.max_argument_bytes
                return self._fail(principal, gateway, run, f"step `{step.id}`: its arguments exceed {limit} bytes")
            try:
                result, attempts = await self._call(principal, gateway, skill, step, arguments,
                                                    StepContext(skill.name, skill.version, run.id, step.id))
            except AuthorizationRequired as exc:
                self._runs.put_run(msgspec.structs.replace(run, status="paused", next_step=index,
                                                           updated_at=self._clock()))
                self._quietly("step", principal, gateway, run, step=step.id, status="paused", tool=step.tool,
                              reason=exc.code)
                raise SkillPaused(exc, run.id, step.id) from None
            except (ToolUnavailableError, AccessDeniedError) as exc:
                # Decided again at the moment it ran: something changed mid-run.
                message = f"skill `{skill.name}` stopped: step `{step.id}` was not allowed when it ran: {exc.message}"
                self._fail(principal, gateway, run, message)
                if isinstance(exc, AccessDeniedError):
                    raise AccessDeniedError(message, reason=exc.reason, side=exc.side,
                                            missing_scopes=exc.missing_scopes) from None
                raise ToolUnavailableError(message) from None
            output = step_output(result)
            if _size(output) > self._limits.max_output_bytes:
                return self._fail(principal, gateway, run,
                                  f"step `{step.id}`: its output exceeds {self._limits.max_output_bytes} bytes")
            if result.is_error:
                message = str(output)[:500]
                run = self._record(run, index, step, "failed", attempts, None, message, started)
                self._quietly("step", principal, gateway, run, step=step.id, status="failed", tool=step.tool)
                if step.on_error != "continue":
                    return self._fail(principal, gateway, run, f"step `{step.id}` ({step.tool}) failed: {message}")
                states[step.id] = StepState(status="error", error=message)
            else:
                run = self._record(run, index, step, "succeeded", attempts, output, None, started)
                self._quietly("step", principal, gateway, run, step=step.id, status="succeeded", tool=step.tool)
                states[step.id] = StepState(output=output)
        try:
            outputs = skill_outputs(skill, run.inputs, states)
        except SkillTemplateError as exc:
            return self._fail(principal, gateway, run, f"outputs: {exc.message}")
        self._runs.put_run(msgspec.structs.replace(run, status="succeeded", outputs=outputs,
                                                   next_step=len(skill.steps), updated_at=self._clock()))
        self._quietly("finished", principal, gateway, run, outcome="succeeded",
                      latency_ms=(self._clock() - run.created_at) * 1000)
        if progress is not None:
            await progress(len(skill.steps), len(skill.steps), "done")
        text = msgspec.json.encode(outputs).decode()
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=outputs,
                                    _meta={"io.interlock/run": run.id})

    async def _call(self, principal: Principal, gateway: str, skill: Skill, step: Step,
                    arguments: dict[str, Any], context: StepContext) -> tuple[types.CallToolResult, int]:
        retry = skill.step_retry(step)
        attempts = retry.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            result = await self._executor.call(principal, gateway, step.tool, arguments, step=context)
            if not result.is_error or attempt == attempts:
                return result, attempt
            assert retry is not None
            await anyio.sleep(retry.backoff_ms / 1000 * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, run: RunRecord, index: int, step: Step, status: Any, attempts: int, output: Any,
                error: str | None, started: float) -> RunRecord:
        """Store the finished step and move the run past it, in one write."""
        advanced = msgspec.structs.replace(run, next_step=index + 1, updated_at=self._clock())
        self._runs.finish_step(StepRecord(run_id=run.id, index=index, step_id=step.id, tool=step.tool, status=status,
                                          attempts=attempts, output=output, error=error, started_at=started,
                                          finished_at=self._clock()), advanced)
        return advanced

    def _quietly(self, what: str, principal: Principal, gateway: str, run: RunRecord, **details: Any) -> None:
        """Run and step *outcomes* come after their effects: a trail that refuses them is logged, the
        effects (already recorded by ``Executor.call``) stand."""
        try:
            self._note(what, principal, gateway, run, **details)
        except AuditUnavailableError as exc:
            log.error("could not audit skill run %s: %s", run.id, exc.message)

    def _fail(self, principal: Principal, gateway: str, run: RunRecord, message: str) -> types.CallToolResult:
        self._runs.put_run(msgspec.structs.replace(run, status="failed", error=message, updated_at=self._clock()))
        self._quietly("finished", principal, gateway, run, outcome="failed", reason=message[:200],
                      latency_ms=(self._clock() - run.created_at) * 1000)
        log.info("skill run %s failed: %s", run.id, message)
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"skill `{run.skill}` failed: "
                                                                                  f"{message}")], is_error=True,
                                    _meta={"io.interlock/run": run.id})
