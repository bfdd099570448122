"""Pinning tool definitions, and what a fresh upstream catalogue does to the pins.

A tool's definition is pinned by a canonical hash of what an agent is shown
and what shapes its call: name, title, description, input and output schema,
annotations. When the upstream later offers a different definition, the tool
is quarantined (not listed, not callable) until an admin blesses the new one;
this defeats "rug pull" tool poisoning. Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from registry.records import ToolRecord, ToolStatus

PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")

_canonical = msgspec.json.Encoder(order="sorted")


def canonical_hash(definition: dict[str, Any]) -> str:
    """sha256 over the pinned fields, keys sorted at every depth, no whitespace."""
    pinned = {k: definition[k] for k in PINNED_FIELDS if definition.get(k) is not None}
    return "sha256:" + hashlib.sha256(_canonical.encode(pinned)).hexdigest()


def reconcile(
    server: str, pinned: list[ToolRecord], live: list[dict[str, Any]], *, first_sync: bool, now: str
) -> list[ToolRecord]:
    """The tool rows after a sync.

    first sync      every live tool is pinned: blessing a server trusts what it offers then
    same hash       pinned (a quarantined tool whose upstream reverted is served again)
    other hash      quarantined; the pinned definition stays, the live one is kept for review
    new tool later  pending: not served until an admin blesses it (a rug pull can add tools too)
    gone upstream   removed; the pin is remembered in case it comes back
    """
    by_name = {t.name: t for t in pinned}
    out: list[ToolRecord] = []
    seen: set[str] = set()
    for definition in live:
        name = str(definition["name"])
        if name in seen:  # an upstream listing a name twice: keep the first, the rest are noise
            continue
        seen.add(name)
        live_hash = canonical_hash(definition)
        old = by_name.get(name)
        if old is None or old.status == "pending":
            status: ToolStatus = "pinned" if first_sync else "pending"
            out.append(ToolRecord(server=server, name=name, definition=definition, pinned_hash=live_hash,
                                  status=status, updated_at=now))
        elif live_hash == old.pinned_hash:
            out.append(ToolRecord(server=server, name=name, definition=old.definition,
                                  pinned_hash=old.pinned_hash, status="pinned", updated_at=now))
        else:
            out.append(ToolRecord(server=server, name=name, definition=old.definition,
                                  pinned_hash=old.pinned_hash, status="quarantined",
                                  live_definition=definition, live_hash=live_hash, updated_at=now))
    for old in pinned:
        if old.name not in seen and old.status != "pending":
            out.append(msgspec.structs.replace(old, status="removed", live_definition=None, live_hash=None,
                                               updated_at=now))
    return sorted(out, key=lambda t: t.name)


def bless(tool: ToolRecord, now: str) -> ToolRecord:
    """Accept what the upstream offers now as the pinned definition."""
    if tool.status == "quarantined" and tool.live_definition is not None and tool.live_hash is not None:
        return ToolRecord(server=tool.server, name=tool.name, definition=tool.live_definition,
                          pinned_hash=tool.live_hash, status="pinned", updated_at=now)
    if tool.status in ("pending", "pinned"):
        return msgspec.structs.replace(tool, status="pinned", updated_at=now)
    raise ValueError(f"tool `{tool.exposed_name}` is {tool.status} and cannot be blessed")
