"""Skill runs, persisted: a run, its steps, their state and outputs.

A run can pause at a step that needs an authorization request and resume there later,
without repeating the steps it already completed (no side effect happens twice).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

RunStatus = Literal["running", "paused", "succeeded", "failed", "refused"]
StepStatus = Literal["succeeded", "failed", "skipped"]


class StepRecord(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    index: int
    step_id: str
    tool: str
    status: StepStatus
    attempts: int = 1
    output: Any = None
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    skill: str
    version: str
    digest: str
    gateway: str
    agent: str
    issuer: str
    subject: str
    inputs_digest: str
    inputs: Any
    status: RunStatus
    next_step: int = 0
    """Index of the step to run next: where a paused run resumes."""
    outputs: Any = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


class RunStore(Protocol):
    def put_run(self, run: RunRecord) -> None: ...
    def get_run(self, run_id: str) -> RunRecord | None: ...
    def paused_run(self, *, skill: str, version: str, gateway: str, agent: str, issuer: str, subject: str,
                   inputs_digest: str) -> RunRecord | None:
        """The paused run this same call would resume (same principal, skill version and inputs)."""
        ...
    def list_runs(self, *, limit: int = 50) -> list[RunRecord]: ...
    def put_step(self, step: StepRecord) -> None: ...
    def finish_step(self, step: StepRecord, run: RunRecord) -> None:
        """Record a finished step and the run's progress in one transaction."""
        ...
    def run_steps(self, run_id: str) -> list[StepRecord]: ...
