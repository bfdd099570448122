"""The intersection decision alone: 100 agents, 10,000 users' claim sets, 5,000 tools.

    python -m bench.decision [--decisions N] [--json]

Builds a realistic snapshot in memory (the same ``build_policy`` and ``decide`` the
gateway uses), then times single decisions for random (agent, user, tool) triples.
Reports p50 and p99 per decision in microseconds. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from executor.policy import GatewayGrants, ToolFacts, decide
from executor.principal import Principal, User
from registry.catalog import _grant_regex, build_policy
from registry.config import PolicyConfig, PolicyRule, UserGrant

SERVERS = [f"srv{i}" for i in range(10)]
VERBS = ["list", "read", "search", "create", "update", "delete", "send", "export", "sync", "admin"]


def world(seed: int = 7) -> tuple[GatewayGrants, list[ToolFacts], list[Principal], object]:
    rng = random.Random(seed)
    tools = [ToolFacts(f"{s}.{v}_{i:03d}", "pinned", frozenset({"destructiveHint"} if v in ("delete", "send") else
                                                             {"readOnlyHint"}))
             for s in SERVERS for v in VERBS for i in range(50)]
    agents = {f"agent{a:03d}": [f"{rng.choice(SERVERS)}.*", f"*.{rng.choice(VERBS)}_*", f"{rng.choice(SERVERS)}.read_*"]
              for a in range(100)}
    roles = [f"Role.{r}" for r in range(200)]
    grants = [UserGrant(role=r, tools=[f"{rng.choice(SERVERS)}.{rng.choice(VERBS)}_*",
                                       f"{rng.choice(SERVERS)}.*"]) for r in roles]
    policy = build_policy(grants, PolicyConfig(rules=[
        PolicyRule(annotations={"destructiveHint": True}, require_scope="actions:destructive"),
        PolicyRule(tools=["srv9.admin_*"], deny=True)]))
    users = [Principal(agent=rng.choice(list(agents)), user=User("https://idp", f"user{u}"),
                       scopes=frozenset({"actions:destructive"} if u % 3 == 0 else ()),
                       permissions=frozenset(f"role:{r}" for r in rng.sample(roles, rng.randint(1, 6))))
               for u in range(10_000)]
    gateway = GatewayGrants("default", {a: _grant_regex(p) for a, p in agents.items()})
    return gateway, tools, users, policy


def run(decisions: int) -> dict[str, float]:
    gateway, tools, users, policy = world()
    rng = random.Random(1)
    triples = [(rng.choice(users), rng.choice(tools)) for _ in range(decisions)]
    for p, t in triples[:2000]:  # warm the per-permission-set pattern memo, as a running gateway would be
        decide(p, gateway, t, policy)  # type: ignore[arg-type]
    samples = []
    allowed = 0
    clock = time.perf_counter_ns
    for p, t in triples:
        start = clock()
        d = decide(p, gateway, t, policy)  # type: ignore[arg-type]
        samples.append(clock() - start)
        allowed += d.allowed
    samples.sort()
    return {"decisions": decisions, "p50_us": samples[len(samples) // 2] / 1000,
            "p99_us": samples[int(len(samples) * 0.99)] / 1000, "mean_us": statistics.fmean(samples) / 1000,
            "allowed_fraction": allowed / decisions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.decisions)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"decision: p50 {result['p50_us']:.2f} µs  p99 {result['p99_us']:.2f} µs  "
              f"(mean {result['mean_us']:.2f} µs, {result['decisions']} decisions, "
              f"{result['allowed_fraction']:.1%} allowed)")


if __name__ == "__main__":
    main()
