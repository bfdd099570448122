"""Connections and authorization flows in the SQLite store (see ``executor.connections``).

Mixed into ``SQLiteStore``. Portable SQL; one transaction per write. These writes do not bump
the catalogue generation: a refresh or a new connection changes no catalogue fact.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import msgspec
from sqlite_utils import Database

from executor.connections import ConnectionKey, ConnectionRow, FlowRow

_CONN_COLUMNS = "agent, issuer, subject, provider, sealed, scopes, expires_at, created_at, refreshed_at, version"
_FLOW_COLUMNS = ("id, agent, issuer, subject, provider, scopes, status, created_at, expires_at, login_state, "
                 "provider_state, sealed_verifier")
_KEY = "agent = ? AND issuer = ? AND subject = ? AND provider = ?"


def _key(k: ConnectionKey) -> list[str]:
    return [k.agent, k.issuer, k.subject, k.provider]


def _conn(row: tuple[Any, ...]) -> ConnectionRow:
    return ConnectionRow(key=ConnectionKey(*row[:4]), sealed=row[4], scopes=msgspec.json.decode(row[5]),
                         expires_at=row[6], created_at=row[7], refreshed_at=row[8], version=row[9])


def _flow(row: tuple[Any, ...]) -> FlowRow:
    return FlowRow(id=row[0], key=ConnectionKey(*row[1:5]), scopes=msgspec.json.decode(row[5]), status=row[6],
                   created_at=row[7], expires_at=row[8], login_state=row[9], provider_state=row[10],
                   sealed_verifier=row[11])


class SQLiteConnectionStore:
    def _reading(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    def _writing(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    def get_connection(self, key: ConnectionKey) -> ConnectionRow | None:
        with self._reading() as db:
            row = db.execute(f"SELECT {_CONN_COLUMNS} FROM connections WHERE {_KEY}", _key(key)).fetchone()
            return None if row is None else _conn(row)

    def put_connection(self, row: ConnectionRow) -> None:
        with self._writing() as db:
            db.execute(f"DELETE FROM connections WHERE {_KEY}", _key(row.key))
            db.execute(f"INSERT INTO connections ({_CONN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [*_key(row.key), row.sealed, msgspec.json.encode(row.scopes).decode(), row.expires_at,
                        row.created_at, row.refreshed_at, row.version])

    def replace_connection(self, row: ConnectionRow, expected_version: int) -> bool:
        with self._writing() as db:
            cursor = db.execute(
                f"UPDATE connections SET sealed = ?, scopes = ?, expires_at = ?, refreshed_at = ?, version = ? "
                f"WHERE {_KEY} AND version = ?",
                [row.sealed, msgspec.json.encode(row.scopes).decode(), row.expires_at, row.refreshed_at,
                 row.version, *_key(row.key), expected_version])
            return bool(cursor.rowcount == 1)

    def delete_connection(self, key: ConnectionKey) -> bool:
        with self._writing() as db:
            return bool(db.execute(f"DELETE FROM connections WHERE {_KEY}", _key(key)).rowcount)

    def list_connections(self, *, agent: str | None = None, user: tuple[str, str] | None = None,
                         provider: str | None = None) -> list[ConnectionRow]:
        where, args = ["1 = 1"], []
        if agent is not None:
            where.append("agent = ?")
            args.append(agent)
        if user is not None:
            where.append("issuer = ? AND subject = ?")
            args += list(user)
        if provider is not None:
            where.append("provider = ?")
            args.append(provider)
        sql = f"SELECT {_CONN_COLUMNS} FROM connections WHERE {' AND '.join(where)} ORDER BY agent, subject, provider"
        with self._reading() as db:
            return [_conn(r) for r in db.execute(sql, args).fetchall()]

    def pending_flow(self, key: ConnectionKey, now: float) -> FlowRow | None:
        with self._reading() as db:
            row = db.execute(f"SELECT {_FLOW_COLUMNS} FROM connect_flows WHERE {_KEY} AND status != 'completed' "
                             "AND expires_at > ? ORDER BY created_at DESC", [*_key(key), now]).fetchone()
            return None if row is None else _flow(row)

    def put_flow(self, row: FlowRow) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM connect_flows WHERE id = ?", [row.id])
            db.execute(f"INSERT INTO connect_flows ({_FLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [row.id, *_key(row.key), msgspec.json.encode(row.scopes).decode(), row.status,
                        row.created_at, row.expires_at, row.login_state, row.provider_state, row.sealed_verifier])

    def get_flow(self, flow_id: str) -> FlowRow | None:
        with self._reading() as db:
            row = db.execute(f"SELECT {_FLOW_COLUMNS} FROM connect_flows WHERE id = ?", [flow_id]).fetchone()
            return None if row is None else _flow(row)

    def flow_by_state(self, column: Literal["login_state", "provider_state"], state_hash: str) -> FlowRow | None:
        sql = {"login_state": f"SELECT {_FLOW_COLUMNS} FROM connect_flows WHERE login_state = ?",
               "provider_state": f"SELECT {_FLOW_COLUMNS} FROM connect_flows WHERE provider_state = ?"}[column]
        with self._reading() as db:
            row = db.execute(sql, [state_hash]).fetchone()
            return None if row is None else _flow(row)

    def delete_flows(self, key: ConnectionKey) -> None:
        with self._writing() as db:
            db.execute(f"DELETE FROM connect_flows WHERE {_KEY}", _key(key))
