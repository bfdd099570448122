"""Talking MCP to upstream servers: the only module that does.

One long-lived ``mcp.Client`` session per upstream, keyed by the upstream's name
and reused by every call. Streamable-HTTP upstreams share one keep-alive
``httpx2.AsyncClient``; stdio upstreams run as child processes with a minimal
environment (``PATH``, ``HOME``, … plus the configured ``env``) and their stderr
sent to the ``interlock.upstream.stderr`` logger at debug level.

Lifecycle. An ``mcp.Client`` runs its receive loop in an anyio task group, so it
must be entered and exited by the same task. Each connection therefore lives in
a *keeper* task owned by the pool: the keeper enters the client, publishes it,
waits for a stop request and exits it. Callers use the published client from
their own tasks (requests and replies travel over memory streams, so that is
safe). Concurrent first calls share one connect. A connection that broke (the
process exited, the HTTP server went away, a session expired) is retired and the
next call opens a fresh one, restarting a stdio server; a retired connection is
closed once its in-flight calls have finished. ``aclose()`` stops every keeper,
which terminates every child process. Keepers are asyncio tasks: use a pool from
one asyncio event loop (anyio's asyncio backend, as uvicorn and Litestar run).

Failures. Every request is bounded by ``timeout_seconds`` and every connect by
``connect_timeout_seconds``. Whatever goes wrong reaches the caller as
``UpstreamTimeoutError`` or ``UpstreamError`` naming the upstream, never its URL
or command (they may carry secrets) and never the call's arguments. A tool that
failed in the ordinary way (``CallToolResult.is_error``) is returned as-is.

Protocol era: ``mode="auto"`` probes ``server/discover`` and falls back to the
``initialize`` handshake. Verified against the Python SDK's own server over HTTP
(negotiates 2026-07-28) and ``@modelcontextprotocol/server-everything`` over stdio
and HTTP (a 2025-11-25 server: falls back to the handshake cleanly).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import math
import os
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

import anyio
import httpx2
import mcp.types as types
from mcp import Client, MCPError
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from executor.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnauthorizedError
from executor.upstream_http import RawHTTPError, RawMcpEndpoint
from registry.config import UpstreamConfig

log = logging.getLogger(__name__)
stderr_log = logging.getLogger("interlock.upstream.stderr")

MAX_TOOLS = 100_000
"""A tools/list walk that yields more tools than this is refused (a runaway paginator)."""
MAX_PAGES = 10_000
"""…and so is one that needs more pages than this (e.g. empty pages with fresh cursors)."""
CLOSE_GRACE_SECONDS = 10.0
"""How long ``aclose`` waits for connections to close (stdio shutdown takes up to ~6 s)."""

_ADVICE = "try again, or ask an admin to check the server"
_MESSAGE_LIMIT = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

# The client identity sent to upstreams.
_CLIENT_INFO = types.Implementation(name="interlock", version="0.1.0")
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]{1,4096}")
"""Characters a tool name or a bearer token may have to go into a hand-written header."""


def _clean(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    """An upstream-supplied message made safe to show: one line, no control characters, bounded."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _leaf(exc: BaseException) -> BaseException:
    """The most telling exception inside (possibly nested) exception groups."""
    cancelled = anyio.get_cancelled_exc_class()
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, cancelled)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def _what_went_wrong(exc: BaseException) -> str:
    """A short description of a foreign exception with nothing secret in it (no URL, argv, arguments)."""
    exc = _leaf(exc)
    if isinstance(exc, MCPError):
        if exc.code == types.CONNECTION_CLOSED:
            return "the connection closed"
        fault = _transport_fault(exc)
        return f"it answered with {fault}" if fault else _clean(exc.message)
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_input=False, include_url=False)
        where = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in errors})
        return f"its answer did not match the MCP schema (at {_clean(', '.join(where), 120)})"
    if isinstance(exc, httpx2.ConnectError):
        return "the connection was refused or could not be made"
    if isinstance(exc, httpx2.TimeoutException):
        return "the HTTP connection timed out"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "it dropped the HTTP connection"
    if isinstance(exc, httpx2.HTTPError):
        return f"HTTP failure ({type(exc).__name__})"
    if isinstance(exc, RawHTTPError):
        return f"it answered the lean call badly ({exc})"
    if isinstance(exc, ConnectionError):
        return "the connection was refused or dropped"
    if isinstance(exc, OSError):  # spawning a stdio server; str(exc) would name the command
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return f"the server process could not be started ({reason})"
    if isinstance(exc, TimeoutError):
        return "it timed out"
    if isinstance(exc, RuntimeError):  # the SDK's own checks, e.g. structured content vs outputSchema
        return _clean(str(exc))
    return type(exc).__name__


class _StderrPump:
    """A pipe for a stdio server's stderr, read by a daemon thread into a logger."""

    def __init__(self, name: str) -> None:
        read_fd, write_fd = os.pipe()
        self.writer = cast(TextIO, os.fdopen(write_fd, "w"))
        thread = threading.Thread(target=self._pump, args=(name, read_fd), daemon=True,
                                  name=f"upstream-{name}-stderr")
        thread.start()

    @staticmethod
    def _pump(name: str, read_fd: int) -> None:
        # Debug level: a server's stderr is its own business and may echo its environment.
        with os.fdopen(read_fd, "rb") as pipe:
            for line in pipe:
                if stderr_log.isEnabledFor(logging.DEBUG):
                    text = _clean(line.decode(errors="replace"), 500)
                    stderr_log.debug("upstream `%s` stderr: %s", name, text)

    def close(self) -> None:
        """Drop our copy of the write end; the thread ends once the child's copies close too."""
        self.writer.close()


@dataclass(frozen=True, slots=True)
class Credential:
    """A third-party access token for one (agent, user, provider) ``slot``. Sessions are kept per
    slot, so one user's token is never used on another's behalf; a new token for the same slot
    replaces the session."""

    slot: str
    token: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]


class _Connection:
    """One upstream session, owned by its keeper task."""

    __slots__ = (
        "broken", "client", "credential", "done", "error", "inflight", "key", "prime_lock", "primed", "raw",
        "ready", "retired", "spec", "stop", "unauthorized",
    )

    def __init__(self, spec: UpstreamConfig, key: str, credential: Credential | None) -> None:
        self.spec = spec
        self.key = key
        self.credential = credential
        self.unauthorized = False
        """The upstream answered HTTP 401 on this session."""
        self.raw: RawMcpEndpoint | None = None
        """The lean tools/call endpoint, once the session is known to be stateless."""
        self.client: Client | None = None
        """Set while the session is open."""
        self.error: BaseException | None = None
        """Why connecting (or the connection) failed."""
        self.ready = anyio.Event()
        """Set once connected, or once connecting failed."""
        self.stop = anyio.Event()
        """Set to make the keeper close the session."""
        self.done = anyio.Event()
        """Set when the keeper has closed everything."""
        self.broken = False
        self.retired = False
        self.inflight = 0
        self.primed = False
        """A full tools/list walk has gone through this session (see ``UpstreamPool._prime``)."""
        self.prime_lock = anyio.Lock()

    def usable(self) -> bool:
        if self.broken or self.retired or self.done.is_set():
            return False
        return not (self.ready.is_set() and (self.client is None or _transport_closed(self.client)))

    def release(self) -> None:
        self.inflight -= 1
        if self.retired and self.inflight == 0:
            self.stop.set()


def _transport_closed(client: Client) -> bool:
    """Whether the session's transport has already ended (e.g. the stdio server exited while idle).

    Best effort through a private attribute: the SDK has no public "is this open?". If the
    attribute goes away, the only loss is that the first call after an idle crash fails
    (as a crash mid-call does) instead of reconnecting transparently.
    """
    session = getattr(client, "_session", None)
    if session is None:  # the client has been exited
        return True
    dispatcher = getattr(session, "_dispatcher", None)
    return bool(getattr(dispatcher, "_closed", False))


class UpstreamPool:
    """Long-lived MCP sessions to the blessed upstream servers, one per upstream name."""

    def __init__(self) -> None:
        self._connections: dict[str, _Connection] = {}
        """The current connection per upstream name."""
        self._open: set[_Connection] = set()
        """Every connection whose keeper is still running, current or retired."""
        self._keepers: set[asyncio.Task[None]] = set()
        self._http: httpx2.AsyncClient | None = None
        self._closed = False

    # ------------------------------------------------------------------ public API

    async def list_tools(self, spec: UpstreamConfig, credential: Credential | None = None) -> list[dict[str, Any]]:
        """The upstream's whole catalogue, every page, each tool as its MCP wire JSON (camelCase)."""
        conn = await self._connection(spec, credential)
        try:
            tools = await self._walk(conn)
        finally:
            conn.release()
        return [tool.model_dump(by_alias=True, exclude_none=True, mode="json") for tool in tools]

    async def call_tool(
        self, spec: UpstreamConfig, name: str, arguments: dict[str, Any], credential: Credential | None = None
    ) -> types.CallToolResult:
        """Call one tool. A tool-level failure comes back as a result with ``is_error``; anything
        else that goes wrong raises ``UpstreamTimeoutError``, ``UpstreamUnauthorizedError`` (the
        upstream answered 401 to ``credential``) or ``UpstreamError``."""
        for attempt in (1, 2):
            conn = await self._connection(spec, credential)
            try:
                if not conn.primed:
                    await self._prime(conn)
                client = conn.client
                if client is None:  # closed under us while priming
                    raise self._failure(conn, MCPError(types.CONNECTION_CLOSED, "Connection closed"))
                raw = self._lean(conn, client, name)
                with anyio.fail_after(spec.timeout_seconds):
                    if raw is not None:  # a stateless (2026-07-28) HTTP upstream: one hand-written POST
                        return self._lean_result(conn, await raw.call_tool(name, arguments))
                    return await client.call_tool(name, arguments)
            except TimeoutError as exc:
                raise self._timeout(spec) from exc
            except MCPError as exc:
                if not self._session_expired(exc):
                    raise self._failure(conn, exc) from exc
                # A 2025-era HTTP session the server no longer knows (it restarted): the request
                # was rejected before it ran, so one retry on a fresh session is safe.
                conn.broken = True
                if attempt == 2:
                    raise self._failure(conn, exc) from exc
            except UpstreamError:
                raise
            except RawHTTPError as exc:
                if exc.status == 401:
                    conn.unauthorized = True
                raise self._failure(conn, exc) from exc
            except Exception as exc:
                raise self._failure(conn, exc) from exc
            finally:
                conn.release()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _lean(conn: _Connection, client: Client, tool: str) -> RawMcpEndpoint | None:
        """The lean endpoint for this session, when it may be used: plain-http upstreams the SDK
        negotiated as stateless (2026-07-28), and names and credentials that are header-safe."""
        spec = conn.spec
        if spec.url is None or not spec.url.startswith("http://") or not _HEADER_SAFE.fullmatch(tool):
            return None
        if conn.raw is None:
            try:
                version = client.protocol_version
            except Exception:  # not negotiated (yet): the SDK keeps the call
                return None
            token = conn.credential.token if conn.credential is not None else None
            if version not in MODERN_PROTOCOL_VERSIONS or (token is not None and not _HEADER_SAFE.fullmatch(token)):
                return None
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
            conn.raw = RawMcpEndpoint(spec.url, headers=headers, protocol_version=version,
                                      client_info=_CLIENT_INFO.model_dump(exclude_none=True))
        return conn.raw

    def _lean_result(self, conn: _Connection, response: dict[str, Any]) -> types.CallToolResult:
        error = response.get("error")
        if isinstance(error, dict):
            raise UpstreamError(f"upstream `{conn.spec.name}` refused the call: {_clean(str(error.get('message')))}")
        try:
            return types.CallToolResult.model_validate(response.get("result"))
        except ValidationError as exc:
            raise self._failure(conn, exc) from exc

    async def aclose(self) -> None:
        """Close every session and stop every stdio child process. The pool is unusable afterwards."""
        self._closed = True
        # Shielded and bounded: this often runs in a cancelled scope (an app's lifespan unwinding).
        with anyio.CancelScope(shield=True):
            for conn in self._open:
                conn.retired = True
                conn.stop.set()
            self._connections.clear()
            keepers = set(self._keepers)
            if keepers:
                _, pending = await asyncio.wait(keepers, timeout=CLOSE_GRACE_SECONDS)
                for task in pending:
                    log.warning("an upstream connection did not close within %s; cancelling it",
                                _seconds(CLOSE_GRACE_SECONDS))
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=CLOSE_GRACE_SECONDS)
            if self._http is not None:
                await self._http.aclose()
                self._http = None

    # ------------------------------------------------------------------ connections

    async def _connection(self, spec: UpstreamConfig, credential: Credential | None = None) -> _Connection:
        """A connected session for ``spec`` and ``credential`` (opening one if needed), with a call slot
        reserved."""
        if self._closed:
            raise UpstreamError(f"upstream `{spec.name}` is unavailable: the gateway is shutting down")
        if spec.url is None and not spec.command:
            raise UpstreamError(f"upstream `{spec.name}` has neither a url nor a command; ask an admin")
        key = spec.name if credential is None or spec.url is None else f"{spec.name}\x1f{credential.slot}"
        conn = self._connections.get(key)
        if conn is not None and (conn.spec != spec or conn.credential != credential or not conn.usable()):
            self._retire(conn)
            conn = None
        if conn is None:
            conn = _Connection(spec, key, credential if spec.url is not None else None)
            self._connections[key] = conn
            self._open.add(conn)
            self._start_keeper(conn)
        conn.inflight += 1
        try:
            if not conn.ready.is_set():
                with anyio.fail_after(spec.connect_timeout_seconds):
                    await conn.ready.wait()
        except TimeoutError as exc:
            conn.release()
            raise self._connect_timeout(spec) from exc
        except BaseException:
            conn.release()
            raise
        if conn.client is None:
            conn.release()
            error = conn.error
            if isinstance(_leaf(error) if error else None, TimeoutError):
                raise self._connect_timeout(spec) from error
            reason = _what_went_wrong(error or Exception())
            message = f"upstream `{spec.name}` could not be connected to: {reason}; {_ADVICE}"
            raise UpstreamError(message) from error
        return conn

    def _retire(self, conn: _Connection) -> None:
        """Stop handing ``conn`` out; it closes once its in-flight calls are done."""
        conn.retired = True
        if self._connections.get(conn.key) is conn:
            del self._connections[conn.key]
        if conn.inflight == 0:
            conn.stop.set()

    def _start_keeper(self, conn: _Connection) -> None:
        # A plain asyncio task (the gateway runs on asyncio): the pool has no task group of its
        # own to spawn into, since its API is call-from-anywhere. A fresh context keeps the first
        # caller's context variables out of a task that outlives its request.
        task = asyncio.get_running_loop().create_task(
            self._keep(conn), name=f"interlock-upstream-{conn.spec.name}", context=contextvars.Context()
        )
        self._keepers.add(task)
        task.add_done_callback(self._keepers.discard)

    async def _keep(self, conn: _Connection) -> None:
        """The keeper: enter the client, publish it, wait for ``stop``, exit it — all in this task."""
        spec = conn.spec
        try:
            # The deadline bounds the connect only; it is lifted once the session is up.
            with anyio.CancelScope(deadline=anyio.current_time() + spec.connect_timeout_seconds) as scope:
                async with self._client(conn) as client:
                    scope.deadline = math.inf
                    conn.client = client
                    conn.ready.set()
                    await conn.stop.wait()
            if scope.cancelled_caught and conn.error is None and not conn.ready.is_set():
                conn.error = TimeoutError()
                log.warning("upstream `%s` could not be connected to within %s", spec.name,
                            _seconds(spec.connect_timeout_seconds))
        except (Exception, BaseExceptionGroup, asyncio.CancelledError) as exc:
            # Nothing awaits a keeper but aclose, so it swallows even cancellation (aclose's
            # last resort) and exception groups that carry one, after recording them.
            conn.error = exc
            if conn.ready.is_set():
                log.warning("upstream `%s` connection ended: %s", spec.name, _what_went_wrong(exc))
            else:
                log.warning("upstream `%s` could not be connected to: %s", spec.name, _what_went_wrong(exc))
        finally:
            conn.client = None
            if conn.raw is not None:
                conn.raw.close()
            conn.ready.set()
            conn.done.set()
            self._open.discard(conn)
            if self._connections.get(conn.key) is conn:
                del self._connections[conn.key]

    @asynccontextmanager
    async def _client(self, conn: _Connection) -> AsyncIterator[Client]:
        spec = conn.spec
        if spec.url is not None:
            if conn.credential is None:
                http = self._http_client()
            else:
                # Its own HTTP client: the bearer header belongs to this (agent, user, provider) only.
                async def saw(response: httpx2.Response) -> None:
                    if response.status_code == 401:
                        conn.unauthorized = True

                http = httpx2.AsyncClient(
                    timeout=httpx2.Timeout(30.0, read=300.0), event_hooks={"response": [saw]},
                    headers={"Authorization": f"Bearer {conn.credential.token}"})
            transport = streamable_http_client(spec.url, http_client=http)
            try:
                # No response cache: every tools/list must reach the upstream, or drift goes unseen.
                async with Client(transport, mode="auto", cache=None, client_info=_CLIENT_INFO) as client:
                    yield client
            finally:
                if conn.credential is not None:
                    await http.aclose()
            return
        assert spec.command, "checked by _connection"
        env = {**get_default_environment(), **spec.env}
        params = StdioServerParameters(command=spec.command[0], args=list(spec.command[1:]), env=env)
        pump = _StderrPump(spec.name)
        try:
            async with Client(stdio_client(params, errlog=pump.writer), mode="auto", cache=None,
                              client_info=_CLIENT_INFO) as client:
                yield client
        finally:
            pump.close()

    def _http_client(self) -> httpx2.AsyncClient:
        if self._http is None:
            # Our own anyio deadlines bound every request; the read timeout only reaps POSTs a
            # 2025-era server never answers after we gave up on them (SDK default, 300 s).
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(30.0, read=300.0),
                limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=60),
            )
        return self._http

    # ------------------------------------------------------------------ requests

    async def _walk(self, conn: _Connection) -> list[types.Tool]:
        """Every tools/list page, in order; marks the session primed."""
        spec = conn.spec
        tools: list[types.Tool] = []
        seen: set[str] = set()
        cursor: str | None = None
        try:
            for _ in range(MAX_PAGES):
                client = conn.client
                if client is None:
                    raise MCPError(types.CONNECTION_CLOSED, "Connection closed")
                with anyio.fail_after(spec.timeout_seconds):
                    page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                if len(tools) > MAX_TOOLS:
                    raise UpstreamError(f"upstream `{spec.name}` lists over {MAX_TOOLS} tools; refusing it")
                cursor = page.next_cursor
                if cursor is None:
                    conn.primed = True
                    return tools
                if cursor in seen:
                    raise UpstreamError(f"upstream `{spec.name}` repeated a tools/list cursor (a loop)")
                seen.add(cursor)
            raise UpstreamError(f"upstream `{spec.name}` needs over {MAX_PAGES} list pages; refusing it")
        except TimeoutError as exc:
            raise self._timeout(spec) from exc
        except UpstreamError:
            raise
        except Exception as exc:
            raise self._failure(conn, exc, doing="tools/list") from exc

    async def _prime(self, conn: _Connection) -> None:
        """Walk the listing once per session before its first call.

        The SDK validates each result against the tool's ``outputSchema`` from the session's
        last listing and, for a tool it has not seen, fetches *page one* of tools/list first;
        without this a tool on a later page would cost an extra tools/list on every call.
        The walk also loads the 2026-07-28 ``x-mcp-header`` maps the SDK sends headers from.
        """
        async with conn.prime_lock:
            if not conn.primed:
                await self._walk(conn)

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _session_expired(exc: MCPError) -> bool:
        # The SDK's streamable-HTTP transport turns a 404 on an established session into this.
        return exc.code == types.INVALID_REQUEST and exc.message == "Session terminated"

    @staticmethod
    def _timeout(spec: UpstreamConfig) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"upstream `{spec.name}` did not answer within {_seconds(spec.timeout_seconds)}; {_ADVICE}"
        )

    @staticmethod
    def _connect_timeout(spec: UpstreamConfig) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"upstream `{spec.name}` could not be connected to within "
            f"{_seconds(spec.connect_timeout_seconds)}; {_ADVICE}"
        )

    def _failure(self, conn: _Connection, exc: BaseException, *, doing: str = "call") -> UpstreamError:
        """Translate ``exc``. A connection that looks broken is retired, so the next call reconnects."""
        name = conn.spec.name
        leaf = _leaf(exc)
        if conn.unauthorized:
            self._retire(conn)
            return UpstreamUnauthorizedError(f"upstream `{name}` no longer accepts the credential it was given")
        if isinstance(leaf, RawHTTPError | ConnectionError | asyncio.IncompleteReadError):
            self._retire(conn)  # the next call reconnects through the SDK, which notices a crash
            if isinstance(leaf, RawHTTPError) and leaf.status is not None:
                return UpstreamError(f"upstream `{name}` answered the {doing} with HTTP {leaf.status}; {_ADVICE}")
            if isinstance(leaf, RawHTTPError) and "closed" not in str(leaf):
                return UpstreamError(f"upstream `{name}` answered the {doing} with {leaf}; {_ADVICE}")
            return UpstreamError(f"upstream `{name}` closed the connection before answering "
                                 f"(it may have crashed); {_ADVICE}")
        if (isinstance(leaf, MCPError) and leaf.code == types.CONNECTION_CLOSED) or conn.client is None:
            self._retire(conn)
            return UpstreamError(f"upstream `{name}` closed the connection before answering "
                                 f"(it may have crashed); {_ADVICE}")
        if isinstance(leaf, MCPError):
            fault = _transport_fault(leaf)
            if fault is None:  # the upstream's own JSON-RPC error response
                return UpstreamError(f"upstream `{name}` refused the {doing}: {_clean(leaf.message)}")
            # Garbage or an HTTP error status from the transport. A 2025-era HTTP session may be
            # gone (servers that answer 400, not 404, after a restart): start afresh next time.
            self._retire(conn)
            return UpstreamError(f"upstream `{name}` answered the {doing} with {fault}; {_ADVICE}")
        reason = _what_went_wrong(leaf)
        return UpstreamError(f"upstream `{name}` gave an invalid answer to the {doing}: {reason}; "
                             "ask an admin to check the server")


def _transport_fault(exc: MCPError) -> str | None:
    """What went wrong, if ``exc`` was synthesized by the SDK's streamable-HTTP transport (HTTP status,
    content type, unparsable body) rather than sent by the upstream; ``None`` otherwise.

    The SDK does not mark these, so they are recognised by code and fixed message.
    """
    message = exc.message
    if exc.code == types.PARSE_ERROR and message.startswith(("Failed to parse JSON", "Failed to parse SSE")):
        return "something that is not JSON-RPC"
    if exc.code == types.INTERNAL_ERROR and message == "Server returned an error response":
        return "an HTTP error status"
    if exc.code == types.INVALID_REQUEST:
        if message == "Session terminated":
            return "an HTTP 404 for its session (the server may have restarted)"
        if message.startswith("Unexpected content type: "):
            return f"an unexpected content type ({_clean(message.split(': ', 1)[1], 60)})"
        if message.startswith("Redirect to "):
            return "a redirect to another origin, which is not followed"
        if message == "server answered a request with 202 Accepted":
            return "202 Accepted instead of a result"
    return None
