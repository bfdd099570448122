"""A lean HTTP/1.1 keep-alive client for ``tools/call`` to 2026-07-28 (stateless) upstreams.

The SDK client and httpx2 cost most of a millisecond per call in pydantic models and HTTP
machinery (docs/performance.md). For an upstream the SDK session has already negotiated as
2026-07-28 -- stateless, so no session id is needed -- a ``tools/call`` is one POST: this
module writes it by hand over a pooled connection and reads back the JSON-RPC response, plain
JSON or a short SSE stream. Listing, negotiation and every other request stay with the SDK.

A request is retried only when a *reused* connection turned out to be closed before any byte
of an answer came back (the server dropped it while idle); otherwise a call is never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import msgspec

MAX_RESPONSE = 16 * 1024 * 1024
IDLE_CONNECTIONS = 32
PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


class RawHTTPError(Exception):
    """The exchange failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Closed(Exception):
    """A reused connection was closed before any answer: safe to send again."""


class RawMcpEndpoint:
    """POST JSON-RPC requests to one streamable-HTTP endpoint over pooled keep-alive connections."""

    def __init__(self, url: str, *, headers: dict[str, str], protocol_version: str,
                 client_info: dict[str, Any]) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("the lean path speaks plain http only")
        self._host, self._port = parts.hostname, parts.port or 80
        self._path = parts.path or "/"
        if parts.query:
            self._path += f"?{parts.query}"
        self._authority = parts.netloc
        self._version = protocol_version
        self._client_info = client_info
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._next_id = 0

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The JSON-RPC response object (``result`` or ``error``) for one tools/call."""
        self._next_id += 1
        request_id = self._next_id
        body = _encode({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
            "name": name, "arguments": arguments, "_meta": {
                PROTOCOL_META: self._version, CAPABILITIES_META: {}, CLIENT_INFO_META: self._client_info}}})
        head = (f"POST {self._path} HTTP/1.1\r\nHost: {self._authority}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {self._version}\r\n"
                f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\n{self._headers}"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        for _ in range(2):
            reused = bool(self._idle)
            reader, writer = self._idle.pop() if reused else await asyncio.open_connection(self._host, self._port)
            try:
                writer.write(head + body)
                status, headers, payload = await _read_response(reader, first_byte_may_be_eof=reused)
            except _Closed:
                writer.close()
                continue
            except BaseException:
                writer.close()  # mid-exchange (timeout, cancellation, garbage): never reuse it
                raise
            if headers.get("connection", "").lower() == "close" or len(self._idle) >= IDLE_CONNECTIONS:
                writer.close()
            else:
                self._idle.append((reader, writer))
            if status == 200:
                return _response_for(request_id, headers.get("content-type", ""), payload)
            if status != 401:
                # A spec-correct server may answer a JSON-RPC error at a 4xx/5xx status.
                with contextlib.suppress(RawHTTPError):
                    answer = _response_for(request_id, headers.get("content-type", ""), payload)
                    if "error" in answer:
                        return answer
            raise RawHTTPError(f"HTTP {status}", status)
        raise RawHTTPError("the connection was closed before an answer")

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader, *, first_byte_may_be_eof: bool
                         ) -> tuple[int, dict[str, str], bytes]:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError as exc:
        if first_byte_may_be_eof and not exc.partial:
            raise _Closed from None
        raise RawHTTPError("the connection closed before the answer ended") from None
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise RawHTTPError("the answer is not HTTP/1.1")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        size = 0
        while True:
            length = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if length == 0:
                await reader.readuntil(b"\r\n")
                break
            size += length
            if size > MAX_RESPONSE:
                raise RawHTTPError("the answer is too large")
            chunks.append(await reader.readexactly(length))
            await reader.readexactly(2)
        return status, headers, b"".join(chunks)
    length = int(headers.get("content-length", "0"))
    if length > MAX_RESPONSE:
        raise RawHTTPError("the answer is too large")
    return status, headers, await reader.readexactly(length)


def _response_for(request_id: int, content_type: str, payload: bytes) -> dict[str, Any]:
    if content_type.startswith("text/event-stream"):
        for event in payload.split(b"\n\n"):
            data = b"\n".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if not data:
                continue
            with contextlib.suppress(msgspec.DecodeError):
                message = _decode(data)
                if isinstance(message, dict) and message.get("id") == request_id:
                    return message
        raise RawHTTPError("the event stream ended without the answer")
    try:
        message = _decode(payload)
    except msgspec.DecodeError:
        raise RawHTTPError("the answer is not JSON") from None
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise RawHTTPError("the answer is not the JSON-RPC response to the request")
    return message
