"""``interlock connections list|revoke``: the third-party connections held per (agent, user, provider)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import anyio
import httpx2
import msgspec

from executor.audit import AuditUnavailableError
from executor.audit_recorder import Recorder
from executor.connections import ConnectionRow
from executor.errors import InterlockError
from executor.principal import User
from executor.sealing import VaultKeyError
from registry.audit_store import open_configured
from registry.config import AuditConfig, VaultConfig
from registry.sqlite_store import open_store
from registry.store import Store
from registry.vault_setup import build_vault


def _matches(row: ConnectionRow, args: argparse.Namespace) -> bool:
    user = args.user
    if user is not None and user not in (row.key.subject, f"{row.key.issuer}#{row.key.subject}"):
        return False
    return (args.agent is None or row.key.agent == args.agent) and (args.provider is None
                                                                   or row.key.provider == args.provider)


def _selected(store: Store, args: argparse.Namespace) -> list[ConnectionRow]:
    return [r for r in store.list_connections() if _matches(r, args)]


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args.db or "interlock.db")
    try:
        rows = _selected(store, args)
    finally:
        store.close()
    if args.json:
        # Never the sealed tokens: who, which provider, which scopes, when.
        print(msgspec.json.encode([{**msgspec.to_builtins(r.key), "scopes": r.scopes, "expires_at": r.expires_at,
                                    "created_at": r.created_at, "refreshed_at": r.refreshed_at}
                                   for r in rows]).decode())
        return 0
    from registry.cli import _table

    _table([[r.key.agent, f"{r.key.issuer}#{r.key.subject}", r.key.provider, " ".join(r.scopes), r.refreshed_at]
            for r in rows], ["AGENT", "USER", "PROVIDER", "SCOPES", "REFRESHED"])
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    if not (args.agent or args.user or args.provider or args.all):
        raise InterlockError("say which connections: `--agent`, `--user`, `--provider` (any combination) or `--all`")
    db = args.db or "interlock.db"
    store = open_store(db)

    try:
        trail = open_configured(AuditConfig(), database=args.audit_db)
    except AuditUnavailableError as exc:
        # A revocation must always be possible: it only ever takes power away.
        print(f"warning: {exc.message}; this revocation will not be in the audit trail", file=sys.stderr)
        trail = None
    audit = Recorder(trail) if trail is not None else None

    async def run() -> list[Any]:
        async with httpx2.AsyncClient() as http:
            try:
                vault = build_vault(store, base_url="http://unused", env=os.environ, config=VaultConfig(),
                                    database=db, http=http, generate_key=False, audit=audit)
            except (VaultKeyError, InterlockError) as exc:
                # Without the vault key the tokens cannot be read to revoke them at the provider;
                # deleting them still stops every call here.
                print(f"warning: {exc.message}; the provider will not be told", file=sys.stderr)
                vault = None
            done = []
            for row in _selected(store, args):
                if vault is not None and await vault.revoke(row.key):
                    done.append(row.key)
                elif vault is None and store.delete_connection(row.key):
                    store.delete_flows(row.key)
                    done.append(row.key)
                    if audit is not None:
                        audit.connection_changed("revoked", agent=row.key.agent, provider=row.key.provider,
                                                 user=User(row.key.issuer, row.key.subject), reason="revoked_by_admin")
            return done

    try:
        revoked = anyio.run(run)
    finally:
        store.close()
        if trail is not None:
            trail.close()
    for key in revoked:
        print(f"revoked  {key.agent}  {key.issuer}#{key.subject}  {key.provider}")
    if not revoked:
        print("no matching connections")
    return 0


def register(sub: Any) -> None:
    conns = sub.add_parser("connections", help="third-party connections per (agent, user, provider)")
    verbs = conns.add_subparsers(dest="verb", required=True)
    for name, fn, help_text in (("list", cmd_list, "show connections (never their tokens)"),
                                ("revoke", cmd_revoke, "delete connections and revoke them at the provider")):
        p = verbs.add_parser(name, help=help_text)
        p.add_argument("--agent")
        p.add_argument("--user", help="subject, or issuer#subject")
        p.add_argument("--provider")
        if name == "list":
            p.add_argument("--json", action="store_true")
        else:
            p.add_argument("--all", action="store_true", help="every connection")
        p.set_defaults(fn=fn)
