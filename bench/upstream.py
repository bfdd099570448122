"""The benchmark upstream: N cheap MCP servers in one process, streamable HTTP on 127.0.0.1.

    python -m bench.upstream --port P [--tools 500]

Serves ``http://127.0.0.1:P/mcp/<i>`` for any ``i`` (and ``/mcp``): each path is
one upstream as far as a client can tell, all answered by one low-level ``mcp.server.Server``
(both protocol eras: 2025-11-25 with the ``initialize`` handshake and sessions, 2026-07-28
stateless) on uvicorn with httptools and uvloop, JSON responses (no SSE). One process for the
whole fleet keeps a 2-core machine free for the gateway and the clients.

Every path offers the same ``--tools`` tools, so a gateway blessing ten of them pins
``10 x tools`` tools:

==========================  ===============================================================
``echo(text: str)``         returns ``text`` as one text block (read-only)
``record(n: int)``          returns about 4 KB of structured content (an invoice with 24 lines),
                            with an ``outputSchema`` (read-only)
``<verb>_<k>`` …            generated tools over ten verbs (``list``, ``read``, ``search``, …);
                            each echoes ``text`` back. ``list``/``read``/``search``/``export``
                            say ``readOnlyHint``; the rest keep the MCP default (destructive)
==========================  ===============================================================
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import mcp.types as types
from mcp import MCPError
from mcp.server import Server, ServerRequestContext

VERBS = ("list", "read", "search", "create", "update", "delete", "send", "export", "sync", "admin")
READ_ONLY_VERBS = frozenset({"list", "read", "search", "export"})
BUILTIN = ("echo", "record")
RECORD_LINES = 24

TEXT_INPUT: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}

_LINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "description": {"type": "string"}, "quantity": {"type": "integer"},
                   "unit_cents": {"type": "integer"}, "total_cents": {"type": "integer"}},
    "required": ["sku", "description", "quantity", "unit_cents", "total_cents"],
}
RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "number": {"type": "string"},
        "status": {"type": "string", "enum": ["draft", "open", "paid"]},
        "customer": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                                      "email": {"type": "string"}},
                     "required": ["id", "name", "email"]},
        "lines": {"type": "array", "items": _LINE_SCHEMA},
        "total_cents": {"type": "integer"},
    },
    "required": ["id", "number", "status", "customer", "lines", "total_cents"],
}


def generated_names(count: int) -> list[str]:
    """``count`` generated tool names: ``list_000``, ``read_000``, … ``admin_000``, ``list_001``, …"""
    return [f"{VERBS[k % len(VERBS)]}_{k // len(VERBS):03d}" for k in range(count)]


def tool_names(tools: int) -> list[str]:
    """Every tool name one benchmark upstream offers, in listing order."""
    return [*BUILTIN, *generated_names(max(tools - len(BUILTIN), 0))]


def _definitions(tools: int) -> list[types.Tool]:
    out = [
        types.Tool(name="echo", title="Echo", description="Return the given text unchanged.", input_schema=TEXT_INPUT,
                   annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)),
        types.Tool(name="record", title="Invoice record",
                   description="Return invoice `n` as structured content: customer, 24 lines, total.",
                   input_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
                   output_schema=RECORD_SCHEMA,
                   annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)),
    ]
    for name in generated_names(max(tools - len(BUILTIN), 0)):
        verb, _, number = name.partition("_")
        hints = types.ToolAnnotations(read_only_hint=True) if verb in READ_ONLY_VERBS else None
        out.append(types.Tool(name=name, description=f"{verb.capitalize()} records of kind {number} in the "
                                                     "benchmark system; echoes `text` back.",
                              input_schema=TEXT_INPUT, annotations=hints))
    return out[:tools]


def record(n: int) -> dict[str, Any]:
    """Invoice ``n``: about 4 KB as compact JSON."""
    lines = [{"sku": f"SKU-{n % 997:04d}-{i:02d}", "description": f"Line {i} of invoice {n}: consulting hours, "
                                                                   "travel and materials as agreed",
              "quantity": 1 + i % 5, "unit_cents": 1250 + 37 * i, "total_cents": (1 + i % 5) * (1250 + 37 * i)}
             for i in range(RECORD_LINES)]
    return {"id": n, "number": f"INV-{n:08d}", "status": ("draft", "open", "paid")[n % 3],
            "customer": {"id": f"cus_{n % 1000:06d}", "name": "Example Customer Ltd",
                         "email": "billing@example.com"},
            "lines": lines, "total_cents": sum(line["total_cents"] for line in lines)}


def build_server(tools: int = 500) -> Server[Any]:
    listing = _definitions(tools)
    schemas = {t.name: copy.deepcopy(t.input_schema) for t in listing}

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        args = params.arguments or {}
        if params.name not in schemas:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        if params.name == "record":
            try:
                data = record(int(args["n"]))
            except (KeyError, TypeError, ValueError) as exc:
                return types.CallToolResult(content=[types.TextContent(type="text", text=f"bad arguments: {exc!r}")],
                                            is_error=True)
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"invoice {data['number']}")],
                                        structured_content=data)
        text = str(args.get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text if params.name == "echo"
                                                               else f"{params.name}: {text}")])

    return Server("bench-upstream", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool,
                  get_tool_input_schema=lambda name: schemas.get(name))


def build_app(tools: int = 500) -> Any:
    """The ASGI app: every ``/mcp/<i>`` is served as ``/mcp``."""
    inner = build_server(tools).streamable_http_app(streamable_http_path="/mcp", json_response=True,
                                                    host="127.0.0.1", max_sessions=None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp/"):
            scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
        await inner(scope, receive, send)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tools", type=int, default=500, help="tools per upstream (default 500)")
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.tools), host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop",
                http="httptools", lifespan="on", access_log=False)


if __name__ == "__main__":
    main()
