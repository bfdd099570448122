"""Docs are tests: every command and config key is documented, and config shown in docs/ validates."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import msgspec
import pytest

from registry.cli import build_parser
from registry.config import (
    AdminConfig,
    AuditConfig,
    ClientConfig,
    Config,
    EmbeddedIssuerConfig,
    GatewayConfig,
    IdentityConfig,
    IssuerConfig,
    PolicyConfig,
    PolicyRule,
    ProviderConfig,
    ServerConfig,
    UpstreamConfig,
    UserConfig,
    UserGrant,
    VaultConfig,
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


SECTIONS: dict[type[msgspec.Struct], str] = {
    ServerConfig: "## `server`", IssuerConfig: "## `identity.issuers[]`", UpstreamConfig: "## `upstreams[]`",
    GatewayConfig: "## `gateways[]`", UserGrant: "## `identity.user_grants[]`", AdminConfig: "## `identity.admin`",
    PolicyRule: "## `policy.rules[]`", EmbeddedIssuerConfig: "## `identity.embedded`",
    UserConfig: "## `identity.embedded`", ClientConfig: "## `identity.embedded`", AuditConfig: "## `audit`",
    ProviderConfig: "## `providers[]`", VaultConfig: "## `vault`",
}
CONTAINERS = {Config, IdentityConfig, PolicyConfig}
"""Structs that only hold other sections."""


def nested_structs(tp: type[msgspec.Struct]) -> set[type[msgspec.Struct]]:
    found: set[type[msgspec.Struct]] = set()
    for field in msgspec.structs.fields(tp):
        for arg in [field.type, *typing.get_args(field.type)]:
            if isinstance(arg, type) and issubclass(arg, msgspec.Struct) and arg not in found:
                found |= {arg} | nested_structs(arg)
    return found


def test_every_config_section_has_a_documented_place() -> None:
    assert nested_structs(Config) - CONTAINERS == set(SECTIONS)


@pytest.mark.parametrize("struct", sorted(SECTIONS, key=lambda t: t.__name__), ids=lambda t: t.__name__)
def test_every_config_key_is_documented(struct: type[msgspec.Struct]) -> None:
    text = (DOCS / "configuration.md").read_text()
    assert SECTIONS[struct] in text
    body = text.split(SECTIONS[struct], 1)[1].split("\n## ", 1)[0]
    assert [f for f in struct.__struct_fields__ if f"| `{f}` |" not in body] == []


def test_config_shown_in_docs_validates() -> None:
    blocks = [b for f in sorted(DOCS.glob("*.md"))
              for b in re.findall(r"```yaml\n(.*?)```", f.read_text(), re.S) if b.startswith("# interlock config")]
    assert blocks, "docs show no config"
    for block in blocks:
        assert isinstance(parse_config(block, "docs"), Config)


def test_readme_quickstart_has_exactly_two_commands() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```sh\n(.*?)\n```", quickstart)) == 2
