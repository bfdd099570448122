"""The benchmarked installation: a realistic gateway configuration, built deterministically.

50 agents bound to one gateway, 1,000 users of the embedded issuer holding roles, 10 upstreams
of 500 tools each (5,000 tools), user grants by role and a few policy rules. The measured
principal is ``agent-00`` acting for ``user-0000``: granted the benchmarked tools (``srv0.echo``,
``srv0.record``) on both sides, and about 2,900 of the 5,000 tools in all, so its listing walks
some 30 pages. Every other agent and user gets random grants, as in ``bench/decision.py``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench.upstream import VERBS

GATEWAY = "default"
AGENT = "agent-00"
USER = "user-0000"
SCOPES = ["actions:destructive"]
"""The measured token's scopes (so destructive tools are not held back by the step-up rule)."""

SERVERS = 10
TOOLS_PER_SERVER = 500
AGENTS = 50
USERS = 1000
ROLES = 40

ECHO = "echo"
RECORD = "record"
MEASURED_SERVER = "srv0"


def server_names(servers: int = SERVERS) -> list[str]:
    return [f"srv{i}" for i in range(servers)]


def gateway_config(*, port: int, workdir: Path, upstream_port: int, password_hash: str, servers: int = SERVERS,
                   agents: int = AGENTS, users: int = USERS, seed: int = 7,
                   skills: list[str] | None = None) -> dict[str, Any]:
    """The config file (as data) for ``interlock serve``: SQLite in ``workdir``, dev mode, embedded issuer.

    ``password_hash`` is used for every user: scrypt costs ~0.07 s per hash, so hashing 1,000
    users would take over a minute and measures nothing the benchmark is about."""
    rng = random.Random(seed)
    names = server_names(servers)
    role_names = [f"Role.r{r:02d}" for r in range(ROLES)]
    user_grants: list[dict[str, Any]] = [
        {"role": "Role.staff", "tools": [f"{s}.*" for s in names[:5]]},
        {"role": "Role.analyst", "tools": ["*.read_*", "*.list_*", "*.search_*", "*.export_*"]},
        *({"role": r, "tools": [f"{rng.choice(names)}.{rng.choice(VERBS)}_*", f"{rng.choice(names)}.*"]}
          for r in role_names),
    ]
    agent_grants: dict[str, list[str]] = {
        AGENT: [f"{s}.*" for s in names[:4]] + ["*.read_*", "*.search_*", "*.list_*"],
    }
    for a in range(1, agents):
        agent_grants[f"agent-{a:02d}"] = [f"{rng.choice(names)}.*", f"*.{rng.choice(VERBS)}_*",
                                          f"{rng.choice(names)}.read_*"]
    accounts = [{"username": USER, "password_hash": password_hash,
                 "claims": {"roles": ["Role.staff", "Role.analyst", *rng.sample(role_names, 2)]}}]
    for u in range(1, users):
        roles = rng.sample(role_names, rng.randint(1, 4)) + (["Role.staff"] if u % 5 == 0 else [])
        accounts.append({"username": f"user-{u:04d}", "password_hash": password_hash, "claims": {"roles": roles}})
    base = f"http://127.0.0.1:{port}"
    gateway: dict[str, Any] = {"name": GATEWAY, "description": "The benchmarked gateway.", "agents": agent_grants}
    if skills:
        gateway["skills"] = skills
    return {
        "server": {"host": "127.0.0.1", "port": port, "database": str(workdir / "interlock.db"), "dev_mode": True,
                   "sync_interval_seconds": 0},
        "identity": {
            "embedded": {
                "enabled": True,
                "users": accounts,
                "clients": [{"client_id": a, "name": a, "redirect_uris": [f"{base}/callback/{a}"]}
                            for a in agent_grants],
                "access_token_ttl_seconds": 3600,
            },
            "user_grants": user_grants,
        },
        "upstreams": [{"name": s, "url": f"http://127.0.0.1:{upstream_port}/mcp/{i}", "timeout_seconds": 30}
                      for i, s in enumerate(names)],
        "gateways": [gateway],
        "policy": {"rules": [
            {"annotations": {"destructiveHint": True}, "require_scope": "actions:destructive",
             "description": "destructive tools need a step-up"},
            {"tools": [f"{names[-1]}.admin_*"], "deny": True, "description": "nobody administers the last server"},
            {"tools": ["*.delete_*"], "agents": [f"agent-{a:02d}" for a in range(25, agents)], "deny": True,
             "description": "half the agents never delete"},
        ]},
        "audit": {"database": str(workdir / "audit.db")},
    }
