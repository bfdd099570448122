"""An HTTP "MCP server" that answers garbage, for testing how clients cope.

    python tests/support/garbage_server.py --port P --mode MODE

Every POST (any path) is answered according to ``--mode``:

``html``     200 ``text/html`` ``<html>oops</html>``
``notjson``  200 ``application/json`` whose body is not JSON
``json``     200 ``application/json`` ``{"hello": "world"}``: JSON, but not JSON-RPC
``error``    500 ``text/plain`` ``internal kaboom``
``close``    closes the connection without answering
``hang``     reads the request and never answers
``shape``    a plausible 2025-11-25 server for the handshake (``server/discover`` is
             method-not-found, ``initialize`` succeeds, notifications get 202) whose
             ``tools/list`` and ``tools/call`` results have the wrong shape
             (``{"tools": 42}``, ``{"content": "nope"}``)
``loop``     like ``shape``, but ``tools/list`` is well-formed and never ends: every page
             carries ``nextCursor: "again"``
``forgetful`` a *valid* 2025-11-25 server with sessions (one tool, ``echo``, answering
             ``"ok"``) that forgets a session after serving one ``tools/call`` on it and then
             answers that session with 404, as a restarted server would

GET and DELETE get 405. Standard library only; one thread per connection.
From tests use ``with start_garbage("html") as url: ...``.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("html", "notjson", "json", "error", "close", "hang", "shape", "loop", "forgetful")
SCRIPT = Path(__file__).resolve()


def _shape_reply(msg: dict[str, Any], mode: str = "shape") -> dict[str, Any] | None:
    method, rid = msg.get("method"), msg.get("id")
    if rid is None:  # a notification
        return None
    good = mode != "shape"
    if method == "initialize":
        result: Any = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "garbage", "version": "0"},
        }
    elif method == "tools/list":
        tools = [{"name": "echo", "inputSchema": {"type": "object"}}]
        result = {"tools": tools, "nextCursor": "again"} if mode == "loop" else {"tools": tools}
        result = result if good else {"tools": 42}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "ok"}]} if good else {"content": "nope"}
    elif method == "server/discover":
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}
    else:
        result = {"weird": True}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def make_handler(mode: str) -> type[BaseHTTPRequestHandler]:
    sessions: set[str] = set()
    issued = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, ctype: str, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(405, "text/plain", b"method not allowed")

        do_DELETE = do_GET

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if mode == "html":
                self._send(200, "text/html", b"<html>oops</html>")
            elif mode == "notjson":
                self._send(200, "application/json", b"this is {not json")
            elif mode == "json":
                self._send(200, "application/json", b'{"hello": "world"}')
            elif mode == "error":
                self._send(500, "text/plain", b"internal kaboom")
            elif mode == "close":
                self.close_connection = True
                self.connection.close()
            elif mode == "hang":
                threading.Event().wait()
            elif mode == "forgetful":
                self._forgetful(json.loads(body))
            else:  # shape, loop
                reply = _shape_reply(json.loads(body), mode)
                if reply is None:
                    self._send(202, "application/json", b"")
                else:
                    self._send(200, "application/json", json.dumps(reply).encode())

        def _forgetful(self, msg: dict[str, Any]) -> None:
            sid = self.headers.get("Mcp-Session-Id")
            extra: dict[str, str] = {}
            with lock:
                if msg.get("method") == "initialize":
                    issued[0] += 1
                    sid = f"s{issued[0]}"
                    sessions.add(sid)
                    extra["Mcp-Session-Id"] = sid
                elif sid not in sessions:
                    self._send(404, "text/plain", b"unknown session")
                    return
                elif msg.get("method") == "tools/call":
                    sessions.discard(sid)  # served once, then forgotten
            reply = _shape_reply(msg, mode)
            if reply is None:
                self._send(202, "application/json", b"", extra)
            else:
                self._send(200, "application/json", json.dumps(reply).encode(), extra)

    return Handler


def serve(port: int, mode: str) -> ThreadingHTTPServer:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(mode))
    server.daemon_threads = True
    return server


@contextmanager
def start_garbage(mode: str, port: int | None = None) -> Iterator[str]:
    """Run this server as a process until the block ends; yields its ``/mcp`` URL."""
    from tests.support.procs import free_port, python_argv, running

    port = port or free_port()
    with running(python_argv(str(SCRIPT), "--port", str(port), "--mode", mode), port):
        yield f"http://127.0.0.1:{port}/mcp"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="an HTTP server that answers MCP requests with garbage")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=MODES, default="html")
    a = p.parse_args(argv)
    serve(a.port, a.mode).serve_forever()


if __name__ == "__main__":
    main()
