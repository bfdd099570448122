"""The audit trail's records: what one event says, and the seam it is written through.

Every decision, every call intent (before the upstream call) and outcome (after it), every
authorization request, connection change, skill run and step, and every admin change is one
``Event``. Events are appended to an ``AuditLog`` (``registry.audit_store`` is the SQLite
backend), which chains them: each stored ``AuditRecord`` holds the hash of the one before it
(see ``executor.audit_chain``). ``executor.audit_recorder.Recorder`` builds the events.

An event never holds a secret (invariant 4):

- arguments are kept as a digest (sha256 of canonical JSON); the raw arguments only when the
  gateway opts in (``record_arguments``), and then with ``redact_fields`` (and the names in
  ``ALWAYS_REDACTED``) replaced by ``[redacted]`` at any depth;
- credentials (the inbound token's ``jti``, an upstream connection's token id) appear only as a
  ``fingerprint``: the first 16 hex digits of their sha256, never the token.

Pure: no I/O, no clock (the recorder reads the clock and passes the time in).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from executor.errors import StoreError

EventKind = Literal[
    "decision",  # a tools/call (or skill step) was decided: allow or deny, with reason and side
    "intent",  # an allowed call is about to reach the upstream (written before it does)
    "outcome",  # what the upstream call came to: success, tool_error, upstream_error, timeout, ...
    "authorization_requested",  # a third-party authorization was asked of the user
    "authorization_completed",  # ... and came back (success, denied, expired, mismatch, failed)
    "connection_created",
    "connection_refreshed",
    "connection_revoked",
    "skill_run_started",
    "skill_step",
    "skill_run_finished",
    "admin_change",  # bless, quarantine, apply, ... with a diff
    "retention",  # old segments were deleted up to a checkpoint
]

Outcome = Literal["success", "tool_error", "upstream_error", "timeout", "authorization_required", "cancelled",
                  "error"]
"""How a call ended. `authorization_required`: the user must connect a provider first (nothing was
called); `cancelled`: the agent went away mid-call; `error`: a bug on our side."""

REDACTED = "[redacted]"
ALWAYS_REDACTED = frozenset({
    "password", "passwd", "secret", "client_secret", "token", "access_token", "refresh_token", "id_token",
    "api_key", "apikey", "authorization", "cookie", "private_key",
})
"""Argument names redacted whenever arguments are recorded, on top of a gateway's `redact_fields`."""


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One audit event. Fields that do not apply to a kind stay ``None`` (and are left out of the
    canonical JSON, so a field added later does not change the hash of older events)."""

    kind: EventKind
    time: str
    """ISO 8601, UTC, microseconds: `2026-12-04T10:11:12.123456+00:00` (sorts as text)."""
    request_id: str | None = None
    """Ties the decision, intent and outcome of one call together."""
    gateway: str | None = None
    agent: str | None = None
    """The OAuth client acting (for admin changes: the admin client, or `interlock-cli`)."""
    user_issuer: str | None = None
    user_subject: str | None = None
    tool: str | None = None
    tool_version: str | None = None
    """The tool's pinned definition hash, where the catalogue knows it."""
    skill: str | None = None
    skill_version: str | None = None
    run_id: str | None = None
    step: str | None = None
    arguments_digest: str | None = None
    """`sha256:` + hex of the canonical JSON of the arguments, exactly as received."""
    arguments: dict[str, Any] | None = None
    """Only where the gateway records arguments; redacted."""
    decision: Literal["allow", "deny"] | None = None
    reason: str | None = None
    side: str | None = None
    rule: str | None = None
    outcome: str | None = None
    error: str | None = None
    """A stable error code (`upstream_timeout`, ...), never a message that could quote a secret."""
    latency_ms: float | None = None
    credential: str | None = None
    """A credential fingerprint (first 16 hex of sha256 of the token id), never a token."""
    provider: str | None = None
    action: str | None = None
    """For admin changes and connections: `bless`, `quarantine`, `apply`, `created`, ..."""
    target: str | None = None
    detail: dict[str, Any] | None = None
    """Kind-specific facts, e.g. an admin change's diff; never secrets."""


EVENT_FIELDS: tuple[str, ...] = Event.__struct_fields__
JSON_FIELDS = frozenset({"arguments", "detail"})
"""Fields a store keeps as JSON text; the others are plain columns."""


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: its place in the chain and the hashes that bind it there."""

    seq: int
    prev_hash: str
    hash: str
    event: Event


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signature over the chain's head at ``seq``: vouches for every event up to it."""

    seq: int
    hash: str
    time: str
    key_id: str
    signature: str
    """Ed25519 over ``audit_chain.checkpoint_message``, base64url without padding."""


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters for reading the trail; every given filter must hold."""

    agent: str | None = None
    user: str | None = None
    """A user's subject (any issuer unless ``issuer`` is given)."""
    issuer: str | None = None
    gateway: str | None = None
    tool: str | None = None
    decision: Literal["allow", "deny"] | None = None
    kind: str | None = None
    request_id: str | None = None
    since: str | None = None
    """ISO 8601 time, inclusive."""
    until: str | None = None
    """ISO 8601 time, exclusive."""
    limit: int | None = 100
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link of a chain: what was done, and at which sequence number."""

    seq: int
    kind: Literal["edited", "deleted", "reordered", "checkpoint", "export"]
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    events: int
    first_seq: int | None
    last_seq: int | None
    checkpoints: int
    """Checkpoints whose signature verified and whose hash matched the chain."""
    vouched_through: int | None
    """The last sequence number a signed checkpoint vouches for (every event up to it is authentic)."""
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass(frozen=True, slots=True)
class RetentionReport:
    deleted: int
    """How many events were deleted."""
    through_seq: int | None
    """The checkpoint the trail now starts after (None: nothing was old enough)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A verifiable range of the trail: its events and the checkpoints that vouch for them."""

    records: list[AuditRecord]
    checkpoints: list[Checkpoint]


class AuditUnavailableError(StoreError):
    """The audit trail refused a write (read-only, full, locked, gone). Calls are not made."""

    code = "audit_unavailable"


class AuditLog(Protocol):
    """Where events are kept: an append-only hash chain with signed checkpoints.

    Backends: SQLite (``registry.audit_store``); PostgreSQL to follow. ``append`` must serialize
    appends across processes (read the head and insert in one write transaction)."""

    def append(self, events: Sequence[Event]) -> int:
        """Chain and store ``events`` in one transaction, in order; return the last sequence
        number. Signs a checkpoint when the chain crosses a multiple of ``checkpoint_every``.
        Raises ``AuditUnavailableError`` (nothing is written) when the store refuses."""
        ...

    def query(self, query: AuditQuery) -> list[AuditRecord]: ...

    def records(self, first: int | None = None, last: int | None = None) -> Iterator[AuditRecord]:
        """Stored records with ``first <= seq <= last``, in chain order."""
        ...

    def checkpoints(self) -> list[Checkpoint]: ...

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None when the trail is empty)."""
        ...

    def verify(self, keys: Mapping[str, bytes] | None = None) -> VerifyReport:
        """Walk the whole chain; ``keys`` (key id -> raw Ed25519 public key) default to the
        signing key's own."""
        ...

    def segment(self, since: str | None = None, until: str | None = None) -> Segment:
        """The events in [since, until), extended to the next checkpoint (one is signed now if
        none follows), with the checkpoints that vouch for them: verifiable on its own."""
        ...

    def prune(self, cutoff: str) -> RetentionReport:
        """Delete events older than ``cutoff``, only ever up to a checkpoint."""
        ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- canonical JSON

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_json(value: Any) -> bytes:
    """Keys sorted at every depth, no whitespace, UTF-8. Values msgspec cannot encode (integers
    beyond 64 bits) fall back to the standard library with the same conventions."""
    try:
        return _canonical.encode(value)
    except (TypeError, ValueError, OverflowError):
        text = json.dumps(msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value,
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
        return text.encode()


def digest(arguments: Mapping[str, Any]) -> str:
    """The arguments' digest: `sha256:` + hex of their canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(arguments)).hexdigest()


def fingerprint(credential_id: str) -> str:
    """What the audit keeps of a credential: the first 16 hex digits of sha256 of its id."""
    return hashlib.sha256(credential_id.encode()).hexdigest()[:16]


def redact(value: Any, fields: Iterable[str] = ()) -> Any:
    """``value`` with every mapping entry whose key (case-insensitively) is in ``fields`` or
    ``ALWAYS_REDACTED`` replaced by ``[redacted]``, at any depth; made plain JSON on the way
    (integers beyond 64 bits and non-finite numbers become strings)."""
    names = ALWAYS_REDACTED | {f.lower() for f in fields}
    return _redact(value, names)


def _redact(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {str(k): REDACTED if str(k).lower() in names else _redact(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, names) for v in value]
    return _plain(value)


def plain(value: Any) -> Any:
    """``value`` as plain JSON data that canonical JSON encodes the same way every time."""
    return _redact(msgspec.to_builtins(value), frozenset())


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
         secret_fields: Iterable[str] = ()) -> dict[str, Any]:
    """Field-by-field change between two plain mappings: ``{field: {"before": b, "after": a}}``
    for each field that differs. Values of ``secret_fields`` are shown only as digests."""
    secret = set(secret_fields)
    b, a = dict(before or {}), dict(after or {})
    out: dict[str, Any] = {}
    for key in sorted(set(b) | set(a)):
        if b.get(key) != a.get(key):
            out[key] = {side: _shown(values.get(key), key in secret)
                        for side, values in (("before", b), ("after", a))}
    return out


def _shown(value: Any, secret: bool) -> Any:
    if value is None or not secret:
        return plain(value)
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()[:16]
