"""The config loader: a valid file becomes the whole typed object; a bad one lists every problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from executor.errors import ConfigError
from registry.config import (
    DEFAULT_ALGORITHMS,
    Config,
    GatewayConfig,
    IdentityConfig,
    IssuerConfig,
    ServerConfig,
    UpstreamConfig,
    check_tool_patterns,
    compile_pattern,
    default_config,
    load_config,
    parse_config,
)

FULL = """\
server:
  host: 0.0.0.0
  port: 9000
  public_url: https://interlock.example.com
  database: /var/lib/interlock/interlock.db
  dev_mode: false
  sync_interval_seconds: 60
identity:
  issuers:
    - issuer: https://login.example.com/tenant/v2.0
      algorithms: [RS256]
    - issuer: http://127.0.0.1:9400
      jwks_uri: http://127.0.0.1:9400/jwks
      leeway_seconds: 5
upstreams:
  - name: mail
    url: https://mail.example.com/mcp
    timeout_seconds: 12.5
  - name: files
    command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv]
    env: {NODE_ENV: production}
    connect_timeout_seconds: 3
gateways:
  - name: coding
    description: For coding agents
    agents:
      cursor: [files.read_*, mail.search]
      "https://agent.example.com/client.json": ["*.search"]
  - name: sales
"""


def problems_of(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    assert info.value.code == "config_invalid"
    return info.value.problems


def test_a_full_valid_config_parses_to_the_whole_object() -> None:
    assert parse_config(FULL) == Config(
        server=ServerConfig(
            host="0.0.0.0",
            port=9000,
            public_url="https://interlock.example.com",
            database="/var/lib/interlock/interlock.db",
            dev_mode=False,
            sync_interval_seconds=60.0,
        ),
        identity=IdentityConfig(
            issuers=[
                IssuerConfig(issuer="https://login.example.com/tenant/v2.0", algorithms=["RS256"]),
                IssuerConfig(
                    issuer="http://127.0.0.1:9400",
                    jwks_uri="http://127.0.0.1:9400/jwks",
                    algorithms=list(DEFAULT_ALGORITHMS),
                    leeway_seconds=5,
                ),
            ]
        ),
        upstreams=[
            UpstreamConfig(name="mail", url="https://mail.example.com/mcp", timeout_seconds=12.5),
            UpstreamConfig(
                name="files",
                command=["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                env={"NODE_ENV": "production"},
                connect_timeout_seconds=3.0,
            ),
        ],
        gateways=[
            GatewayConfig(
                name="coding",
                description="For coding agents",
                agents={
                    "cursor": ["files.read_*", "mail.search"],
                    "https://agent.example.com/client.json": ["*.search"],
                },
            ),
            GatewayConfig(name="sales"),
        ],
    )


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "interlock.yaml"
    path.write_text(FULL)
    assert load_config(path) == parse_config(FULL)


def test_an_empty_file_is_all_defaults() -> None:
    assert parse_config("") == Config()


def test_a_file_with_many_problems_lists_every_one_with_its_path() -> None:
    text = """\
    server:
      port: "8080"
    identity:
      issuers:
        - issuer: http://idp.example.com
        - issuer: https://idp.example.com
          algorithms: [HS256]
        - issuer: https://idp.example.com
          leeway: 3
    upstreams:
      - name: mail
        url: https://mail.example.com/mcp
        timeout_seconds: thirty
      - name: Mail
        command: []
      - name: crm
        urll: https://crm.example.com/mcp
      - name: mail
        url: https://x.example.com/mcp
        command: [run]
        connect_timeout_seconds: 0
    gateways:
      - name: dev
        agents:
          cursor: [jira., nosuch.x, mail.*, 7]
          claude: null
      - name: dev
        agents: {claude: ["*.search", "ma*.x"]}
      - 3
    extras: true
    """
    assert problems_of(text) == [
        "server.port: expected integer, got string",
        "identity.issuers[0].issuer: `http://idp.example.com` must use https "
        "(http is allowed only for loopback hosts or with `server.dev_mode: true`)",
        "identity.issuers[1].algorithms[0]: `HS256` is not supported; use one of "
        + ", ".join(f"`{a}`" for a in DEFAULT_ALGORITHMS),
        "identity.issuers[2]: unknown field `leeway`; did you mean `leeway_seconds`?",
        "identity.issuers[2].issuer: duplicate issuer `https://idp.example.com` "
        "(first at identity.issuers[1].issuer)",
        "upstreams[0].timeout_seconds: expected number, got string",
        "upstreams[1].name: `Mail` is not a valid upstream name; use 1 to 63 lowercase letters, "
        "digits, `-` and `_`, starting with a letter or digit",
        "upstreams[1].command: must name the program to run, e.g. `[npx, some-mcp-server]`",
        "upstreams[2]: unknown field `urll`; did you mean `url`?",
        "upstreams[2]: set `url` (an HTTP MCP endpoint) or `command` (a stdio MCP server to start)",
        "upstreams[3].name: duplicate upstream `mail` (first at upstreams[0].name)",
        "upstreams[3]: set either `url` or `command`, not both",
        "upstreams[3].connect_timeout_seconds: must be a number of seconds greater than 0",
        "gateways[0].agents.cursor[3]: expected string, got integer",
        "gateways[0].agents.claude: expected list, got null",
        "gateways[0].agents.cursor[0]: unknown tool pattern `jira.`; write `server.tool`, where "
        "`server` is an upstream name or `*` and `tool` may use `*` (e.g. `mail.*`)",
        "gateways[0].agents.cursor[1]: unknown tool pattern `nosuch.x`: no upstream named `nosuch`; "
        "declare it under `upstreams` or bless it with the CLI",
        "gateways[1].name: duplicate gateway `dev` (first at gateways[0].name)",
        "gateways[1].agents.claude[1]: unknown tool pattern `ma*.x`; write `server.tool`, where "
        "`server` is an upstream name or `*` and `tool` may use `*` (e.g. `mail.*`)",
        "gateways[2]: expected a mapping, got integer",
        "unknown top-level field `extras`; expected one of `server`, `identity`, `upstreams`, `gateways`, "
        "`policy`, `audit`, `providers`, `vault`",
    ]


def test_the_error_names_the_file_and_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstreams:\n  - name: a\n  - name: b\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        "upstreams[0]: set `url` (an HTTP MCP endpoint) or `command` (a stdio MCP server to start)",
        "upstreams[1]: set `url` (an HTTP MCP endpoint) or `command` (a stdio MCP server to start)",
    ]
    assert str(path) in info.value.message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [f"file `{tmp_path / 'nope.yaml'}` does not exist"]


def test_a_yaml_syntax_error_has_line_and_column() -> None:
    assert problems_of("server:\n  host: a: b\n") == [
        "line 2, column 10: invalid yaml: mapping values are not allowed here"
    ]


def test_a_duplicate_key_is_refused_not_silently_replaced() -> None:
    text = "gateways:\n  - name: g\n    agents: {a: [x.y]}\n    agents: {}\n"
    assert problems_of(text) == [
        "line 4, column 5: invalid yaml: duplicate key `agents`; each key may appear only once"
    ]


def test_the_top_level_must_be_a_mapping() -> None:
    assert problems_of("- 1\n") == ["expected a mapping, got list"]


def test_a_missing_required_field_is_named() -> None:
    assert problems_of("gateways:\n  - description: x\n") == ["gateways[0]: missing required field `name`"]


def test_http_issuers_are_allowed_for_loopback_and_in_dev_mode() -> None:
    loopback = "identity:\n  issuers:\n    - issuer: http://localhost:9000\n    - issuer: http://[::1]:9000\n"
    assert len(parse_config(loopback).identity.issuers) == 2
    remote = "identity:\n  issuers:\n    - issuer: http://idp.internal\n"
    assert len(problems_of(remote)) == 1
    assert (
        parse_config("server: {dev_mode: true}\n" + remote).identity.issuers[0].issuer
        == "http://idp.internal"
    )


def test_an_issuer_with_a_query_is_refused() -> None:
    assert problems_of("identity:\n  issuers:\n    - issuer: https://idp.example.com/?x=1\n") == [
        "identity.issuers[0].issuer: `https://idp.example.com/?x=1` must not have a query or fragment"
    ]


def test_the_skill_server_name_is_reserved() -> None:
    assert problems_of("upstreams:\n  - {name: skill, url: 'https://x.example.com'}\n") == [
        "upstreams[0].name: `skill` is reserved (skills are exposed as `skill.<name>`)"
    ]


TOOLS_OF_CLI_SERVER = "gateways:\n  - name: g\n    agents: {cursor: [github.search]}\n"


def test_tool_patterns_may_name_servers_blessed_outside_the_file() -> None:
    assert problems_of(TOOLS_OF_CLI_SERVER) == [
        "gateways[0].agents.cursor[0]: unknown tool pattern `github.search`: no upstream named `github`; "
        "declare it under `upstreams` or bless it with the CLI"
    ]
    assert parse_config(TOOLS_OF_CLI_SERVER, known_servers=["github"]).gateways[0].agents == {
        "cursor": ["github.search"]
    }


def test_unknown_servers_can_be_checked_after_the_store_is_open() -> None:
    config = parse_config(TOOLS_OF_CLI_SERVER, known_servers=None)
    assert check_tool_patterns(config, ["github"]) == []
    assert check_tool_patterns(config) == [
        "gateways[0].agents.cursor[0]: unknown tool pattern `github.search`: no upstream named `github`; "
        "declare it under `upstreams` or bless it with the CLI"
    ]


def test_the_default_config_has_one_gateway_named_default() -> None:
    assert default_config() == Config(
        gateways=[GatewayConfig(name="default", description="The built-in gateway.")]
    )


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("mail.*", "mail.read", True),
        ("mail.*", "mail.read.x", True),  # `*` in the tool part crosses dots
        ("mail.*", "mail.", True),
        ("mail.*", "mailx.read", False),
        ("mail.*", "crm.read", False),
        ("mail.read_*", "mail.read_inbox", True),
        ("mail.read_*", "mail.send", False),
        ("mail.read", "mail.read", True),
        ("mail.read", "mail.reader", False),
        ("mail.read", "mail.Read", False),  # case-sensitive
        ("mail.a.b", "mail.aXb", False),  # `.` is literal
        ("*.search", "crm.search", True),
        ("*.search", "mail.x.search", False),  # `*` in the server part is one server name
        ("*.*", "crm.anything.at.all", True),
        ("mail.*_all", "mail.delete_all", True),
        ("mail.*_all", "mail.delete_all_but_one", False),  # anchored at the end
    ],
)
def test_compile_pattern(pattern: str, name: str, matches: bool) -> None:
    compiled = compile_pattern(pattern)
    assert (compiled.fullmatch(name) is not None) is matches
    assert (compiled.match(name) is not None) is matches  # anchored: match agrees with fullmatch


@pytest.mark.parametrize("pattern", ["search", ".search", "mail.", "m*l.read"])
def test_compile_pattern_refuses_what_is_not_server_dot_tool(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_pattern(pattern)
