"""``interlock skills validate|publish|list|show|versions|yank|export|import`` and ``interlock runs list|show``.

Exit codes: 1 for invalid input (every problem is printed as `file:line:col: message`),
3 for an internal failure (see registry/cli.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from executor.errors import InterlockError
from executor.skill_format import SkillError
from registry import agent_skills, skill_registry
from registry.skill_validate import validate_paths
from registry.sqlite_store import open_store
from registry.store import Store


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Store]:
    store = open_store(args.db or "interlock.db")
    try:
        yield store
    finally:
        store.close()


def cmd_validate(args: argparse.Namespace) -> int:
    with _store(args) as store:
        known = None if args.offline else skill_registry.known_tools_from_store(store)
        problems = validate_paths(args.paths, known_tools=known)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(args.paths)} path(s) valid")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    with _store(args) as store:
        for path in args.paths:
            try:
                version = skill_registry.publish(store, path)
            except SkillError as exc:
                for problem in exc.problems:
                    print(problem, file=sys.stderr)
                return 1
            verb = "published" if version.created else "unchanged"
            print(f"{verb} {version.name}@{version.version} {version.digest[:19]}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        found = skill_registry.list_skills(store, include_yanked=args.all)
    from registry.cli import _table

    _table([[v.name, v.version, "yanked" if v.yanked else "", v.skill.description[:60]] for v in found],
           ["NAME", "VERSION", "", "DESCRIPTION"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        version = skill_registry.show(store, args.name, args.version)
    print(agent_skills.render_skill_md(version) if args.markdown else version.source)
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    with _store(args) as store:
        for v in skill_registry.versions(store, args.name):
            print(f"{v.version}  {v.digest[:19]}  {v.published_at}  {'yanked ' + v.yanked_at if v.yanked_at else ''}")
    return 0


def cmd_yank(args: argparse.Namespace) -> int:
    with _store(args) as store:
        v = skill_registry.yank(store, args.name, args.version)
        print(f"yanked {v.name}@{v.version}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        print(agent_skills.export_skill(skill_registry.show(store, args.name, args.version), args.folder))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    sys.stdout.write(agent_skills.import_skill(args.folder))
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        runs = store.list_runs(limit=args.limit)
    from registry.cli import _table

    _table([[r.id, f"{r.skill}@{r.version}", r.status, f"{r.issuer}#{r.subject}", r.agent, (r.error or "")[:60]]
            for r in runs], ["RUN", "SKILL", "STATUS", "USER", "AGENT", "ERROR"])
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    with _store(args) as store:
        run = store.get_run(args.run)
        if run is None:
            raise InterlockError(f"no run `{args.run}`; see `interlock runs list`")
        steps = store.run_steps(run.id)
    print(msgspec.json.format(msgspec.json.encode({"run": run, "steps": steps})).decode())
    return 0


def register(sub: Any) -> None:
    skills = sub.add_parser("skills", help="declarative skills").add_subparsers(dest="verb", required=True)
    p = skills.add_parser("validate", help="check skill files; every problem as file:line:col")
    p.add_argument("paths", nargs="+")
    p.add_argument("--offline", action="store_true", help="do not check tools against the blessed catalogue")
    p.set_defaults(fn=cmd_validate)
    p = skills.add_parser("publish", help="store skill versions (immutable once published)")
    p.add_argument("paths", nargs="+")
    p.set_defaults(fn=cmd_publish)
    p = skills.add_parser("list")
    p.add_argument("--all", action="store_true", help="include skills whose versions are all yanked")
    p.set_defaults(fn=cmd_list)
    p = skills.add_parser("show")
    p.add_argument("name")
    p.add_argument("--version")
    p.add_argument("--markdown", action="store_true", help="as an Agent Skills SKILL.md")
    p.set_defaults(fn=cmd_show)
    p = skills.add_parser("versions")
    p.add_argument("name")
    p.set_defaults(fn=cmd_versions)
    p = skills.add_parser("yank", help="stop serving a version (kept for audit)")
    p.add_argument("name")
    p.add_argument("version")
    p.set_defaults(fn=cmd_yank)
    p = skills.add_parser("export", help="write an Agent Skills folder (SKILL.md)")
    p.add_argument("name")
    p.add_argument("folder")
    p.add_argument("--version")
    p.set_defaults(fn=cmd_export)
    p = skills.add_parser("import", help="print the skill YAML of an Agent Skills folder")
    p.add_argument("folder")
    p.set_defaults(fn=cmd_import)

    runs = sub.add_parser("runs", help="skill runs").add_subparsers(dest="verb", required=True)
    p = runs.add_parser("list")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_runs_list)
    p = runs.add_parser("show")
    p.add_argument("run")
    p.set_defaults(fn=cmd_runs_show)
