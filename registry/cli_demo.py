"""``interlock demo``: the live revocation scenario end to end (see examples/revocation_demo.py)."""

from __future__ import annotations

import argparse
from typing import Any

ERAS = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}


def cmd_demo(args: argparse.Namespace) -> int:
    from examples.revocation_demo import run

    eras = list(ERAS) if args.era == "both" else [args.era]
    for i, era in enumerate(eras):
        print(f"=== the scenario with an MCP {era} client ===", flush=True)
        status = run(keep=args.keep and i == len(eras) - 1, mode=ERAS[era],
                     out=lambda line: print(line, flush=True))
        if status != 0:
            return status
        print()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="play the live revocation scenario end to end on this machine")
    p.add_argument("--keep", action="store_true", help="leave everything running afterwards and print the URLs")
    p.add_argument("--era", choices=[*ERAS, "both"], default="both",
                   help="which MCP protocol era the scripted agent speaks (default: both, one after the other)")
    p.set_defaults(fn=cmd_demo)
