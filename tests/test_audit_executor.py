"""``Executor.call`` and the audit, in process against a real upstream: a full audit disk stops
the call before the upstream, an authorization request and a cancelled call are recorded, and a
lost outcome write does not take the result away."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import msgspec
import pytest

from executor.audit import AuditQuery, AuditUnavailableError, Event, fingerprint
from executor.audit_recorder import Recorder
from executor.call import Executor
from executor.errors import ToolUnavailableError
from executor.policy import GatewayGrants, ToolFacts
from executor.principal import Principal, User
from executor.upstream import UpstreamPool
from executor.vault import AuthorizationRequired
from registry.audit_store import SQLiteAuditLog, open_audit_log
from registry.catalog import CatalogTool, Snapshot, _grant_regex, build_policy
from registry.config import PolicyConfig, UpstreamConfig, UserGrant
from tests.support.gateway import agent
from tests.support.upstream_server import Upstream, start_upstream
from tests.test_audit_store import fill_disk

pytestmark = pytest.mark.anyio

ALICE = Principal("cursor", User("https://idp", "alice"), frozenset(), frozenset({"role:staff"}), token_id="j1")


class World:
    def __init__(self, servers: dict[str, UpstreamConfig], tools: dict[str, str]) -> None:
        entries = {name: CatalogTool(ToolFacts(name, "pinned"), name.split(".")[0], upstream, None)
                   for name, upstream in tools.items()}
        self.snapshot = Snapshot(1, {"default": GatewayGrants("default", {"cursor": _grant_regex(["*.*"])})},
                                 entries, sorted(entries), servers, [],
                                 build_policy([UserGrant(role="staff", tools=["*.*"])], PolicyConfig()))

    def current(self) -> Snapshot:
        return self.snapshot


@pytest.fixture
def counted() -> Iterator[Upstream]:
    with start_upstream(name="counted") as up:
        yield up


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[SQLiteAuditLog]:
    with open_audit_log(tmp_path / "audit.db") as log:
        yield log


async def count_directly(up: Upstream) -> str:
    async with agent(up.url, None) as c:
        return str((await c.call_tool("count", {})).content[0].text)  # type: ignore[union-attr]


async def test_a_full_audit_disk_stops_the_call_before_the_upstream(counted: Upstream,
                                                                    trail: SQLiteAuditLog) -> None:
    world = World({"up": UpstreamConfig(name="up", url=counted.url, timeout_seconds=5)}, {"up.count": "count"})
    pool = UpstreamPool()
    executor = Executor(world, pool, audit=Recorder(trail))
    try:
        assert (await executor.call(ALICE, "default", "up.count", {})).is_error is False  # "1"
        fill_disk(trail)
        with anyio.fail_after(20):
            refused = await executor.call(ALICE, "default", "up.count", {})
        with pytest.raises(ToolUnavailableError):  # a denial is still a denial
            await executor.call(ALICE, "default", "up.nope", {})
    finally:
        await pool.aclose()
    assert refused.is_error is True and "audit_unavailable" in refused.content[0].text  # type: ignore[union-attr]
    assert await count_directly(counted) == "2"  # 1 through the gateway, this one: the refused call never ran


async def test_a_call_needing_authorization_records_its_outcome_and_the_request(trail: SQLiteAuditLog) -> None:
    class Vault:
        providers = {"mail": SimpleNamespace(config=SimpleNamespace(scopes=["mail.read"]))}

        async def credential(self, key: Any, scopes: list[str]) -> str:
            raise AuthorizationRequired("connect mail", url="https://gw/connect/f1", flow_id="flow-secret-1",
                                        provider="mail")

    world = World({"mail": UpstreamConfig(name="mail", url="http://127.0.0.1:9/mcp", provider="mail")},
                  {"mail.read": "read"})
    executor = Executor(world, UpstreamPool(), Vault(), audit=Recorder(trail))  # type: ignore[arg-type]
    with pytest.raises(AuthorizationRequired):
        await executor.call(ALICE, "default", "mail.read", {"id": 1})
    events = [r.event for r in trail.query(AuditQuery(newest_first=False))]
    assert [e.kind for e in events] == ["decision", "intent", "outcome", "authorization_requested"]
    outcome, requested = events[2], events[3]
    assert (outcome.outcome, outcome.provider) == ("authorization_required", "mail")
    assert (requested.provider, requested.target, requested.request_id) == (
        "mail", fingerprint("flow-secret-1"), outcome.request_id)
    assert "flow-secret-1" not in msgspec.json.encode([r for r in trail.records()]).decode()
    assert len({r.seq for r in trail.records()}) == 4 and trail.verify().ok


async def test_a_cancelled_call_is_recorded_as_cancelled(counted: Upstream, trail: SQLiteAuditLog) -> None:
    world = World({"up": UpstreamConfig(name="up", url=counted.url, timeout_seconds=30)}, {"up.hang": "hang"})
    pool = UpstreamPool()
    executor = Executor(world, pool, audit=Recorder(trail))
    try:
        with anyio.move_on_after(1):  # the agent goes away mid-call
            await executor.call(ALICE, "default", "up.hang", {})
    finally:
        await pool.aclose()
    assert [(r.event.kind, r.event.outcome) for r in trail.query(AuditQuery(newest_first=False))] == [
        ("decision", None), ("intent", None), ("outcome", "cancelled")]


class FailingOutcomes:
    """A trail that takes the decision and intent, then refuses the outcome."""

    def __init__(self, inner: SQLiteAuditLog) -> None:
        self.inner = inner

    def append(self, events: Sequence[Event]) -> int:
        if events[0].kind == "outcome":
            raise AuditUnavailableError("disk gone")
        return self.inner.append(events)


async def test_a_lost_outcome_write_does_not_take_the_result_away(counted: Upstream, trail: SQLiteAuditLog) -> None:
    world = World({"up": UpstreamConfig(name="up", url=counted.url, timeout_seconds=5)}, {"up.echo": "echo"})
    pool = UpstreamPool()
    executor = Executor(world, pool, audit=Recorder(FailingOutcomes(trail)))  # type: ignore[arg-type]
    try:
        result = await executor.call(ALICE, "default", "up.echo", {"text": "done"})
    finally:
        await pool.aclose()
    assert result.content[0].text == "done"  # type: ignore[union-attr]
    assert [r.event.kind for r in trail.query(AuditQuery(newest_first=False))] == ["decision", "intent"]
