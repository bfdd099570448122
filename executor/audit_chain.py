"""Tamper evidence for the audit trail: the hash chain, signed checkpoints, and verification.

    hash(n) = sha256( prev_hash(n) "\\n" canonical_json(event(n)) )       prev_hash(1) = 64 zeros
    checkpoint(n) = Ed25519( "interlock-audit-checkpoint/1\\n" canonical_json({seq, hash, time, key_id}) )

Each record holds the hash of the one before it, so an edited, deleted, inserted or reordered
row breaks a link; ``verify_chain`` walks the records and names the first broken link and its
sequence number. The head of the chain (last sequence number and hash) is kept apart from the
rows, so deleting the newest rows shows too. A checkpoint signs the head every
``checkpoint_every`` events: it vouches for every event up to it, so

- an exported segment ending at a checkpoint verifies on its own, given the public key;
- retention may delete the events up to a checkpoint: the first remaining event's
  ``prev_hash`` is the checkpoint's hash, signed.

An attacker who can write the database can rewrite the whole chain consistently; only the
signed checkpoints (whose private key they lack) catch that, up to the last checkpoint.
Pure: no I/O beyond the cryptography library.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from executor.audit import Break, Checkpoint, Event, VerifyReport, canonical_json

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event ever."""
_CHECKPOINT_DOMAIN = b"interlock-audit-checkpoint/1\n"
_EXPORT_DOMAIN = b"interlock-audit-export/1\n"


def link_hash(prev_hash: str, body: bytes) -> str:
    """The hash of an event whose canonical JSON is ``body``, chained after ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def event_hash(prev_hash: str, event: Event) -> str:
    return link_hash(prev_hash, canonical_json(event))


# --------------------------------------------------------------------------- keys and signatures


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """A short name for a raw Ed25519 public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def checkpoint_message(seq: int, hash_: str, time: str, kid: str) -> bytes:
    return _CHECKPOINT_DOMAIN + canonical_json({"hash": hash_, "key_id": kid, "seq": seq, "time": time})


def sign_checkpoint(key: Ed25519PrivateKey, seq: int, hash_: str, time: str) -> Checkpoint:
    kid = key_id(raw_public_key(key))
    signature = key.sign(checkpoint_message(seq, hash_, time, kid))
    return Checkpoint(seq=seq, hash=hash_, time=time, key_id=kid, signature=_b64(signature))


def _signature_ok(keys: Mapping[str, bytes], kid: str, message: bytes, signature: str) -> bool:
    raw = keys.get(kid)
    if raw is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(_unb64(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_ok(checkpoint: Checkpoint, keys: Mapping[str, bytes]) -> bool:
    """Was ``checkpoint`` signed by one of ``keys`` (key id -> raw public key)?"""
    message = checkpoint_message(checkpoint.seq, checkpoint.hash, checkpoint.time, checkpoint.key_id)
    return _signature_ok(keys, checkpoint.key_id, message, checkpoint.signature)


def sign_manifest(key: Ed25519PrivateKey, manifest: Mapping[str, object]) -> str:
    """Sign an export's header (its range), so cutting events off its end shows."""
    return _b64(key.sign(_EXPORT_DOMAIN + canonical_json(dict(manifest))))


def manifest_ok(manifest: Mapping[str, object], kid: str, signature: str, keys: Mapping[str, bytes]) -> bool:
    return _signature_ok(keys, kid, _EXPORT_DOMAIN + canonical_json(dict(manifest)), signature)


# --------------------------------------------------------------------------- verification


class ChainRow(NamedTuple):
    """One stored row as the verifier sees it; ``event`` is None when the row did not even decode."""

    seq: int
    prev_hash: str
    hash: str
    event: Event | None


def verify_chain(
    rows: Iterable[ChainRow],
    *,
    checkpoints: Sequence[Checkpoint],
    keys: Mapping[str, bytes],
    head: tuple[int, str] | None = None,
    start: Literal["anchored", "free"] = "anchored",
    end: Literal["head", "signed"] = "head",
    locate: Callable[[str], int | None] | None = None,
) -> VerifyReport:
    """Walk ``rows`` (in sequence order) and report the first broken link, if any.

    ``start="anchored"``: the first row must be the first event ever, or follow a signed
    checkpoint (a retention cut). ``"free"``: an export may start anywhere; its end vouches.
    ``end="head"``: the last row must be ``head`` (the stored head of the chain).
    ``"signed"``: the last row must be covered by a signed checkpoint (exports).
    ``locate(hash)`` finds the sequence number of the row holding ``hash`` (to tell a reordered
    row from a deleted one); without it, ``rows`` are read into memory and searched.
    """
    if locate is None:
        rows = list(rows)
        locate = _index(rows)
    by_seq: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        if not checkpoint_ok(cp, keys):
            return VerifyReport(0, None, None, 0, None, Break(
                cp.seq, "checkpoint", f"the checkpoint at seq {cp.seq} is not signed by a trusted key "
                                      f"(key `{cp.key_id}`); it was forged or altered, or pass its public key"))
        by_seq[cp.seq] = cp
    count, first, prev, vouched, matched = 0, None, None, None, 0
    broken: Break | None = None

    for row in rows:
        count += 1
        if prev is None:
            first = row.seq
            broken = _check_start(row, by_seq, start, locate)
            if broken is None and row.seq - 1 in by_seq:
                vouched = row.seq - 1
        else:
            broken = _check_link(prev, row, locate)
        if broken is None:
            broken = _check_self(row)
        if broken is None and row.seq in by_seq:
            if by_seq[row.seq].hash != row.hash:
                broken = Break(row.seq, "edited", f"the chain up to seq {row.seq} was rewritten: it no longer "
                                                  "matches the signed checkpoint there")
            else:
                vouched, matched = row.seq, matched + 1
        if broken is not None:
            return VerifyReport(count, first, row.seq, matched, vouched, broken)
        prev = row

    last = prev.seq if prev is not None else None
    if end == "head" and head is not None:
        broken = _check_head(prev, head, by_seq)
        if broken is None and prev is None and head[0] in by_seq:
            vouched = head[0]
    elif end == "signed" and prev is not None and vouched != prev.seq:
        broken = Break(prev.seq, "export", f"the events after seq {vouched or first} are not vouched for by a "
                                           "signed checkpoint (the export was altered or cut)")
    return VerifyReport(count, first, last, matched, vouched, broken)


def _check_start(row: ChainRow, checkpoints: Mapping[int, Checkpoint], start: str,
                 locate: Callable[[str], int | None]) -> Break | None:
    if start == "free":
        return None
    anchor = checkpoints.get(row.seq - 1)
    expected = GENESIS if row.seq == 1 else anchor.hash if anchor is not None else None
    if row.prev_hash == expected:
        return None
    elsewhere = locate(row.prev_hash) if _self_ok(row) else None
    if elsewhere is not None:
        return Break(row.seq, "reordered", f"seq {row.seq} holds the event that followed seq {elsewhere}: "
                                           "rows were swapped or moved")
    if row.seq == 1:
        return Break(1, "edited", "the first event's prev_hash was changed (it must be the genesis hash)")
    if anchor is not None:
        return Break(row.seq, "edited", f"seq {row.seq} does not follow the signed checkpoint at seq {anchor.seq}")
    return Break(row.seq - 1, "deleted", f"the events before seq {row.seq} are missing and no signed checkpoint "
                                         "vouches for the cut (rows were deleted)")


def _check_link(prev: ChainRow, row: ChainRow, locate: Callable[[str], int | None]) -> Break | None:
    if row.seq <= prev.seq:
        return Break(row.seq, "reordered", f"seq {row.seq} comes after seq {prev.seq}")
    if row.seq != prev.seq + 1:
        gone = f"seq {prev.seq + 1}" if row.seq == prev.seq + 2 else f"seqs {prev.seq + 1} to {row.seq - 1}"
        return Break(prev.seq + 1, "deleted", f"{gone} deleted: the chain jumps from seq {prev.seq} to {row.seq}")
    if row.prev_hash == prev.hash:
        return None
    if _self_ok(row):
        elsewhere = locate(row.prev_hash)
        if elsewhere is not None and elsewhere != prev.seq:
            return Break(row.seq, "reordered", f"seq {row.seq} holds the event that followed seq {elsewhere}: "
                                               "rows were swapped or moved")
        return Break(prev.seq, "edited", f"seq {prev.seq} was edited and re-hashed (or the event after it was "
                                         f"deleted and the rest renumbered): seq {row.seq} recorded a different "
                                         "hash for its predecessor")
    return None  # the row's own check names it


def _index(rows: Sequence[ChainRow]) -> Callable[[str], int | None]:
    built: dict[str, int] = {}

    def locate(hash_: str) -> int | None:
        if not built:
            built.update((r.hash, r.seq) for r in rows)
        return built.get(hash_)

    return locate


def _self_ok(row: ChainRow) -> bool:
    return row.event is not None and event_hash(row.prev_hash, row.event) == row.hash


def _check_self(row: ChainRow) -> Break | None:
    if _self_ok(row):
        return None
    return Break(row.seq, "edited", f"seq {row.seq} was edited: its content no longer matches its hash")


def _check_head(last: ChainRow | None, head: tuple[int, str], checkpoints: Mapping[int, Checkpoint]) -> Break | None:
    seq, hash_ = head
    if last is None:
        anchor = checkpoints.get(seq)
        if seq == 0 or (anchor is not None and anchor.hash == hash_):
            return None  # empty, or every event was retired up to the checkpoint at the head
        return Break(seq, "deleted", f"every event up to seq {seq} is missing")
    if last.seq < seq:
        return Break(last.seq + 1, "deleted", f"the newest events (seq {last.seq + 1} to {seq}) were deleted")
    if last.seq > seq or last.hash != hash_:
        return Break(last.seq, "edited", f"seq {last.seq} does not match the recorded head of the chain")
    return None
