"""Docs are tests: every command and config key is documented, and config shown in docs/ validates."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import msgspec
import pytest

from registry.cli import build_parser
from registry.config import (
    Config,
    GatewayConfig,
    IdentityConfig,
    IssuerConfig,
    ServerConfig,
    UpstreamConfig,
    parse_config,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"


def commands(parser: argparse.ArgumentParser, prefix: str = "interlock") -> list[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [prefix]
    return [c for name, p in subs[0].choices.items() for c in commands(p, f"{prefix} {name}")]


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    found = commands(build_parser())
    assert len(found) >= 8
    assert [c for c in found if c not in text] == []


@pytest.mark.parametrize("struct,section", [
    (ServerConfig, "## `server`"), (IssuerConfig, "## `identity.issuers[]`"),
    (UpstreamConfig, "## `upstreams[]`"), (GatewayConfig, "## `gateways[]`"),
])
def test_every_config_key_is_documented(struct: type[msgspec.Struct], section: str) -> None:
    text = (DOCS / "configuration.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    assert [f for f in struct.__struct_fields__ if f"| `{f}` |" not in body] == []
    assert set(Config.__struct_fields__) == {"server", "identity", "upstreams", "gateways"}
    assert IdentityConfig.__struct_fields__ == ("issuers",)


def test_config_shown_in_docs_validates() -> None:
    blocks = [b for f in sorted(DOCS.glob("*.md"))
              for b in re.findall(r"```yaml\n(.*?)```", f.read_text(), re.S) if b.startswith("# interlock config")]
    assert blocks, "docs show no config"
    for block in blocks:
        assert isinstance(parse_config(block, "docs"), Config)


def test_readme_quickstart_has_exactly_two_commands() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```sh\n(.*?)\n```", quickstart)) == 2
