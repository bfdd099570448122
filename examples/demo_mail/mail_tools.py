"""The MCP server at ``/mcp``: three mail tools over the mailbox of the token's user.

=========================================  =========  ===================================================
tool                                       scope      structured content
=========================================  =========  ===================================================
``list_messages(limit?: int = 20)``        mail.read  ``{messages: [{id, thread_id, from, subject, status}]}``
                                                      (newest first)
``read_message(id: str)``                  mail.read  ``{id, thread_id, from, subject, body, status}``
``send_reply(thread_id: str, body: str)``  mail.send  ``{id, thread_id}`` of the new message
=========================================  =========  ===================================================

Every HTTP request to ``/mcp`` must carry ``Authorization: Bearer <access token>`` issued by
this server for this resource; anything else is ``401`` with ``WWW-Authenticate: Bearer
error="invalid_token", …, resource_metadata="…/.well-known/oauth-protected-resource/mcp"``
(the SDK's bearer middleware, fed by :class:`MailTokenVerifier`). The token is checked again
on every request, so revocation and expiry apply to the next request, sessions or not.

A missing scope, a message or thread that is not in the caller's own mailbox, and bad
arguments are tool errors (``isError: true``) whose text names the problem, e.g.
``insufficient_scope: send_reply needs scope mail.send``.
"""

from __future__ import annotations

import json
from typing import Any

import mcp.types as types
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from examples.demo_mail.state import ProviderState
from examples.demo_mail.tokens import Tokens

_STR = {"type": "string"}
_SUMMARY_FIELDS = {"id": _STR, "thread_id": _STR, "from": _STR, "subject": _STR, "status": _STR}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


MESSAGE_SUMMARY = _object(_SUMMARY_FIELDS, list(_SUMMARY_FIELDS))
MESSAGE = _object({**_SUMMARY_FIELDS, "body": _STR}, [*_SUMMARY_FIELDS, "body"])

TOOLS: list[types.Tool] = [
    types.Tool(
        name="list_messages",
        title="List messages",
        description="List the messages in your mailbox, newest first.",
        input_schema=_object(
            {"limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20,
                       "description": "how many messages to return"}},
            [],
        ),
        output_schema=_object({"messages": {"type": "array", "items": MESSAGE_SUMMARY}}, ["messages"]),
        annotations=types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False,
        ),
    ),
    types.Tool(
        name="read_message",
        title="Read a message",
        description="Read one message of your mailbox, with its body.",
        input_schema=_object({"id": {"type": "string", "description": "the message id"}}, ["id"]),
        output_schema=MESSAGE,
        annotations=types.ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False,
        ),
    ),
    types.Tool(
        name="send_reply",
        title="Send a reply",
        description="Send a reply in one of your threads; it is appended to the thread.",
        input_schema=_object(
            {"thread_id": {"type": "string", "description": "the thread to reply in"},
             "body": {"type": "string", "minLength": 1, "description": "the text of the reply"}},
            ["thread_id", "body"],
        ),
        output_schema=_object({"id": _STR, "thread_id": _STR}, ["id", "thread_id"]),
        annotations=types.ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True,
        ),
    ),
]
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}
REQUIRED_SCOPE = {"list_messages": "mail.read", "read_message": "mail.read", "send_reply": "mail.send"}


class MailTokenVerifier:
    """The SDK's ``TokenVerifier``: only this server's live access tokens for ``/mcp`` pass."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        verified = self.tokens.verify(token)
        if verified is None:
            self.tokens.state.stats["token_rejections"] += 1
            return None
        return AccessToken(
            token=token, client_id=verified.client_id, scopes=verified.scopes, expires_at=verified.expires_at,
            resource=verified.audience, subject=verified.user, claims=verified.claims,
        )


def _caller(ctx: ServerRequestContext[Any]) -> AccessToken | None:
    """The access token of *this* HTTP request (not of the request that opened the session)."""
    scope = getattr(ctx.request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token
    return get_access_token()


def _result(structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))], structured_content=structured,
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def build_mcp_server(state: ProviderState) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        if name not in TOOLS_BY_NAME:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        state.mcp_calls[name] += 1
        token = _caller(ctx)
        if token is None or token.subject is None:  # the bearer middleware makes this unreachable
            return _error("unauthenticated")
        needed = REQUIRED_SCOPE[name]
        if needed not in token.scopes:
            state.stats["mcp_scope_denials"] += 1
            return _error(f"insufficient_scope: {name} needs scope {needed} (this token has: {' '.join(token.scopes)})")
        box = state.mailbox(token.subject)
        args = params.arguments or {}
        if name == "list_messages":
            limit = args.get("limit", 20)
            if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
                return _error("invalid arguments: limit must be an integer from 1 to 100")
            return _result({"messages": [m.summary() for m in box.newest(limit)]})
        if name == "read_message":
            message_id = args.get("id")
            if not isinstance(message_id, str):
                return _error("invalid arguments: id (string) is required")
            message = box.get(message_id)
            if message is None:
                return _error(f"no such message: {message_id}")
            return _result(message.full())
        thread_id, body = args.get("thread_id"), args.get("body")
        if not isinstance(thread_id, str) or not isinstance(body, str) or not body:
            return _error("invalid arguments: thread_id (string) and body (non-empty string) are required")
        sent = box.reply(thread_id, body)
        if sent is None:
            return _error(f"no such thread: {thread_id}")
        state.stats["sends"] += 1
        state.save()
        return _result({"id": sent.id, "thread_id": sent.thread_id})

    def input_schema(tool_name: str) -> dict[str, Any] | None:
        tool = TOOLS_BY_NAME.get(tool_name)
        return None if tool is None else tool.input_schema

    return Server(
        "demo-mail",
        version="1.0.0",
        title="Demo Mail",
        instructions="A demo mailbox: list and read your messages, and reply in a thread.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )
