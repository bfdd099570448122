"""The embedded issuer's part of the SQLite store (see ``IssuerStore`` in ``registry.store``).

Mixed into ``SQLiteStore``; the SQL is plain and portable (no ``RETURNING``, no SQLite-only
functions), so the PostgreSQL backend can send the same statements. Every write is one
transaction. These writes do not bump the catalogue ``generation``: codes and tokens are not
what the serving snapshot is built from.

    idp_keys            (kid, use, alg, jwk, created_at)           signing keys and the session key
    idp_families        (family, client_id, username, created_at,
                         revoked_at)                               one per authorization (code)
    idp_codes           (code_hash, family, client_id, username,
                         redirect_uri, scope, resource,
                         code_challenge, code_challenge_method,
                         auth_time, expires_at, used_at)           single use
    idp_refresh_tokens  (token_hash, family, ..., used_at,
                         revoked_at)                               rotated: each is used once
    idp_access_tokens   (jti, family, client_id, subject, scope,
                         resource, issued_at, expires_at)          for introspection and revocation
    idp_revoked_tokens  (jti, expires_at)                          what the verifier checks per call
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from sqlite_utils import Database

from executor.idp.records import (
    AccessTokenRecord,
    CodeRecord,
    CodeUse,
    KeyRecord,
    KeyUse,
    RefreshTokenRecord,
    RefreshUse,
)

REPLAY_WINDOW_SECONDS = 3600
"""Used codes are kept this long after they expire, so a late replay still revokes its family."""

_CODE_COLUMNS = (
    "code_hash, family, client_id, username, redirect_uri, scope, resource, code_challenge, "
    "code_challenge_method, auth_time, expires_at"
)
_REFRESH_COLUMNS = (
    "token_hash, family, client_id, username, scope, resource, auth_time, issued_at, expires_at, used_at, revoked_at"
)
_ACCESS_COLUMNS = "jti, family, client_id, subject, scope, resource, issued_at, expires_at"

_INSERT_CODE = (
    "INSERT INTO idp_codes (code_hash, family, client_id, username, redirect_uri, scope, resource, code_challenge, "
    "code_challenge_method, auth_time, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_CODE = (
    "SELECT code_hash, family, client_id, username, redirect_uri, scope, resource, code_challenge, "
    "code_challenge_method, auth_time, expires_at FROM idp_codes WHERE code_hash = ?"
)
_INSERT_REFRESH = (
    "INSERT INTO idp_refresh_tokens (token_hash, family, client_id, username, scope, resource, auth_time, issued_at, "
    "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_REFRESH = (
    "SELECT token_hash, family, client_id, username, scope, resource, auth_time, issued_at, expires_at, used_at, "
    "revoked_at FROM idp_refresh_tokens WHERE token_hash = ?"
)
_INSERT_ACCESS = (
    "INSERT INTO idp_access_tokens (jti, family, client_id, subject, scope, resource, issued_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ACCESS = (
    "SELECT jti, family, client_id, subject, scope, resource, issued_at, expires_at FROM idp_access_tokens "
    "WHERE jti = ?"
)


class SQLiteIssuerStore:
    """The ``IssuerStore`` methods of ``SQLiteStore``; its transaction helpers are used."""

    def _reading(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    def _writing(self) -> contextlib.AbstractContextManager[Database]:
        raise NotImplementedError

    # -- keys

    def idp_keys(self, use: KeyUse) -> list[KeyRecord]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT kid, use, alg, jwk, created_at FROM idp_keys WHERE use = ? ORDER BY created_at DESC, kid",
                [use],
            ).fetchall()
        return [_key(*row) for row in rows]

    def ensure_idp_key(self, record: KeyRecord) -> list[KeyRecord]:
        with self._writing() as db:
            if db.execute("SELECT 1 FROM idp_keys WHERE use = ?", [record.use]).fetchone() is None:
                _insert_key(db, record)
        return self.idp_keys(record.use)

    def add_idp_key(self, record: KeyRecord, *, keep: int) -> list[KeyRecord]:
        with self._writing() as db:
            # The newest key signs: make sure it sorts first even when added within the same second.
            (newest,) = db.execute("SELECT MAX(created_at) FROM idp_keys WHERE use = ?", [record.use]).fetchone()
            if newest is not None and record.created_at <= newest:
                record = msgspec.structs.replace(record, created_at=newest + 1)
            _insert_key(db, record)
            rows = db.execute(
                "SELECT kid FROM idp_keys WHERE use = ? ORDER BY created_at DESC, kid", [record.use]
            ).fetchall()
            for (kid,) in rows[max(keep, 1):]:
                db.execute("DELETE FROM idp_keys WHERE kid = ?", [kid])
        return self.idp_keys(record.use)

    # -- authorization codes

    def put_code(self, record: CodeRecord, now: int) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM idp_codes WHERE expires_at < ?", [now - REPLAY_WINDOW_SECONDS])
            db.execute("DELETE FROM idp_access_tokens WHERE expires_at < ?", [now])
            db.execute("DELETE FROM idp_revoked_tokens WHERE expires_at < ?", [now])
            db.execute("DELETE FROM idp_refresh_tokens WHERE expires_at < ?", [now])
            db.execute(
                "INSERT INTO idp_families (family, client_id, username, created_at) VALUES (?, ?, ?, ?)",
                [record.family, record.client_id, record.username, now],
            )
            db.execute(
                _INSERT_CODE,
                [record.code_hash, record.family, record.client_id, record.username, record.redirect_uri,
                 record.scope, record.resource, record.code_challenge, record.code_challenge_method,
                 record.auth_time, record.expires_at],
            )

    def use_code(self, code_hash: str, now: int) -> CodeUse:
        with self._writing() as db:
            taken = db.execute(
                "UPDATE idp_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL", [now, code_hash]
            ).rowcount
            row = db.execute(_SELECT_CODE, [code_hash]).fetchone()
            if row is None:
                return CodeUse(outcome="unknown")
            code = _code(*row)
            if taken != 1:
                # OAuth 2.1 §4.1.3: a code used twice "MUST" be refused, and the server "SHOULD revoke
                # (when possible) all tokens previously issued based on that authorization code".
                _revoke_family(db, code.family, now)
                return CodeUse(outcome="replayed")
            if code.expires_at <= now:
                return CodeUse(outcome="expired")
            return CodeUse(outcome="ok", code=code)

    # -- tokens

    def record_tokens(self, access: AccessTokenRecord, refresh: RefreshTokenRecord | None, now: int) -> bool:
        with self._writing() as db:
            family = access.family if access.family is not None else (refresh.family if refresh else None)
            if family is not None:
                row = db.execute("SELECT revoked_at FROM idp_families WHERE family = ?", [family]).fetchone()
                if row is None or row[0] is not None:
                    return False
            db.execute(
                _INSERT_ACCESS,
                [access.jti, access.family, access.client_id, access.subject, access.scope, access.resource,
                 access.issued_at, access.expires_at],
            )
            if refresh is not None:
                db.execute(
                    _INSERT_REFRESH,
                    [refresh.token_hash, refresh.family, refresh.client_id, refresh.username, refresh.scope,
                     refresh.resource, refresh.auth_time, refresh.issued_at, refresh.expires_at],
                )
            return True

    def get_refresh_token(self, token_hash: str) -> RefreshTokenRecord | None:
        with self._reading() as db:
            row = db.execute(_SELECT_REFRESH, [token_hash]).fetchone()
        return None if row is None else _refresh(*row)

    def use_refresh_token(self, token_hash: str, now: int) -> RefreshUse:
        with self._writing() as db:
            row = db.execute(_SELECT_REFRESH, [token_hash]).fetchone()
            if row is None:
                return RefreshUse(outcome="unknown")
            token = _refresh(*row)
            if token.revoked_at is not None:
                return RefreshUse(outcome="revoked")
            if token.used_at is not None:
                # RFC 9700 §4.14.2: with rotation, if a refresh token is used again "the authorization
                # server cannot determine which party submitted the invalid refresh token ... and will
                # revoke the active refresh token" -- here the whole family, access tokens included.
                _revoke_family(db, token.family, now)
                return RefreshUse(outcome="reused")
            if token.expires_at <= now:
                return RefreshUse(outcome="expired")
            db.execute("UPDATE idp_refresh_tokens SET used_at = ? WHERE token_hash = ?", [now, token_hash])
            return RefreshUse(outcome="ok", token=token)

    def get_access_token(self, jti: str) -> AccessTokenRecord | None:
        with self._reading() as db:
            row = db.execute(_SELECT_ACCESS, [jti]).fetchone()
        return None if row is None else _access(*row)

    def revoke_family(self, family: str, now: int) -> None:
        with self._writing() as db:
            _revoke_family(db, family, now)

    def revoke_access_token(self, jti: str, expires_at: int) -> None:
        with self._writing() as db:
            db.execute(
                "INSERT INTO idp_revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
                [jti, expires_at],
            )

    def is_token_revoked(self, jti: str) -> bool:
        with self._reading() as db:
            return db.execute("SELECT 1 FROM idp_revoked_tokens WHERE jti = ?", [jti]).fetchone() is not None


def _revoke_family(db: Database, family: str, now: int) -> None:
    db.execute("UPDATE idp_families SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL", [now, family])
    db.execute(
        "UPDATE idp_refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL", [now, family]
    )
    db.execute(
        "INSERT INTO idp_revoked_tokens (jti, expires_at) SELECT jti, expires_at FROM idp_access_tokens "
        "WHERE family = ? AND expires_at > ? ON CONFLICT (jti) DO NOTHING",
        [family, now],
    )


def _insert_key(db: Database, record: KeyRecord) -> None:
    db.execute(
        "INSERT INTO idp_keys (kid, use, alg, jwk, created_at) VALUES (?, ?, ?, ?, ?)",
        [record.kid, record.use, record.alg, record.jwk, record.created_at],
    )


def _record(tp: type[Any], names: str, values: tuple[Any, ...]) -> Any:
    return msgspec.convert(dict(zip([n.strip() for n in names.split(",")], values, strict=True)), tp)


def _key(*values: Any) -> KeyRecord:
    record: KeyRecord = _record(KeyRecord, "kid, use, alg, jwk, created_at", values)
    return record


def _code(*values: Any) -> CodeRecord:
    record: CodeRecord = _record(CodeRecord, _CODE_COLUMNS, values)
    return record


def _refresh(*values: Any) -> RefreshTokenRecord:
    record: RefreshTokenRecord = _record(RefreshTokenRecord, _REFRESH_COLUMNS, values)
    return record


def _access(*values: Any) -> AccessTokenRecord:
    record: AccessTokenRecord = _record(AccessTokenRecord, _ACCESS_COLUMNS, values)
    return record
