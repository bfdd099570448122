"""The MCP surface agents talk to: ``/mcp/{gateway}``.

An ASGI app in front of the ``mcp`` SDK's low-level server. For every HTTP
request it resolves the gateway (404 if unknown), verifies the bearer token
against the gateway's resource URI (401 + ``WWW-Authenticate`` if not), and
hands the request, with the verified principal attached, to the SDK's
streamable-HTTP session manager, which serves both protocol eras on one URL:
2025-11-25 (``initialize`` + ``Mcp-Session-Id``) and 2026-07-28 (stateless).

The principal travels in the ASGI scope of *each* request, not the session,
so every message is authorized with the token it arrived with.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import mcp.types as types
import msgspec
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from executor.call import Executor
from executor.errors import AuthenticationError, ToolUnavailableError
from executor.identity import TokenVerifier
from executor.principal import Principal
from executor.resource_metadata import resource_uri, www_authenticate
from registry.catalog import Catalog, decode_cursor, encode_cursor

log = logging.getLogger(__name__)

PAGE_SIZE = 100
SCOPE_KEY = "interlock.caller"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _json_response(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    payload = msgspec.json.encode(body)

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            *(headers or [])]})
        await send({"type": "http.response.body", "body": payload})

    return respond


def _bearer(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _caller(ctx: ServerRequestContext[Any, Any]) -> tuple[Principal, str]:
    request = ctx.request
    caller = request.scope.get(SCOPE_KEY) if request is not None else None
    if caller is None:
        # Only reachable if someone mounts the SDK app without this surface in front: deny.
        raise MCPError(types.INVALID_REQUEST, "request was not authenticated")
    principal: Principal = caller[0]
    gateway: str = caller[1]
    return principal, gateway


def transport_security(base_url: str) -> TransportSecuritySettings:
    """DNS-rebinding protection: accept only our own Host (and loopback when we serve loopback)."""
    parts = urlsplit(base_url)
    hosts = [parts.netloc, f"{parts.hostname}:*"]
    origins = [f"{parts.scheme}://{parts.netloc}"]
    if parts.hostname in LOOPBACK:
        hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


class McpSurface:
    def __init__(self, catalog: Catalog, executor: Executor, verifier: TokenVerifier, base_url: str) -> None:
        self.catalog = catalog
        self.executor = executor
        self.verifier = verifier
        self.base_url = base_url.rstrip("/")
        self._issuers_generation = -1
        self.server: Server[Any] = Server(
            "interlock",
            version="0.1.0",
            instructions="Interlock gateway: tools here are allowed for both you (the agent) and your user.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # Mcp-Param header validation must not run the (caller-scoped) listing unauthenticated.
            get_tool_input_schema=lambda _name: None,
        )
        self.server.streamable_http_app(transport_security=transport_security(self.base_url))
        self.sessions = self.server.session_manager

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        gateway = path.removeprefix("/mcp/")
        snapshot = self.catalog.current()
        if "/" in gateway or gateway not in snapshot.gateways:
            await _json_response(404, {"error": "not_found", "error_description":
                                       "no such gateway; check the URL your admin gave you"})(scope, receive, send)
            return
        if snapshot.generation != self._issuers_generation:
            self.verifier.set_issuers(snapshot.issuers)
            self._issuers_generation = snapshot.generation
        resource = resource_uri(self.base_url, gateway)
        token = _bearer(scope)
        try:
            if token is None:
                raise AuthenticationError("a bearer token is required", missing=True)
            principal = await self.verifier.verify(token, resource)
        except AuthenticationError as exc:
            challenge = (www_authenticate(resource) if exc.missing
                         else www_authenticate(resource, error="invalid_token", description=exc.description))
            await _json_response(401, {"error": "invalid_token", "error_description": exc.description},
                                 [(b"www-authenticate", challenge.encode())])(scope, receive, send)
            return
        scope[SCOPE_KEY] = (principal, gateway)
        # Sessions are bound to (client, issuer, subject): a session id alone never proves who you are.
        scope["user"] = AuthenticatedUser(AccessToken(
            token=hashlib.sha256(token.encode()).hexdigest(), client_id=principal.agent,
            scopes=sorted(principal.scopes), subject=principal.user.subject,
            claims={"iss": principal.user.issuer}))
        await self.sessions.handle_request(scope, receive, send)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal, gateway = _caller(ctx)
        after = None
        if params is not None and params.cursor:
            try:
                after = decode_cursor(params.cursor)
            except ValueError:
                raise MCPError(types.INVALID_PARAMS, "invalid cursor; start again without one") from None
        page: list[types.Tool] = []
        next_cursor = None
        for entry in self.catalog.current().allowed_tools(principal, gateway, after):
            if len(page) == PAGE_SIZE:
                next_cursor = encode_cursor(page[-1].name)
                break
            assert entry.exposed is not None
            page.append(entry.exposed)
        return types.ListToolsResult(tools=page, next_cursor=next_cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal, gateway = _caller(ctx)
        try:
            return await self.executor.call(principal, gateway, params.name, dict(params.arguments or {}))
        except ToolUnavailableError as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
