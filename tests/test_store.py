"""The SQLite store, on real files: migrations, apply_config, generation, sync, two openers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from executor.errors import SchemaTooNewError, StoreError
from registry.config import Config, GatewayConfig, IdentityConfig, IssuerConfig, UpstreamConfig, UserGrant
from registry.migrations import MIGRATIONS, Migration, migrate, stored_version
from registry.records import AccessPolicy, GatewayRecord, IssuerRecord, ServerRecord, ToolRecord
from registry.sqlite_store import SQLiteStore, open_store
from registry.store import ApplyReport, Change, Store

MAIL = UpstreamConfig(name="mail", url="https://mail.example.com/mcp")
CRM = UpstreamConfig(name="crm", command=["crm-mcp", "--stdio"], env={"CRM_REGION": "eu"})
ISSUER = IssuerConfig(issuer="https://login.example.com")
CODING = GatewayConfig(name="coding", agents={"cursor": ["mail.*"]})
CONFIG = Config(
    identity=IdentityConfig(issuers=[ISSUER]),
    upstreams=[MAIL, CRM],
    gateways=[CODING, GatewayConfig(name="sales")],
)


def tool(server: str, name: str, status: str = "pinned") -> ToolRecord:
    return ToolRecord(
        server=server,
        name=name,
        definition={"name": name, "inputSchema": {"type": "object", "properties": {"b": {}, "a": {}}}},
        pinned_hash=f"sha256:{server}.{name}",
        status=status,  # type: ignore[arg-type]
        updated_at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with open_store(tmp_path / "interlock.db") as s:
        yield s


def test_sqlite_store_is_a_store(store: SQLiteStore) -> None:
    _: Store = store


# -- migrations


def test_a_new_file_is_migrated_to_the_latest_schema(tmp_path: Path, store: SQLiteStore) -> None:
    assert store.schema_version() == len(MIGRATIONS)
    assert store.generation() == 0
    assert set(store.db.table_names()) >= {
        "schema_migrations",
        "meta",
        "issuers",
        "servers",
        "tools",
        "gateways",
    }
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_versions_count_up_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_an_older_database_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(path)
    assert migrate(old, MIGRATIONS[:1]) == 1
    old.execute(
        "INSERT INTO servers (name, spec, source) VALUES (?, ?, ?)",
        ["mail", '{"name":"mail","url":"https://mail.example.com/mcp"}', "cli"],
    )
    old.execute("UPDATE meta SET value = 7 WHERE key = 'generation'")
    old.close()

    with open_store(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.list_servers() == [ServerRecord(spec=MAIL, source="cli")]
        assert store.generation() == 7
        store.record_sync("mail", [tool("mail", "read")], "2026-01-02T00:00:00Z")  # the new table works
        assert store.list_tools() == [tool("mail", "read")]


def test_each_migration_commits_on_its_own(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.db")
    broken = [
        *MIGRATIONS,
        Migration(len(MIGRATIONS) + 1, "fine", ("CREATE TABLE fine (x INTEGER)",)),
        Migration(len(MIGRATIONS) + 2, "broken", ("CREATE TABLE half (x INTEGER)", "NOT SQL")),
    ]
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, broken)
    assert stored_version(db) == len(MIGRATIONS) + 1
    assert "fine" in db.table_names()
    assert "half" not in db.table_names()  # the failed migration rolled back whole


def test_a_database_from_a_newer_interlock_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    future = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", ("CREATE TABLE future (x INTEGER)",))]
    open_store(path, migrations=future).close()
    with pytest.raises(SchemaTooNewError) as info:
        open_store(path)
    assert info.value.code == "schema_too_new"
    assert info.value.message == (
        f"database `{path}` was written by a newer interlock (schema {len(future)}, this one knows "
        f"{len(MIGRATIONS)}); upgrade interlock"
    )


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        open_store(path)
    assert info.value.code == "store_error"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_a_corrupt_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        open_store(path)
    assert type(info.value) is StoreError
    assert path.read_bytes() == before


def test_a_sqlite_file_of_another_application_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE invoices (id INTEGER)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(StoreError):
        open_store(path)
    assert path.read_bytes() == before


# -- apply_config


def test_apply_adds_everything_then_is_idempotent(store: SQLiteStore) -> None:
    assert store.apply_config(CONFIG) == ApplyReport(
        [
            Change("issuer", "https://login.example.com", "added"),
            Change("server", "mail", "added"),
            Change("server", "crm", "added"),
            Change("gateway", "coding", "added"),
            Change("gateway", "sales", "added"),
            Change("setting", "access", "added"),
        ]
    )
    generation = store.generation()
    assert generation == 1

    assert store.apply_config(CONFIG) == ApplyReport([])
    assert store.generation() == generation

    assert store.list_issuers() == [IssuerRecord(spec=ISSUER, source="config")]
    assert store.list_servers() == [
        ServerRecord(spec=CRM, source="config"),
        ServerRecord(spec=MAIL, source="config"),
    ]
    assert store.list_gateways() == [
        GatewayRecord(spec=CODING, source="config"),
        GatewayRecord(spec=GatewayConfig(name="sales"), source="config"),
    ]


def test_apply_reports_a_changed_entry(store: SQLiteStore) -> None:
    store.apply_config(CONFIG)
    changed = UpstreamConfig(name="mail", url="https://mail.example.com/mcp", timeout_seconds=5.0)
    report = store.apply_config(
        Config(identity=CONFIG.identity, upstreams=[changed, CRM], gateways=CONFIG.gateways)
    )
    assert report == ApplyReport([Change("server", "mail", "changed")])
    assert store.get_server("mail") == ServerRecord(spec=changed, source="config")
    assert store.generation() == 2


def test_apply_removes_an_entry_and_a_removed_servers_tools(store: SQLiteStore) -> None:
    store.apply_config(CONFIG)
    store.record_sync("mail", [tool("mail", "read")], "2026-01-02T00:00:00Z")
    store.record_sync("crm", [tool("crm", "search")], "2026-01-02T00:00:00Z")

    report = store.apply_config(Config(upstreams=[CRM], gateways=[CODING]))

    assert report == ApplyReport(
        [
            Change("issuer", "https://login.example.com", "removed"),
            Change("server", "mail", "removed"),
            Change("gateway", "sales", "removed"),
        ]
    )
    assert store.list_issuers() == []
    assert store.get_server("mail") is None
    assert [s.name for s in store.list_servers()] == ["crm"]
    assert store.list_tools() == [tool("crm", "search")]
    assert [g.name for g in store.list_gateways()] == ["coding"]


def test_apply_leaves_cli_rows_alone(store: SQLiteStore) -> None:
    github = ServerRecord(spec=UpstreamConfig(name="github", url="https://gh.example.com/mcp"), source="cli")
    store.put_server(github)
    store.record_sync("github", [tool("github", "search")], "2026-01-02T00:00:00Z")
    synced = store.get_server("github")

    store.apply_config(CONFIG)
    store.apply_config(Config())

    assert store.list_servers() == [synced]
    assert store.list_tools() == [tool("github", "search")]


def test_a_config_entry_takes_over_a_cli_row_of_the_same_name(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    report = store.apply_config(Config(upstreams=[MAIL]))
    assert report == ApplyReport([Change("server", "mail", "changed"), Change("setting", "access", "added")])
    assert store.get_server("mail") == ServerRecord(spec=MAIL, source="config")
    assert store.apply_config(Config()) == ApplyReport([Change("server", "mail", "removed")])


def test_key_order_in_the_file_is_not_a_change(store: SQLiteStore) -> None:
    two = {"a": ["mail.*"], "b": ["crm.*"]}
    store.apply_config(Config(gateways=[GatewayConfig(name="g", agents=two)]))
    reordered = GatewayConfig(name="g", agents=dict(reversed(two.items())))
    assert store.apply_config(Config(gateways=[reordered])) == ApplyReport([])


# -- generation and writes


def test_every_write_bumps_the_generation(store: SQLiteStore) -> None:
    seen = [store.generation()]

    def wrote() -> None:
        seen.append(store.generation())
        assert seen[-1] == seen[-2] + 1

    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    wrote()
    store.put_tool(tool("mail", "read"))
    wrote()
    store.record_sync("mail", [tool("mail", "send")], "2026-01-02T00:00:00Z")
    wrote()
    store.record_sync_error("mail", "connection refused")
    wrote()
    store.apply_config(Config(gateways=[CODING]))
    wrote()
    assert store.delete_server("mail") is True
    wrote()
    assert store.delete_server("mail") is False
    assert store.generation() == seen[-1]


def test_a_failed_write_changes_nothing(store: SQLiteStore) -> None:
    generation = store.generation()
    with pytest.raises(StoreError):
        store.record_sync("nosuch", [tool("nosuch", "x")], "2026-01-02T00:00:00Z")
    with pytest.raises(StoreError):
        store.put_tool(tool("nosuch", "x"))
    assert store.generation() == generation
    assert store.list_tools() == []


def test_record_sync_replaces_the_servers_tools_and_clears_the_error(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    store.put_server(ServerRecord(spec=CRM, source="cli"))
    store.record_sync("crm", [tool("crm", "search")], "2026-01-01T00:00:00Z")
    store.record_sync("mail", [tool("mail", "read"), tool("mail", "send")], "2026-01-01T00:00:00Z")
    store.record_sync_error("mail", "connection refused")
    assert store.get_server("mail") == ServerRecord(
        spec=MAIL, source="cli", synced_at="2026-01-01T00:00:00Z", last_error="connection refused"
    )

    store.record_sync(
        "mail", [tool("mail", "read", "quarantined"), tool("mail", "archive")], "2026-01-02T00:00:00Z"
    )

    assert store.list_tools("mail") == [tool("mail", "archive"), tool("mail", "read", "quarantined")]
    assert store.list_tools("crm") == [tool("crm", "search")]
    assert store.get_server("mail") == ServerRecord(spec=MAIL, source="cli", synced_at="2026-01-02T00:00:00Z")


def test_tool_definitions_round_trip_with_their_key_order(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    live = ToolRecord(
        server="mail",
        name="read",
        definition={"name": "read", "inputSchema": {"properties": {"z": {}, "a": {}}}},
        pinned_hash="h1",
        status="quarantined",
        live_definition={"name": "read", "description": "new"},
        live_hash="h2",
    )
    store.put_tool(live)
    [back] = store.list_tools()
    assert back == live
    assert list(back.definition["inputSchema"]["properties"]) == ["z", "a"]


def test_delete_server_removes_its_tools(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    store.put_server(ServerRecord(spec=CRM, source="cli"))
    store.record_sync("mail", [tool("mail", "read")], "2026-01-01T00:00:00Z")
    store.record_sync("crm", [tool("crm", "search")], "2026-01-01T00:00:00Z")
    assert store.delete_server("mail") is True
    assert store.list_tools() == [tool("crm", "search")]
    assert store.get_server("mail") is None


def test_the_generation_read_is_one_select(store: SQLiteStore) -> None:
    statements: list[str] = []
    with store.db.tracer(lambda sql, params: statements.append(sql)):
        store.generation()
    assert statements == ["SELECT value FROM meta WHERE key = 'generation'"]


# -- concurrency


def test_two_openers_of_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with open_store(path) as server_process, open_store(path) as cli:
        before = server_process.generation()
        cli.put_server(ServerRecord(spec=MAIL, source="cli"))
        assert server_process.generation() == before + 1
        assert server_process.get_server("mail") == ServerRecord(spec=MAIL, source="cli")
        server_process.apply_config(Config(gateways=[CODING]))
        assert cli.generation() == before + 2
        assert cli.list_gateways() == [GatewayRecord(spec=CODING)]


def test_threads_may_share_one_store(store: SQLiteStore) -> None:
    store.put_server(ServerRecord(spec=MAIL, source="cli"))
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                store.put_tool(tool("mail", f"t{i}_{j}"))
                store.generation()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(store.list_tools("mail")) == 80
    assert store.generation() == 81


def test_the_access_policy_round_trips_and_a_change_is_reported(store: SQLiteStore) -> None:
    assert store.get_access_policy() == AccessPolicy()
    grants = [UserGrant(role="Mail.Read", tools=["mail.read_*"])]
    store.apply_config(Config(identity=IdentityConfig(user_grants=grants)))
    assert store.get_access_policy() == AccessPolicy(user_grants=grants)
    before = store.generation()
    assert store.apply_config(Config()) == ApplyReport([Change("setting", "access", "changed")])
    assert store.get_access_policy() == AccessPolicy()
    assert store.generation() == before + 1
