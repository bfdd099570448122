"""``interlock token``: mint an access token from the embedded issuer, for local testing (dev mode only)."""

from __future__ import annotations

import argparse
from typing import Any

from executor.idp.dev_tokens import mint_dev_token
from registry.config import default_config, load_config
from registry.sqlite_store import open_store


def cmd_token(args: argparse.Namespace) -> int:
    config = load_config(args.config, known_servers=None) if args.config else default_config()
    store = open_store(args.db or config.server.database)
    try:
        print(mint_dev_token(store, config, user=args.user, agent=args.agent, scopes=args.scope or [],
                             gateway=args.gateway))
    finally:
        store.close()
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="mint a token from the embedded issuer (dev mode only)")
    p.add_argument("-c", "--config", help="the config the gateway runs with (default: the built-in default)")
    p.add_argument("--user", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--gateway", default="default")
    p.add_argument("--scope", action="append", help="repeat for several scopes")
    p.set_defaults(fn=cmd_token)
