"""Invariant: ``Executor.call`` is the only code that invokes an upstream tool.

Scans the gateway's own source (``registry/`` and ``executor/``) with ``ast``: only
``executor/upstream.py`` may hold an MCP client, and only ``executor/call.py`` may ask it to
call a tool. (``examples/`` and ``bench/`` hold agents and upstreams that talk *to* the
gateway from outside, as any MCP client does; they are not part of it.)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["registry", "executor"]
CLIENT_HOLDER = "executor/upstream.py"
CHOKE_POINT = "executor/call.py"


def sources() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def imports_mcp_client(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("mcp.client"):
                return True
            if node.module == "mcp" and any(a.name in {"Client", "ClientSession"} for a in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name.startswith("mcp.client") for a in node.names):
            return True
    return False


def calls_tool(tree: ast.AST) -> list[int]:
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "call_tool"]


def test_scan_sees_the_real_call_sites() -> None:
    # guard against a scan that silently finds nothing
    assert calls_tool(ast.parse((ROOT / CHOKE_POINT).read_text()))
    assert imports_mcp_client(ast.parse((ROOT / CLIENT_HOLDER).read_text()))
    assert len(sources()) > 10


def test_only_the_upstream_module_holds_an_mcp_client() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sources()
                 if str(p.relative_to(ROOT)) != CLIENT_HOLDER and imports_mcp_client(ast.parse(p.read_text()))]
    assert offenders == []


def test_only_executor_call_invokes_tools() -> None:
    offenders = {str(p.relative_to(ROOT)): lines for p in sources()
                 if str(p.relative_to(ROOT)) not in {CHOKE_POINT, CLIENT_HOLDER}
                 and (lines := calls_tool(ast.parse(p.read_text())))}
    assert offenders == {}
