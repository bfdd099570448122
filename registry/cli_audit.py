"""``interlock audit tail|query|export|verify|prune|key``, and the CLI's admin changes as audit events.

The trail is the file the config's ``audit.database`` names (``interlock audit -c FILE ...``),
``--audit-db PATH``, or `interlock-audit.db` here. Reading opens it without creating a signing
key; ``export`` and ``prune`` need the key (beside the database, or ``audit.signing_key_file``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from executor.audit import AuditQuery, AuditRecord, VerifyReport, diff
from executor.audit_export import export_lines, public_key_from, verify_export
from executor.audit_recorder import Actor, AdminAudit, Recorder, now_iso
from executor.errors import InterlockError
from executor.principal import User
from registry.audit_store import SQLiteAuditLog, open_configured, retention_cutoff
from registry.config import AuditConfig, Config, load_config
from registry.records import AccessPolicy
from registry.store import ApplyReport, Store

CLI_ACTOR = "interlock-cli"
SHOWN_KINDS = {"gateway", "setting", "issuer"}
"""Config kinds whose values an apply diff shows in full; others show changed fields as digests."""
SERVER_SECRETS = ("url", "command", "env")
"""Upstream fields that may carry secrets (tokens in URLs or argv, keys in the environment)."""


# --------------------------------------------------------------------------- admin changes


def cli_actor() -> Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(CLI_ACTOR, User("local", who))


@contextmanager
def admin_audit(args: argparse.Namespace, config: AuditConfig | None = None) -> Iterator[AdminAudit]:
    """Record this command's admin changes (opened before the change, so an unusable trail
    stops the command before it changes anything)."""
    trail = open_configured(config or AuditConfig(), database=args.audit_db)
    try:
        yield Recorder(trail).admin(cli_actor())
    finally:
        trail.close()


def apply_audited(store: Store, config: Config, audit: AdminAudit) -> ApplyReport:
    """``store.apply_config(config)``, recorded as one `apply` event whose diff shows, per
    changed item, each changed field before and after (secret-bearing fields as digests)."""
    before = _config_items(store.list_issuers(), store.list_servers(), store.list_gateways(),
                           store.get_access_policy())
    report = store.apply_config(config)
    if report.changes:
        after: dict[tuple[str, str], Any] = {("issuer", i.issuer): i for i in config.identity.issuers}
        after |= {("server", u.name): u for u in config.upstreams}
        after |= {("gateway", g.name): g for g in config.gateways}
        after[("setting", "access")] = AccessPolicy(user_grants=config.identity.user_grants,
                                                    admin=config.identity.admin, policy=config.policy)
        changes = []
        for c in report.changes:
            old, new = before.get((c.kind, c.name)), after.get((c.kind, c.name))
            old_plain = msgspec.to_builtins(old) if old is not None else None
            new_plain = msgspec.to_builtins(new) if new is not None else None
            fields = set(old_plain or {}) | set(new_plain or {})
            secret = () if c.kind in SHOWN_KINDS else SERVER_SECRETS if c.kind == "server" else fields
            changes.append({"kind": c.kind, "name": c.name, "action": c.action,
                            "fields": diff(old_plain, new_plain, secret)})
        audit.change("apply", "config", changes)
    return report


def _config_items(issuers: list[Any], servers: list[Any], gateways: list[Any],
                  access: AccessPolicy) -> dict[tuple[str, str], Any]:
    items: dict[tuple[str, str], Any] = {("issuer", i.spec.issuer): i.spec for i in issuers}
    items |= {("server", s.name): s.spec for s in servers}
    items |= {("gateway", g.name): g.spec for g in gateways}
    items[("setting", "access")] = access
    return items


# --------------------------------------------------------------------------- reading


def _config(args: argparse.Namespace) -> AuditConfig:
    return load_config(args.config, known_servers=None).audit if args.config else AuditConfig()


def _open(args: argparse.Namespace, *, signing: bool = False) -> SQLiteAuditLog:
    path = args.audit_db or _config(args).database
    if not signing and not Path(path).exists():
        raise InterlockError(f"no audit trail at `{path}`; give `--audit-db PATH` or `interlock audit -c CONFIG`")
    return open_configured(_config(args), database=args.audit_db, create_key=signing)


_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> str:
    """`30m`, `2h`, `7d` ago; or an ISO 8601 date or time (UTC unless it says otherwise)."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative:
        when = (now or datetime.now(UTC)) - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InterlockError(f"`{text}` is not a time; write e.g. `2h`, `7d`, `2026-12-01` or "
                                 "`2026-12-01T09:30:00+01:00`") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="microseconds")


def _query(args: argparse.Namespace, *, limit: int | None, newest_first: bool) -> AuditQuery:
    issuer, subject = None, args.user
    if args.user and "#" in args.user and "://" in args.user.partition("#")[0]:
        issuer, _, subject = args.user.partition("#")
    return AuditQuery(agent=args.agent, user=subject, issuer=issuer, gateway=args.gateway, tool=args.tool,
                      decision=args.decision, kind=args.kind, request_id=args.request,
                      since=parse_time(args.since) if args.since else None,
                      until=parse_time(args.until) if args.until else None, limit=limit, newest_first=newest_first)


def _show(records: list[AuditRecord], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(records)).decode() + "\n")
        return
    from registry.cli import _table

    rows = []
    for r in records:
        e = r.event
        user = e.user_subject or ""
        what = e.tool or (f"skill {e.skill}" if e.skill else "") or e.target or ""
        rows.append([str(r.seq), e.time[:19].replace("T", " "), e.kind, e.agent or "", user, e.gateway or "", what,
                     e.decision or e.action or "", e.reason or "", e.outcome or "",
                     "" if e.latency_ms is None else f"{e.latency_ms:.1f}"])
    _table(rows, ["SEQ", "TIME (UTC)", "KIND", "AGENT", "USER", "GATEWAY", "TOOL", "DECISION", "REASON", "OUTCOME",
                  "MS"])


def cmd_tail(args: argparse.Namespace) -> int:
    with _open(args) as trail:
        records = trail.query(_query(args, limit=args.n, newest_first=True))
    _show(list(reversed(records)), args.json)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    with _open(args) as trail:
        records = trail.query(_query(args, limit=args.limit, newest_first=False))
    _show(records, args.json)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    with _open(args, signing=True) as trail:
        if trail.key is None:
            raise InterlockError("export needs the audit signing key; run it where the key is")
        lines = export_lines(trail.segment(since, until), trail.key, since=since, until=until, exported_at=now_iso())
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
        try:
            for line in lines:
                out.write(line + "\n")
        finally:
            if out is not sys.stdout:
                out.close()
    return 0


def _keys(args: argparse.Namespace) -> dict[str, bytes] | None:
    if not args.public_key:
        return None
    from executor.audit_chain import key_id

    keys = {}
    for path in args.public_key:
        try:
            raw = public_key_from(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InterlockError(f"cannot read the public key `{path}`: {exc}") from exc
        keys[key_id(raw)] = raw
    return keys


def cmd_verify(args: argparse.Namespace) -> int:
    keys = _keys(args)
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                report = verify_export(f, keys)
        except OSError as exc:
            raise InterlockError(f"cannot read `{args.file}`: {exc.strerror or exc}") from exc
    else:
        with _open(args) as trail:
            if keys is None and trail.key is None:
                raise InterlockError("the signing key is not here; give the trail's public key with `--public-key`")
            report = trail.verify(keys)
    print(describe(report))
    return 0 if report.ok else 1


def describe(report: VerifyReport) -> str:
    if report.broken is not None:
        b = report.broken
        return f"broken at seq {b.seq} ({b.kind}): {b.message}"
    if not report.events:
        return "ok: no events"
    vouched = f"signed through seq {report.vouched_through}" if report.vouched_through else "no checkpoint yet"
    return (f"ok: {report.events} events, seq {report.first_seq} to {report.last_seq}, "
            f"{report.checkpoints} checkpoint(s), {vouched}")


def cmd_prune(args: argparse.Namespace) -> int:
    days = args.days if args.days is not None else _config(args).retention_days
    if days <= 0:
        raise InterlockError("retention is off (`audit.retention_days: 0`); give `--days N`")
    with _open(args, signing=True) as trail:
        report = trail.prune(retention_cutoff(days))
    print(f"deleted {report.deleted} events" + (f", through seq {report.through_seq}" if report.through_seq else ""))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    with _open(args, signing=True) as trail:
        if trail.key is None:
            raise InterlockError("the signing key is not here")
        pem = trail.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        print(f"# key id {next(iter(trail.public_keys))}\n{pem}", end="")
    return 0


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--agent")
    p.add_argument("--user", help="subject, or issuer#subject")
    p.add_argument("--gateway")
    p.add_argument("--tool")
    p.add_argument("--decision", choices=["allow", "deny"])
    p.add_argument("--kind", help="decision, intent, outcome, admin_change, ...")
    p.add_argument("--request", help="a request id")
    p.add_argument("--since", help="`2h`, `7d`, or an ISO 8601 date or time")
    p.add_argument("--until")
    p.add_argument("--json", action="store_true")


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="read, export and verify the audit trail")
    audit.add_argument("-c", "--config", help="config file whose `audit` section to use")
    verbs = audit.add_subparsers(dest="verb", required=True)
    t = verbs.add_parser("tail", help="the newest events")
    t.add_argument("-n", type=int, default=20, help="how many (default 20)")
    _filters(t)
    t.set_defaults(fn=cmd_tail)
    q = verbs.add_parser("query", help="events matching filters, oldest first")
    q.add_argument("--limit", type=int, default=1000)
    _filters(q)
    q.set_defaults(fn=cmd_query)
    e = verbs.add_parser("export", help="a range of events with its checkpoints, verifiable on its own")
    e.add_argument("--since")
    e.add_argument("--until")
    e.add_argument("--format", choices=["jsonl"], default="jsonl")
    e.add_argument("-o", "--output", help="file to write (default: standard output)")
    e.set_defaults(fn=cmd_export)
    v = verbs.add_parser("verify", help="walk the hash chain and checkpoints; name the first broken link")
    v.add_argument("--file", help="verify this export instead of the database")
    v.add_argument("--public-key", action="append", help="trusted public key (PEM); repeatable")
    v.set_defaults(fn=cmd_verify)
    pr = verbs.add_parser("prune", help="delete old events, up to a checkpoint")
    pr.add_argument("--days", type=int, help="keep this many days (default: audit.retention_days)")
    pr.set_defaults(fn=cmd_prune)
    k = verbs.add_parser("key", help="print the checkpoint signing key's public half (PEM), to pin it")
    k.set_defaults(fn=cmd_key)
