"""The audit chain as pure functions: hashing, verification, checkpoints, exports, redaction."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.audit import (
    ALWAYS_REDACTED,
    AuditRecord,
    Break,
    Event,
    Segment,
    canonical_json,
    diff,
    digest,
    fingerprint,
    redact,
)
from executor.audit_chain import (
    GENESIS,
    ChainRow,
    event_hash,
    key_id,
    raw_public_key,
    sign_checkpoint,
    verify_chain,
)
from executor.audit_export import export_lines, verify_export

KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(raw_public_key(KEY)): raw_public_key(KEY)}


def event(n: int, **fields: Any) -> Event:
    base: dict[str, Any] = {"agent": "cursor", "user_issuer": "https://idp", "user_subject": "alice",
                            "tool": "up.echo", "decision": "allow", "reason": "allowed"}
    return Event(kind="decision", time=f"2026-01-01T00:00:{n % 60:02d}.000000+00:00", request_id=f"r{n}",
                 **{**base, **fields})


def chain(events: list[Event], first_seq: int = 1, prev: str = GENESIS) -> list[ChainRow]:
    rows = []
    for seq, e in enumerate(events, first_seq):
        h = event_hash(prev, e)
        rows.append(ChainRow(seq, prev, h, e))
        prev = h
    return rows


def verify(rows: list[ChainRow], head: tuple[int, str] | None = None, checkpoints: list[Any] | None = None) -> Any:
    if head is None:
        head = (rows[-1].seq, rows[-1].hash) if rows else (0, GENESIS)
    return verify_chain(rows, checkpoints=checkpoints or [], keys=KEYS, head=head)


def test_a_clean_chain_verifies() -> None:
    rows = chain([event(i) for i in range(10)])
    report = verify(rows)
    assert (report.ok, report.events, report.first_seq, report.last_seq) == (True, 10, 1, 10)


def test_the_hash_covers_every_field_and_the_previous_hash() -> None:
    e = event(1)
    assert event_hash(GENESIS, e) != event_hash("1" * 64, e)
    for name in ("agent", "tool", "decision", "reason", "time"):
        assert event_hash(GENESIS, e) != event_hash(GENESIS, msgspec.structs.replace(e, **{name: "x"}))


def test_a_field_added_later_does_not_change_old_hashes() -> None:
    # Unset fields are left out of the canonical JSON.
    assert json.loads(canonical_json(Event(kind="intent", time="t"))) == {"kind": "intent", "time": "t"}


def test_an_edited_row_is_named() -> None:
    rows = chain([event(i) for i in range(6)])
    rows[3] = rows[3]._replace(event=msgspec.structs.replace(rows[3].event, decision="deny"))
    assert verify(rows).broken == Break(4, "edited", "seq 4 was edited: its content no longer matches its hash")


def test_an_edited_and_rehashed_row_is_named_by_the_next_link() -> None:
    rows = chain([event(i) for i in range(6)])
    forged = msgspec.structs.replace(rows[2].event, agent="claude")
    rows[2] = rows[2]._replace(event=forged, hash=event_hash(rows[2].prev_hash, forged))
    broken = verify(rows).broken
    assert broken is not None and (broken.seq, broken.kind) == (3, "edited")


def test_a_deleted_row_is_named() -> None:
    rows = chain([event(i) for i in range(6)])
    del rows[2]
    broken = verify(rows, head=(6, rows[-1].hash)).broken
    assert broken is not None and (broken.seq, broken.kind) == (3, "deleted")


def test_deleting_the_newest_rows_shows_against_the_head() -> None:
    rows = chain([event(i) for i in range(6)])
    head = (6, rows[-1].hash)
    broken = verify(rows[:-2], head=head).broken
    assert broken is not None and (broken.seq, broken.kind) == (5, "deleted")


def test_deleting_the_oldest_rows_without_a_checkpoint_shows() -> None:
    rows = chain([event(i) for i in range(6)])
    broken = verify(rows[2:]).broken
    assert broken is not None and (broken.seq, broken.kind) == (2, "deleted")


def test_swapped_rows_are_named_as_reordered() -> None:
    rows = chain([event(i) for i in range(8)])
    a, b = rows[2], rows[5]
    rows[2], rows[5] = b._replace(seq=a.seq), a._replace(seq=b.seq)
    broken = verify(rows).broken
    assert broken is not None and (broken.seq, broken.kind) == (3, "reordered")


def test_a_cut_after_a_signed_checkpoint_verifies_and_one_without_does_not() -> None:
    rows = chain([event(i) for i in range(10)])
    cp = sign_checkpoint(KEY, 4, rows[3].hash, "2026-01-01T00:00:00+00:00")
    assert verify(rows[4:], checkpoints=[cp]).vouched_through == 4
    assert verify(rows[4:], checkpoints=[cp]).ok
    other = sign_checkpoint(KEY, 3, rows[2].hash, "2026-01-01T00:00:00+00:00")
    broken = verify(rows[4:], checkpoints=[other]).broken
    assert broken is not None and (broken.seq, broken.kind) == (4, "deleted")


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint() -> None:
    rows = chain([event(i) for i in range(10)])
    cp = sign_checkpoint(KEY, 8, rows[7].hash, "2026-01-01T00:00:00+00:00")
    rewritten = chain([event(i, reason="forged" if i == 2 else "allowed") for i in range(10)])
    broken = verify(rewritten, checkpoints=[cp]).broken
    assert broken is not None and (broken.seq, broken.kind) == (8, "edited")


def test_a_forged_checkpoint_is_refused() -> None:
    rows = chain([event(i) for i in range(4)])
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), 4, rows[3].hash, "2026-01-01T00:00:00+00:00")
    broken = verify(rows, checkpoints=[forged]).broken
    assert broken is not None and (broken.seq, broken.kind) == (4, "checkpoint")


# -- hypothesis: any single mutation, deletion or swap is found at its index

events_strategy = st.lists(
    st.builds(Event, kind=st.sampled_from(["decision", "intent", "outcome", "admin_change"]),
              time=st.text(min_size=1, max_size=8), agent=st.none() | st.text(max_size=6),
              tool=st.none() | st.text(max_size=6), latency_ms=st.none() | st.floats(0, 1e6),
              detail=st.none() | st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3),
                                                 max_size=3)),
    min_size=2, max_size=25)
FIELDS = ["agent", "tool", "time", "prev_hash", "hash", "latency_ms", "detail"]


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, data=st.data())
def test_property_any_single_tampering_is_found_at_its_index(events: list[Event], data: st.DataObject) -> None:
    rows = chain(events)
    head = (rows[-1].seq, rows[-1].hash)
    assert verify(rows, head).ok
    action = data.draw(st.sampled_from(["mutate", "delete", "swap"]))
    i = data.draw(st.integers(0, len(rows) - 1))
    if action == "mutate":
        field = data.draw(st.sampled_from(FIELDS))
        row = rows[i]
        if field in ("prev_hash", "hash"):
            rows[i] = row._replace(**{field: "f" * 64})
        else:
            old = getattr(row.event, field)
            new: Any = {"x": 1} if field == "detail" else 7.5 if field == "latency_ms" else "tampered"
            if new == old:
                new = {"y": 2} if field == "detail" else 8.5 if field == "latency_ms" else "tampered2"
            rows[i] = row._replace(event=msgspec.structs.replace(row.event, **{field: new}))
        expected = (i + 1, "edited")
    elif action == "delete":
        del rows[i]
        expected = (i + 1, "deleted")
    else:
        j = data.draw(st.integers(0, len(rows) - 1).filter(lambda j: j != i))
        i, j = min(i, j), max(i, j)
        if rows[i].event == rows[j].event and rows[i].prev_hash == rows[j].prev_hash:
            return  # identical rows: nothing to detect
        a, b = rows[i], rows[j]
        rows[i], rows[j] = b._replace(seq=a.seq), a._replace(seq=b.seq)
        expected = (i + 1, "reordered")
    broken = verify(rows, head).broken
    assert broken is not None
    assert (broken.seq, broken.kind) == expected


# -- exports


def segment(n: int, checkpoint_at: int, key: Ed25519PrivateKey = KEY) -> Segment:
    rows = chain([event(i) for i in range(n)])
    records = [AuditRecord(seq=r.seq, prev_hash=r.prev_hash, hash=r.hash, event=r.event) for r in rows]
    cp = sign_checkpoint(key, checkpoint_at, rows[checkpoint_at - 1].hash, "2026-01-01T00:00:00+00:00")
    return Segment([r for r in records if r.seq <= checkpoint_at], [cp])


def export(seg: Segment) -> list[str]:
    return list(export_lines(seg, KEY, since=None, until=None, exported_at="2026-01-02T00:00:00+00:00"))


def test_an_export_verifies_on_its_own() -> None:
    report = verify_export(export(segment(8, 8)))
    assert (report.ok, report.events, report.vouched_through) == (True, 8, 8)
    assert verify_export(export(segment(8, 8)), KEYS).ok


def _event_line(lines: list[str], seq: int) -> int:
    return next(i for i, line in enumerate(lines) if json.loads(line).get("seq") == seq
                and json.loads(line)["type"] == "event")


def test_a_tampered_export_fails() -> None:
    lines = export(segment(8, 8))
    edited = list(lines)
    i = _event_line(edited, 3)
    doc = json.loads(edited[i])
    doc["event"]["decision"] = "deny"
    edited[i] = json.dumps(doc)
    assert verify_export(edited).broken == Break(3, "edited", "seq 3 was edited: its content no longer matches "
                                                              "its hash")
    deleted = [line for n, line in enumerate(lines) if n != _event_line(lines, 5)]
    broken = verify_export(deleted).broken
    assert broken is not None and (broken.seq, broken.kind) == (5, "deleted")
    cut = lines[:_event_line(lines, 6)]  # the signed header still says seq 8
    assert verify_export(cut).broken is not None


def test_an_export_signed_by_another_key_fails_against_the_pinned_key() -> None:
    other = Ed25519PrivateKey.generate()
    lines = list(export_lines(segment(4, 4, other), other, since=None, until=None, exported_at="t"))
    assert verify_export(lines).ok  # it is consistent with the key it carries...
    broken = verify_export(lines, KEYS).broken  # ...but not with ours
    assert broken is not None and broken.kind in ("export", "checkpoint")


# -- what an event may hold


def test_redaction_at_any_depth_case_insensitively() -> None:
    args = {"to": "bob", "Password": "hunter2", "nested": [{"api_key": "k", "card": {"pin": "1234", "n": 1}}],
            "big": 2**70, "nan": float("nan")}
    assert redact(args, ["pin"]) == {"to": "bob", "Password": "[redacted]",
                                     "nested": [{"api_key": "[redacted]", "card": {"pin": "[redacted]", "n": 1}}],
                                     "big": str(2**70), "nan": "nan"}
    assert "token" in ALWAYS_REDACTED


def test_digest_is_sha256_of_canonical_json_whatever_the_key_order() -> None:
    import hashlib

    assert digest({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == digest({"a": [1, {"c": 3, "d": 2}], "b": 1})
    assert digest({"a": 1}) == "sha256:" + hashlib.sha256(b'{"a":1}').hexdigest()
    assert digest({"big": 2**80}).startswith("sha256:")  # beyond 64 bits: still digested


def test_fingerprint_is_16_hex_of_sha256() -> None:
    import hashlib

    assert fingerprint("jti-1") == hashlib.sha256(b"jti-1").hexdigest()[:16]


def test_diff_shows_changed_fields_and_hides_secret_ones() -> None:
    before = {"name": "up", "url": "https://x/?token=s3cret", "timeout": 30}
    after = {"name": "up", "url": "https://x/?token=other", "timeout": 10}
    d = diff(before, after, ["url"])
    assert d["timeout"] == {"before": 30, "after": 10}
    assert set(d) == {"timeout", "url"} and "s3cret" not in json.dumps(d)
    assert d["url"]["before"].startswith("sha256:")


def test_an_empty_trail_verifies() -> None:
    assert verify([]).ok
    assert verify([], head=(3, "a" * 64)).broken == Break(3, "deleted", "every event up to seq 3 is missing")


@pytest.mark.parametrize("first_seq", [1, 5])
def test_reports_name_the_range(first_seq: int) -> None:
    prev = GENESIS if first_seq == 1 else "c" * 64
    rows = chain([event(i) for i in range(3)], first_seq, prev)
    checkpoints = [] if first_seq == 1 else [sign_checkpoint(KEY, first_seq - 1, prev, "t")]
    report = verify(rows, checkpoints=checkpoints)
    assert (report.ok, report.first_seq, report.last_seq) == (True, first_seq, first_seq + 2)
