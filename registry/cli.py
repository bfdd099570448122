"""``interlock``: a thin shell over the library. Everything here calls registry/executor code.

Exit codes: 0 success, 1 invalid input or a refused operation (the message says
what to do), 2 usage error, 3 internal failure.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from executor.audit_recorder import Recorder
from executor.errors import ConfigError, InterlockError
from executor.upstream import UpstreamPool
from registry import cli_audit, cli_connections, cli_demo, cli_skills, cli_token
from registry.audit_store import open_configured
from registry.config import Config, UpstreamConfig, check_tool_patterns, default_config, load_config
from registry.sqlite_store import open_store
from registry.store import ApplyReport, Store
from registry.sync import SyncReport, bless_server, bless_tools, sync_server

EXIT_INVALID = 1
EXIT_INTERNAL = 3


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _print_apply(report: ApplyReport) -> None:
    if not report.changes:
        print("no changes")
    for c in report.changes:
        print(f"{c.action:8} {c.kind} {c.name}")


def _print_sync(report: SyncReport) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items())) or "no tools"
    print(f"{report.server}: {counts}")
    for name in report.changed:
        print(f"  changed: {name}")


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.db or "interlock.db")


def _known_servers(args: argparse.Namespace) -> list[str]:
    path = Path(args.db or "interlock.db")
    if not path.exists():
        return []
    store = open_store(path)
    try:
        return [s.name for s in store.list_servers() if s.source == "cli"]
    finally:
        store.close()


def cmd_apply(args: argparse.Namespace) -> int:
    config = load_config(args.file, known_servers=_known_servers(args))
    store = _store(args)
    try:
        with cli_audit.admin_audit(args, config.audit) as audit:
            _print_apply(cli_audit.apply_audited(store, config, audit))
    finally:
        store.close()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from registry.app import build_runtime, create_app

    # Patterns may name CLI-blessed servers, which live in the store the config points at:
    # check them once that store is open.
    config: Config = load_config(args.config, known_servers=None) if args.config else default_config()
    server = config.server
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.db:
        overrides["database"] = args.db
    if overrides:
        server = msgspec.structs.replace(server, **overrides)
        config = msgspec.structs.replace(config, server=server)
    if args.audit_db:
        config = msgspec.structs.replace(config, audit=msgspec.structs.replace(config.audit, database=args.audit_db))
    store = open_store(server.database)
    problems = check_tool_patterns(config, [s.name for s in store.list_servers() if s.source == "cli"])
    if problems:
        raise ConfigError(problems, source=args.config or "the default config")
    # With a file, the file is the truth. Without one, the built-in default seeds an empty
    # store only: it must never wipe what an earlier `interlock apply` put there.
    audit_log = open_configured(config.audit)
    if args.config or not store.list_gateways():
        _print_apply(cli_audit.apply_audited(store, config, Recorder(audit_log).admin(cli_audit.cli_actor())))
    runtime = build_runtime(config, store, audit_log)
    print(f"interlock serving {server.base_url()}/mcp/<gateway>  (store: {server.database})", flush=True)
    uvicorn.run(create_app(runtime), host=server.host, port=server.port, log_level=args.log_level,
                lifespan="on")
    audit_log.close()
    store.close()
    return 0


def _with_pool(fn: Callable[[UpstreamPool], Any]) -> Any:
    async def run() -> Any:
        pool = UpstreamPool()
        try:
            return await fn(pool)
        finally:
            await pool.aclose()

    return anyio.run(run)


def cmd_servers_bless(args: argparse.Namespace) -> int:
    if bool(args.url) == bool(args.command):
        raise InterlockError("give exactly one of `--url URL` or `--command \"CMD ARGS\"`")
    spec = UpstreamConfig(name=args.name, url=args.url, command=shlex.split(args.command) if args.command else None,
                          timeout_seconds=args.timeout)
    store = _store(args)
    try:
        with cli_audit.admin_audit(args) as audit:
            _print_sync(_with_pool(lambda pool: bless_server(store, pool, spec, audit)))
    finally:
        store.close()
    return 0


def cmd_servers_sync(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        names = args.names or [s.name for s in store.list_servers()]

        with cli_audit.admin_audit(args) as audit:
            async def run(pool: UpstreamPool) -> list[SyncReport]:
                return [await sync_server(store, pool, n, audit) for n in names]

            for report in _with_pool(run):
                _print_sync(report)
    finally:
        store.close()
    return 0


def cmd_servers_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        servers = store.list_servers()
        tools = store.list_tools()
    finally:
        store.close()
    if args.json:
        _print_json(servers)
        return 0
    rows = []
    for s in servers:
        target = s.spec.url or shlex.join(s.spec.command or [])
        n = sum(1 for t in tools if t.server == s.name and t.status == "pinned")
        rows.append([s.name, s.source, target, str(n), s.synced_at or "never", s.last_error or ""])
    _table(rows, ["NAME", "SOURCE", "TARGET", "TOOLS", "SYNCED", "LAST ERROR"])
    return 0


def cmd_servers_unbless(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        server = store.get_server(args.name)
        if server is None:
            raise InterlockError(f"no server `{args.name}`; see `interlock servers list`")
        if server.source == "config":
            raise InterlockError(f"server `{args.name}` comes from the config file; remove it there and "
                                 "run `interlock apply`")
        with cli_audit.admin_audit(args) as audit:
            tools = [t.exposed_name for t in store.list_tools(args.name)]
            store.delete_server(args.name)
            audit.change("unbless_server", args.name, {"tools": tools})
        print(f"unblessed {args.name}")
    finally:
        store.close()
    return 0


def cmd_tools_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        tools = [t for t in store.list_tools(args.server)
                 if args.status is None or t.status == args.status]
    finally:
        store.close()
    if args.json:
        _print_json(tools)
        return 0
    label = {"quarantined": "CHANGED upstream (quarantined)", "pending": "new (pending bless)"}
    rows = [[t.exposed_name, label.get(t.status, t.status), t.pinned_hash[:19]] for t in tools]
    _table(rows, ["TOOL", "STATUS", "PINNED"])
    return 0


def cmd_tools_bless(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        with cli_audit.admin_audit(args) as audit:
            for tool in bless_tools(store, args.names, audit):
                print(f"blessed {tool.exposed_name} {tool.pinned_hash[:19]}")
    finally:
        store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="interlock", description="An actions runtime for AI agents.")
    p.add_argument("--db", help="store file (default: interlock.db, or the config's server.database)")
    p.add_argument("--audit-db", help="audit trail file (default: interlock-audit.db, or the config's "
                                      "audit.database)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("-c", "--config", help="config file (default: the built-in default)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--log-level", default="warning")
    s.set_defaults(fn=cmd_serve)

    a = sub.add_parser("apply", help="sync a config file into the store")
    a.add_argument("-f", "--file", required=True)
    a.set_defaults(fn=cmd_apply)

    servers = sub.add_parser("servers", help="blessed upstream MCP servers").add_subparsers(dest="verb", required=True)
    b = servers.add_parser("bless", help="bless an upstream and pin its tools")
    b.add_argument("name")
    b.add_argument("--url", help="streamable-HTTP MCP endpoint")
    b.add_argument("--command", help="stdio MCP server command line")
    b.add_argument("--timeout", type=float, default=30.0, help="seconds per upstream request (default 30)")
    b.set_defaults(fn=cmd_servers_bless)
    sy = servers.add_parser("sync", help="re-read upstream catalogues; changed tools are quarantined")
    sy.add_argument("names", nargs="*")
    sy.set_defaults(fn=cmd_servers_sync)
    ls = servers.add_parser("list")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(fn=cmd_servers_list)
    ub = servers.add_parser("unbless")
    ub.add_argument("name")
    ub.set_defaults(fn=cmd_servers_unbless)

    tools = sub.add_parser("tools", help="pinned tools").add_subparsers(dest="verb", required=True)
    tl = tools.add_parser("list")
    tl.add_argument("--server")
    tl.add_argument("--status", choices=["pinned", "quarantined", "pending", "removed"])
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(fn=cmd_tools_list)
    tb = tools.add_parser("bless", help="accept the upstream's current definition of these tools")
    tb.add_argument("names", nargs="+", metavar="SERVER.TOOL")
    tb.set_defaults(fn=cmd_tools_bless)

    cli_audit.register(sub)
    cli_connections.register(sub)
    cli_token.register(sub)
    cli_demo.register(sub)
    cli_skills.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The SDK logs whole messages (tool arguments) at DEBUG, httpx2 every URL at INFO and authlib
    # issued tokens at DEBUG: never
    # let a verbose root level turn those on.
    for noisy in ("mcp", "httpx2", "httpx", "authlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.fn(args))
    except InterlockError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last resort: say it was us, not the user
        logging.getLogger("interlock").exception("internal failure")
        print(f"internal error: {type(exc).__name__}; this is a bug, please report it", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
