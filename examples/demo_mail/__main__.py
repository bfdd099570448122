"""``python -m examples.demo_mail --port P [options]``: run the demo mail provider on 127.0.0.1:P."""

from __future__ import annotations

import argparse
from pathlib import Path

from examples.demo_mail.settings import (
    DEFAULT_ACCESS_TOKEN_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    HOST,
    ProviderSettings,
)


def parse_args(argv: list[str] | None = None) -> tuple[ProviderSettings, str]:
    """The settings, and the uvicorn log level."""
    p = argparse.ArgumentParser(prog="python -m examples.demo_mail", description=__doc__)
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1; the issuer is http://127.0.0.1:PORT")
    p.add_argument("--state-file", type=Path, default=None, help="persist mailboxes, grants and keys in this JSON file")
    p.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, help=f"the registered client (default {DEFAULT_CLIENT_ID})",
    )
    p.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="its secret")
    p.add_argument(
        "--redirect-uri", action="append", default=[], dest="redirect_uris",
        help="an allowed redirect URI of the client (repeatable; matched exactly)",
    )
    p.add_argument(
        "--access-token-ttl", type=int, default=DEFAULT_ACCESS_TOKEN_TTL,
        help=f"access-token lifetime in seconds (default {DEFAULT_ACCESS_TOKEN_TTL})",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    a = p.parse_args(argv)
    if a.access_token_ttl < 0:
        p.error("--access-token-ttl must be >= 0")
    settings = ProviderSettings(
        port=a.port, client_id=a.client_id, client_secret=a.client_secret, redirect_uris=tuple(a.redirect_uris),
        access_token_ttl=a.access_token_ttl, state_file=a.state_file,
    )
    return settings, str(a.log_level)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from examples.demo_mail.app import create_app

    settings, log_level = parse_args(argv)
    uvicorn.run(create_app(settings), host=HOST, port=settings.port, log_level=log_level, lifespan="on")


if __name__ == "__main__":
    main()
