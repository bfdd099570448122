"""Skill runs and their steps in the SQLite store (see ``executor.runs``). Mixed into ``SQLiteStore``.

Portable SQL, one transaction per write; no generation bump (runs are not catalogue facts).
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from sqlite_utils import Database

from executor.runs import RunRecord, StepRecord

_RUN_COLUMNS = ("id, skill, version, digest, gateway, agent, issuer, subject, inputs_digest, inputs, status, "
                "next_step, outputs, error, created_at, updated_at")
_STEP_COLUMNS = "run_id, step_index, step_id, tool, status, attempts, output, error, started_at, finished_at"
_json = msgspec.json.Encoder()


def _run(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[9] = msgspec.json.decode(values[9])
    values[12] = None if values[12] is None else msgspec.json.decode(values[12])
    return RunRecord(**dict(zip([c.strip() for c in _RUN_COLUMNS.split(",")], values, strict=True)))


def _step(row: tuple[Any, ...]) -> StepRecord:
    return StepRecord(run_id=row[0], index=row[1], step_id=row[2], tool=row[3], status=row[4], attempts=row[5],
                      output=None if row[6] is None else msgspec.json.decode(row[6]), error=row[7],
                      started_at=row[8], finished_at=row[9])


class SQLiteRunStore:
    def _reading(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    def _writing(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    def put_run(self, run: RunRecord) -> None:
        with self._writing() as db:
            self._put_run(db, run)

    def finish_step(self, step: StepRecord, run: RunRecord) -> None:
        with self._writing() as db:
            self._put_step(db, step)
            self._put_run(db, run)

    @staticmethod
    def _put_run(db: Database, run: RunRecord) -> None:
        db.execute("DELETE FROM runs WHERE id = ?", [run.id])
        db.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 16)})", [
            run.id, run.skill, run.version, run.digest, run.gateway, run.agent, run.issuer, run.subject,
            run.inputs_digest, _json.encode(run.inputs).decode(), run.status, run.next_step,
            None if run.outputs is None else _json.encode(run.outputs).decode(), run.error, run.created_at,
            run.updated_at])

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._reading() as db:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id]).fetchone()
            return None if row is None else _run(row)

    def paused_run(self, *, skill: str, version: str, gateway: str, agent: str, issuer: str, subject: str,
                   inputs_digest: str) -> RunRecord | None:
        with self._reading() as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE skill = ? AND version = ? AND gateway = ? AND agent = ? "
                "AND issuer = ? AND subject = ? AND inputs_digest = ? AND status = 'paused' "
                "ORDER BY updated_at DESC", [skill, version, gateway, agent, issuer, subject, inputs_digest],
            ).fetchone()
            return None if row is None else _run(row)

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        with self._reading() as db:
            rows = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created_at DESC LIMIT ?", [limit]).fetchall()
            return [_run(r) for r in rows]

    def put_step(self, step: StepRecord) -> None:
        with self._writing() as db:
            self._put_step(db, step)

    @staticmethod
    def _put_step(db: Database, step: StepRecord) -> None:
        db.execute("DELETE FROM run_steps WHERE run_id = ? AND step_index = ?", [step.run_id, step.index])
        db.execute(f"INSERT INTO run_steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            step.run_id, step.index, step.step_id, step.tool, step.status, step.attempts,
            None if step.output is None else _json.encode(step.output).decode(), step.error, step.started_at,
            step.finished_at])

    def run_steps(self, run_id: str) -> list[StepRecord]:
        with self._reading() as db:
            rows = db.execute(f"SELECT {_STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY step_index",
                              [run_id]).fetchall()
            return [_step(r) for r in rows]
