"""The CLI as a user runs it: real processes, a real store file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx2

from tests.support.gateway import run_cli, write_config
from tests.support.procs import free_port, running


def test_invalid_config_lists_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    good = {"upstreams": [{"name": "up", "url": "http://127.0.0.1:9/mcp"}],
            "gateways": [{"name": "default", "agents": {"cursor": ["up.*"]}}]}
    write_config(tmp_path / "good.yaml", good)
    run_cli(tmp_path, "apply", "-f", str(tmp_path / "good.yaml"))
    before = run_cli(tmp_path, "servers", "list", "--json").stdout

    bad = {"upstreams": [{"name": "up", "url": "http://127.0.0.1:9/mcp", "timeout_seconds": "soon"},
                         {"name": "Bad Name", "command": []}],
           "gateways": [{"name": "default", "agents": {}}, {"name": "eng", "agents": {"cursor": ["jira."]}}]}
    write_config(tmp_path / "bad.yaml", bad)
    result = run_cli(tmp_path, "apply", "-f", str(tmp_path / "bad.yaml"), check=False)
    assert result.returncode == 1
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert [p.split(":")[0] for p in problems] == [
        "upstreams[0].timeout_seconds", "upstreams[1].name", "upstreams[1].command", "gateways[1].agents.cursor[0]"]
    assert "nothing was written" in result.stderr
    assert run_cli(tmp_path, "servers", "list", "--json").stdout == before


def test_apply_is_idempotent_and_removing_an_entry_removes_it(tmp_path: Path) -> None:
    config = {"upstreams": [{"name": "a", "url": "http://127.0.0.1:9/mcp"}, {"name": "b", "command": ["x"]}],
              "gateways": [{"name": "default", "agents": {"cursor": ["a.*"]}}]}
    write_config(tmp_path / "c.yaml", config)
    first = run_cli(tmp_path, "apply", "-f", str(tmp_path / "c.yaml")).stdout
    assert "added    server a" in first and "added    gateway default" in first
    assert run_cli(tmp_path, "apply", "-f", str(tmp_path / "c.yaml")).stdout.strip() == "no changes"
    config["upstreams"] = config["upstreams"][:1]
    write_config(tmp_path / "c.yaml", config)
    assert run_cli(tmp_path, "apply", "-f", str(tmp_path / "c.yaml")).stdout.strip() == "removed  server b"
    names = [s["spec"]["name"] for s in json.loads(run_cli(tmp_path, "servers", "list", "--json").stdout)]
    assert names == ["a"]


def test_bless_of_an_unreachable_server_writes_nothing(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "servers", "bless", "ghost", "--url", f"http://127.0.0.1:{free_port()}/mcp",
                     "--timeout", "2", check=False)
    assert result.returncode == 1 and "could not reach `ghost`" in result.stderr
    assert json.loads(run_cli(tmp_path, "servers", "list", "--json").stdout) == []


def test_tools_bless_of_an_unknown_tool_is_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "tools", "bless", "nope.tool", check=False)
    assert result.returncode == 1 and "no tool `nope.tool`" in result.stderr


def test_serve_without_config_runs_the_default_gateway(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "registry.cli", "serve", "--port", str(port)]
    with running(argv, port, cwd=tmp_path):
        health = httpx2.get(f"http://127.0.0.1:{port}/healthz")
        prm = httpx2.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp/default")
        unauthenticated = httpx2.post(f"http://127.0.0.1:{port}/mcp/default", json={})
    assert health.json()["status"] == "ok"
    assert prm.json()["resource"] == f"http://127.0.0.1:{port}/mcp/default"
    assert unauthenticated.status_code == 401
    assert (tmp_path / "interlock.db").exists()


def test_skills_validate_prints_positions_and_exits_1_on_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad_Name\nversion: one\ndescription: x\nsteps:\n  - id: a\n    tool: up.echo\n"
                   "  - id: a\n    tool: up.echo\n    with: {text: '{{ steps.zz.output }}'}\n")
    result = run_cli(tmp_path, "skills", "validate", "--offline", str(bad), check=False)
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert len(problems) >= 4
    assert all(re.match(rf"{re.escape(str(bad))}:\d+:\d+: ", p) for p in problems)
    good = run_cli(tmp_path, "skills", "validate", "--offline", str(Path(__file__).parents[1] / "skills"))
    assert good.returncode == 0
