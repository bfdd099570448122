"""Blessing upstream servers and keeping their pinned catalogue honest.

The I/O around ``registry.pinning``: fetch the live catalogue through the
upstream pool (listing only; tools are invoked by ``Executor.call`` alone),
reconcile it with the pins, write the result. Used by the CLI and by the
server's periodic drift check. Each change is recorded as an `admin_change` audit
event once the store has it (given an ``AdminAudit``, which says who acted).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import msgspec

from executor.audit import diff
from executor.audit_recorder import AdminAudit
from executor.errors import CatalogError, UpstreamError
from executor.upstream import UpstreamPool
from registry import pinning
from registry.config import UpstreamConfig
from registry.records import ServerRecord, ToolRecord
from registry.store import Store

log = logging.getLogger(__name__)


class SyncReport(msgspec.Struct, frozen=True):
    server: str
    counts: dict[str, int]
    """tools by status after the sync: pinned, quarantined, pending, removed."""
    changed: list[str]
    """exposed names whose status changed in this sync."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_STATUS_ACTIONS = {"quarantined": "quarantine", "pending": "pending", "removed": "remove", "pinned": "pin"}


async def sync_server(store: Store, pool: UpstreamPool, name: str, audit: AdminAudit | None = None) -> SyncReport:
    record = store.get_server(name)
    if record is None:
        raise CatalogError(f"server `{name}` is not blessed; bless it with `interlock servers bless {name} ...`")
    try:
        live = await pool.list_tools(record.spec)
    except UpstreamError as exc:
        store.record_sync_error(name, exc.message)
        raise CatalogError(f"could not sync `{name}`: {exc.message}") from exc
    before = {t.name: t.status for t in store.list_tools(name)}
    tools = pinning.reconcile(name, store.list_tools(name), live, first_sync=record.synced_at is None, now=now_iso())
    store.record_sync(name, tools, now_iso())
    changed = [t for t in tools if before.get(t.name) != t.status]
    for t in changed:
        if t.status == "quarantined":
            log.warning("tool %s changed upstream and is quarantined until re-blessed", t.exposed_name)
            if audit is not None:
                audit.change("quarantine", name, diff({"status": before.get(t.name), "hash": t.pinned_hash},
                                                      {"status": t.status, "hash": t.live_hash}),
                             tool=t.exposed_name, tool_version=t.pinned_hash)
    others = [t for t in changed if t.status != "quarantined"]
    if audit is not None and others:
        by_action: dict[str, list[str]] = {}
        for t in others:
            by_action.setdefault(_STATUS_ACTIONS.get(t.status, t.status), []).append(t.exposed_name)
        audit.change("sync", name, by_action)
    return SyncReport(name, dict(Counter(t.status for t in tools)), [t.exposed_name for t in changed])


async def bless_server(store: Store, pool: UpstreamPool, spec: UpstreamConfig,
                       audit: AdminAudit | None = None) -> SyncReport:
    """Add a server (source `cli`) and pin what it offers now. Nothing is written if it cannot be reached."""
    if store.get_server(spec.name) is not None:
        raise CatalogError(f"server `{spec.name}` is already blessed; use `interlock servers sync {spec.name}`")
    try:
        live = await pool.list_tools(spec)
    except UpstreamError as exc:
        raise CatalogError(f"could not reach `{spec.name}` to bless it: {exc.message}") from exc
    store.put_server(ServerRecord(spec=spec, source="cli"))
    tools = pinning.reconcile(spec.name, [], live, first_sync=True, now=now_iso())
    store.record_sync(spec.name, tools, now_iso())
    if audit is not None:
        audit.change("bless_server", spec.name, {"pinned": {t.exposed_name: t.pinned_hash for t in tools}})
    return SyncReport(spec.name, dict(Counter(t.status for t in tools)), [t.exposed_name for t in tools])


def bless_tools(store: Store, exposed_names: list[str], audit: AdminAudit | None = None) -> list[ToolRecord]:
    """Accept the upstream's current definition of each named tool (`server.tool`)."""
    by_name = {t.exposed_name: t for t in store.list_tools()}
    blessed: list[ToolRecord] = []
    problems: list[str] = []
    for exposed in exposed_names:
        tool = by_name.get(exposed)
        if tool is None:
            problems.append(f"no tool `{exposed}`; see `interlock tools list`")
            continue
        try:
            blessed.append(pinning.bless(tool, now_iso()))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise CatalogError("; ".join(problems))
    for tool in blessed:
        store.put_tool(tool)
        if audit is not None:
            old = by_name[tool.exposed_name]
            audit.change("bless", tool.server, diff({"status": old.status, "hash": old.pinned_hash},
                                                    {"status": tool.status, "hash": tool.pinned_hash}),
                         tool=tool.exposed_name, tool_version=tool.pinned_hash)
    return blessed
