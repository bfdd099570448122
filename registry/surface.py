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

import contextlib
import hashlib
import heapq
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import mcp.types as types
import msgspec
from mcp import MCPError, UrlElicitationRequiredError
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from executor.audit import AuditUnavailableError
from executor.call import Executor
from executor.errors import AccessDeniedError, AuthenticationError, ToolUnavailableError
from executor.identity import TokenVerifier
from executor.principal import Principal
from executor.resource_metadata import resource_uri, www_authenticate
from executor.skill_runner import SkillInputError, SkillPaused, SkillRunError, SkillRunner
from executor.vault import AuthorizationRequired
from registry.agent_skills import render_skill_md
from registry.catalog import Catalog, decode_cursor, encode_cursor
from registry.lean_call import ACCESS_DENIED, CallRequest, answer, decode_request, denial_data, era, wants_progress
from registry.skill_registry import SkillVersion
from registry.skill_surface import (
    EXTENSION,
    TOOL_PREFIX,
    SkillsGetParams,
    SkillsGetResult,
    SkillsListParams,
    SkillsListResult,
    name_from_uri,
    prompt_result,
    skill_entry,
    skill_prompt,
    skill_resource,
    skill_tool,
    skill_uri,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_BODY = 4 * 1024 * 1024
SCOPE_KEY = "interlock.caller"



LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _json_response(status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return _json_bytes(status, msgspec.json.encode(body), headers)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is larger than ``MAX_BODY``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            return None
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the SDK the body we already read, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _json_bytes(status: int, payload: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
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


def authorization_request(protocol_version: str, exc: AuthorizationRequired,
                          message: str | None = None) -> types.InputRequiredResult:
    """How each protocol era is asked to send its user to ``/connect``.

    2026-07-28: an ``InputRequiredResult`` carrying a URL elicitation; the client retries the same
    call (with ``requestState``), which is decided afresh. 2025-11-25: the URL-mode elicitation
    error ``-32042`` (which the 2026 spec forbids, so it is never sent to a 2026 client)."""
    text = message or exc.message
    if protocol_version >= "2026-07-28":
        request = types.ElicitRequest(params=types.ElicitRequestURLParams(message=text, url=exc.url))
        return types.InputRequiredResult(input_requests={f"connect-{exc.provider}": request},
                                         request_state=exc.flow_id)
    raise UrlElicitationRequiredError(
        [types.ElicitRequestURLParams(message=text, url=exc.url, elicitation_id=exc.flow_id)], text)


class McpSurface:
    def __init__(self, catalog: Catalog, executor: Executor, verifier: TokenVerifier, base_url: str,
                 runner: SkillRunner | None = None) -> None:
        self.catalog = catalog
        self.executor = executor
        self.runner = runner
        self.verifier = verifier
        self.base_url = base_url.rstrip("/")
        self._issuers_generation = -1
        self.server: Server[Any] = Server(
            "interlock",
            version="0.1.0",
            instructions="Interlock gateway: tools here are allowed for both you (the agent) and your user.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
            # Mcp-Param header validation must not run the (caller-scoped) listing unauthenticated.
            get_tool_input_schema=lambda _name: None,
        )
        self.server.add_request_handler("skills/list", SkillsListParams, self._skills_list)
        self.server.add_request_handler("skills/get", SkillsGetParams, self._skills_get)
        self.server.extensions[EXTENSION] = {}
        security = transport_security(self.base_url)
        self._security = TransportSecurityMiddleware(security)
        self.server.streamable_http_app(transport_security=security)
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
        # Sessions are bound to (client, issuer, subject): a session id alone never proves who you are.
        # Built only when a session is involved (the SDK path, or a 2025 call on the lean one).
        def user() -> AuthenticatedUser:
            return AuthenticatedUser(AccessToken(
                token=hashlib.sha256(token.encode()).hexdigest(), client_id=principal.agent,
                scopes=sorted(principal.scopes), subject=principal.user.subject,
                claims={"iss": principal.user.issuer}))
        if scope["method"] == "POST":
            body = await _read_body(receive)
            if body is None:
                await _json_response(413, {"error": "request_too_large", "error_description":
                                           f"the request body is over {MAX_BODY} bytes"})(scope, receive, send)
                return
            receive = _replaying(body, receive)
            try:
                request = decode_request(body)
            except msgspec.DecodeError:
                request = None  # not ours to judge: the SDK answers malformed requests
            tool = request.tool if request is not None else None
            if request is not None and tool is not None:
                if await self._step_up(scope, send, principal, gateway, resource, tool, request):
                    return
                skill = tool.startswith(TOOL_PREFIX)
                kind = None if skill and wants_progress(request) else era(scope, request, self.sessions, user)
                if kind is not None and await self._security.validate_request(Request(scope), is_post=True):
                    kind = None  # Host, Origin or Content-Type refused: the SDK answers with the reason
                if kind is not None:
                    async def call(arguments: dict[str, Any]) -> types.CallToolResult:
                        if skill:
                            return await self._run_skill(principal, gateway, tool, arguments)
                        return await self.executor.call(principal, gateway, tool, arguments)

                    payload = await answer(call, request, kind, self.server.server_info_stamp)
                    await _json_bytes(200, payload)(scope, receive, send)
                    return
        scope[SCOPE_KEY] = (principal, gateway)
        scope["user"] = user()
        await self.sessions.handle_request(scope, receive, send)

    async def _step_up(self, scope: Scope, send: Send, principal: Principal, gateway: str, resource: str,
                       tool: str, request: CallRequest) -> bool:
        """MCP step-up (SEP-835): a `tools/call` whose only obstacle is a missing token scope is
        answered at the HTTP level, 403 + `WWW-Authenticate: Bearer error="insufficient_scope"`,
        so the client can re-authorize with the scope and retry. The refusal is decided and
        audited by the executor, like any other."""
        snapshot = self.catalog.current()
        missing = snapshot.only_missing_scopes(principal, gateway, tool)
        if not missing:
            return False
        arguments = (request.params or {}).get("arguments")
        version = snapshot.exposed_skill(gateway, tool.removeprefix(TOOL_PREFIX)) \
            if tool.startswith(TOOL_PREFIX) else None
        tools = [step.tool for step in version.skill.steps] if version is not None else [tool]
        try:
            refused = [self.executor.refuse(principal, gateway, t, arguments if isinstance(arguments, dict) else {})
                       for t in tools]
        except AuditUnavailableError:
            refused = []  # the trail is down: the 403 still stands, nothing was called
        if refused and all(d.allowed for d in refused):
            return False  # the policy changed meanwhile: take the call path
        scopes = " ".join(missing)
        challenge = www_authenticate(resource, error="insufficient_scope", scope=scopes,
                                     description=f"this call needs the scope `{scopes}`")
        await _json_response(403, {"error": "insufficient_scope", "scope": scopes,
                                   "error_description": f"this call needs the scope `{scopes}`"},
                             [(b"www-authenticate", challenge.encode())])(scope, _no_body, send)
        return True

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
        snapshot = self.catalog.current()
        tools = (e.exposed for e in snapshot.allowed_tools(principal, gateway, after) if e.exposed is not None)
        skills = (skill_tool(v) for v in snapshot.visible_skills(principal, gateway)
                  if after is None or f"{TOOL_PREFIX}{v.name}" > after)
        page: list[types.Tool] = []
        next_cursor = None
        for tool in heapq.merge(tools, skills, key=lambda t: t.name):
            if len(page) == PAGE_SIZE:
                next_cursor = encode_cursor(page[-1].name)
                break
            page.append(tool)
        return types.ListToolsResult(tools=page, next_cursor=next_cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        principal, gateway = _caller(ctx)
        try:
            if params.name.startswith(TOOL_PREFIX) and self.runner is not None:
                return await self._run_skill(principal, gateway, params.name, dict(params.arguments or {}), ctx)
            return await self.executor.call(principal, gateway, params.name, dict(params.arguments or {}))
        except AuthorizationRequired as exc:
            return authorization_request(ctx.protocol_version, exc)
        except SkillPaused as exc:
            return authorization_request(ctx.protocol_version, exc.request, message=exc.message)
        except (ToolUnavailableError, SkillInputError, SkillRunError) as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message) from None
        except AccessDeniedError as exc:
            raise MCPError(ACCESS_DENIED, exc.message, denial_data(exc)) from None

    # -- skills ------------------------------------------------------------------------------------

    async def _run_skill(self, principal: Principal, gateway: str, name: str, arguments: dict[str, Any],
                         ctx: ServerRequestContext[Any, Any] | None = None) -> types.CallToolResult:
        # Exposed here? Then the runner's preflight says precisely what (if anything) is missing.
        version = self.catalog.current().exposed_skill(gateway, name.removeprefix(TOOL_PREFIX))
        if version is None or self.runner is None:
            raise ToolUnavailableError(f"tool `{name}` is not available on this gateway; list the "
                                       "gateway's tools to see what you may call")
        token = ctx.meta.get("progress_token") if ctx is not None and ctx.meta is not None else None

        async def progress(done: float, total: float, message: str) -> None:
            if token is not None and ctx is not None:
                with contextlib.suppress(Exception):  # a client that cannot take notifications still gets its result
                    await ctx.session.send_progress_notification(token, done, total, message)

        return await self.runner.run(principal, gateway, version.skill, version.digest, arguments,
                                     progress=progress)

    def _visible(self, ctx: ServerRequestContext[Any, Any]) -> list[SkillVersion]:
        principal, gateway = _caller(ctx)
        return self.catalog.current().visible_skills(principal, gateway)

    def _one(self, ctx: ServerRequestContext[Any, Any], name: str | None) -> SkillVersion:
        principal, gateway = _caller(ctx)
        version = self.catalog.current().skill_visible(principal, gateway, name) if name else None
        if version is None:
            raise MCPError(types.INVALID_PARAMS, "no such skill on this gateway; list the gateway's skills")
        return version

    async def _list_prompts(self, ctx: ServerRequestContext[Any, Any],
                            params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[skill_prompt(v) for v in self._visible(ctx)])

    async def _get_prompt(self, ctx: ServerRequestContext[Any, Any],
                          params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return prompt_result(self._one(ctx, params.name.removeprefix(TOOL_PREFIX)))

    async def _list_resources(self, ctx: ServerRequestContext[Any, Any],
                              params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[skill_resource(v) for v in self._visible(ctx)])

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any],
                             params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        version = self._one(ctx, name_from_uri(str(params.uri)))
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=skill_uri(version.name), mime_type="text/markdown", text=render_skill_md(version))])

    async def _skills_list(self, ctx: ServerRequestContext[Any, Any], params: SkillsListParams) -> SkillsListResult:
        return SkillsListResult(skills=[skill_entry(v) for v in self._visible(ctx)])

    async def _skills_get(self, ctx: ServerRequestContext[Any, Any], params: SkillsGetParams) -> SkillsGetResult:
        version = self._one(ctx, name_from_uri(params.uri))
        return SkillsGetResult(skill=skill_entry(version), contents=[
            {"uri": skill_uri(version.name), "mimeType": "text/markdown", "text": render_skill_md(version)}])
