"""The export format of the audit trail, and verifying an export on its own.

An export is JSON Lines (`interlock-audit-export/1`):

    {"type": "header", "format": ..., "algorithm": "Ed25519", "key_id": ..., "public_key": <base64url raw>,
     "first_seq": ..., "last_seq": ..., "since": ..., "until": ..., "exported_at": ..., "events": N,
     "checkpoints": M, "signature": <Ed25519 over the header's other fields>}
    {"type": "event", "seq": ..., "prev_hash": ..., "hash": ..., "event": {...}}       one per event, in order
    {"type": "checkpoint", "seq": ..., "hash": ..., "time": ..., "key_id": ..., "signature": ...}

The segment always ends at a signed checkpoint, so recomputing the chain from the first
event's ``prev_hash`` must reproduce the checkpoint's hash: the events are authentic given the
public key. The signed header fixes the range, so cutting events off the end shows too. The
key in the header is a convenience: pin the real one (``--public-key``) where it matters, since
whoever rewrites a whole export can also put their own key in it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from executor.audit import AuditRecord, Break, Checkpoint, Segment, VerifyReport
from executor.audit_chain import ChainRow, key_id, manifest_ok, raw_public_key, sign_manifest, verify_chain

FORMAT = "interlock-audit-export/1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def export_lines(segment: Segment, key: Ed25519PrivateKey, *, since: str | None, until: str | None,
                 exported_at: str) -> Iterator[str]:
    """The export of ``segment``, one JSON document per line (without newlines)."""
    raw = raw_public_key(key)
    records = segment.records
    manifest: dict[str, Any] = {
        "format": FORMAT, "algorithm": "Ed25519", "key_id": key_id(raw), "public_key": _b64(raw),
        "first_seq": records[0].seq if records else None, "last_seq": records[-1].seq if records else None,
        "since": since, "until": until, "exported_at": exported_at, "events": len(records),
        "checkpoints": len(segment.checkpoints)}
    yield _line({"type": "header", **manifest, "signature": sign_manifest(key, manifest)})
    checkpoints = {c.seq: c for c in segment.checkpoints}
    if records and records[0].seq - 1 in checkpoints:
        yield _line({"type": "checkpoint", **msgspec.to_builtins(checkpoints.pop(records[0].seq - 1))})
    for record in records:
        yield _line({"type": "event", **msgspec.to_builtins(record)})
        if record.seq in checkpoints:
            yield _line({"type": "checkpoint", **msgspec.to_builtins(checkpoints.pop(record.seq))})


def _line(value: dict[str, Any]) -> str:
    return msgspec.json.encode(value).decode()


def public_key_from(text: str) -> bytes:
    """A raw Ed25519 public key from PEM text (comment lines before it are skipped) or base64url of
    the raw 32 bytes."""
    text = text.strip()
    if "-----BEGIN" in text:
        key = load_pem_public_key(text[text.index("-----BEGIN"):].encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return raw_public_key(key)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32:
        raise ValueError("not a raw Ed25519 public key (32 bytes)")
    return raw


def verify_export(lines: Iterable[str], keys: Mapping[str, bytes] | None = None) -> VerifyReport:
    """Verify an export on its own. ``keys`` (key id -> raw public key) are the trusted keys;
    None trusts the key the export carries."""
    header: dict[str, Any] | None = None
    records: list[AuditRecord] = []
    checkpoints: list[Checkpoint] = []
    try:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            doc = msgspec.json.decode(line)
            kind = doc.pop("type", None) if isinstance(doc, dict) else None
            if kind == "header" and n == 1:
                header = doc
            elif kind == "event":
                records.append(msgspec.convert(doc, AuditRecord))
            elif kind == "checkpoint":
                checkpoints.append(msgspec.convert(doc, Checkpoint))
            else:
                return _broken(0, f"line {n} is not part of an interlock audit export")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _broken(0, f"the export does not parse: {exc}")
    if header is None or header.get("format") != FORMAT:
        return _broken(0, f"the export has no `{FORMAT}` header")
    signature = header.pop("signature", "")
    if keys is None:
        try:
            keys = {header["key_id"]: public_key_from(header["public_key"])}
        except (KeyError, TypeError, ValueError):
            return _broken(0, "the export's header carries no usable public key")
    if not manifest_ok(header, str(header.get("key_id")), str(signature), keys):
        return _broken(0, "the export's header is not signed by a trusted key (altered, or pass its public key)")
    rows = [ChainRow(r.seq, r.prev_hash, r.hash, r.event) for r in records]
    report = verify_chain(rows, checkpoints=checkpoints, keys=keys, start="free", end="signed")
    seqs = [r.seq for r in records]
    expected = (header.get("first_seq"), header.get("last_seq"), header.get("events"), header.get("checkpoints"))
    if report.ok and expected != (seqs[0] if seqs else None, seqs[-1] if seqs else None, len(records),
                                  len(checkpoints)):
        return _broken(seqs[-1] if seqs else 0, "the export's events do not match its signed header (events "
                                                "were added or removed)")
    return report


def _broken(seq: int, message: str) -> VerifyReport:
    return VerifyReport(0, None, None, 0, None, Break(seq, "export", message))
