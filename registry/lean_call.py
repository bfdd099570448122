"""The lean ``tools/call`` path: answered without the SDK server's per-message machinery.

``tools/call`` is what agents send all day, and the SDK's server side (pydantic validation of the
envelope, the dispatcher, SSE framing) costs milliseconds per message. For a plain tool call this
module parses only what the decision needs (msgspec), calls the one choke point,
``Executor.call`` -- the same decision, audit and vault as every other path -- and writes the
JSON-RPC response itself. Anything it is not sure about returns ``None`` and goes the SDK's way:
mismatched headers, unknown or foreign sessions, skills whose caller wants progress
notifications (those need the SDK's event stream), other methods. Both eras:

- 2026-07-28 (stateless): the request's ``MCP-Protocol-Version`` is a modern version and equals
  its ``_meta`` protocol version; the result carries ``resultType`` and our ``serverInfo``.
- 2025-11-25 (sessions): the ``Mcp-Session-Id`` names a live session opened by this same
  principal; a JSON (not SSE) response is one the streamable-HTTP transport allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import mcp.types as types
import msgspec
from mcp import UrlElicitationRequiredError
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from executor.errors import AccessDeniedError, ToolUnavailableError
from executor.skill_runner import SkillInputError, SkillPaused, SkillRunError
from executor.vault import AuthorizationRequired

ACCESS_DENIED = -32003
"""JSON-RPC error for a call the agent may make in principle but not now (user side, rule, scope);
`error.data` holds `reason`, `side` and `missing_scopes`. Unknown and ungranted tools answer -32602."""
PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
_encode = msgspec.json.Encoder().encode


class CallRequest(msgspec.Struct):
    """Only what the step-up check and the lean path need from a request body."""

    method: str = ""
    jsonrpc: str = ""
    id: int | str | None = None
    params: dict[str, Any] | None = None

    @property
    def tool(self) -> str | None:
        name = self.params.get("name") if self.method == "tools/call" and self.params else None
        return name if isinstance(name, str) else None


decode_request = msgspec.json.Decoder(CallRequest).decode


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def era(scope: MutableMapping[str, Any], request: CallRequest, sessions: Any,
        user: Callable[[], AuthenticatedUser]) -> str | None:
    """`modern`, `legacy`, or None when the SDK should answer this request itself."""
    if request.jsonrpc != "2.0" or request.id is None or request.params is None:
        return None
    version = _header(scope, b"mcp-protocol-version")
    method, name = _header(scope, b"mcp-method"), _header(scope, b"mcp-name")
    if method not in (None, "tools/call") or name not in (None, request.tool):
        return None  # the SDK answers a header mismatch with its structured rejection
    if version in MODERN_PROTOCOL_VERSIONS:
        meta = request.params.get("_meta")
        return "modern" if isinstance(meta, dict) and meta.get(PROTOCOL_META) == version else None
    session = _header(scope, b"mcp-session-id")
    if version in HANDSHAKE_PROTOCOL_VERSIONS and session is not None:
        # The SDK keeps no public view of its sessions; these two maps are read, never changed. If a
        # later SDK renames them, every call simply takes the SDK's path.
        live = getattr(sessions, "_server_instances", {})
        owners = getattr(sessions, "_session_owners", {})
        if session in live and owners.get(session) == authorization_context(user()):
            return "legacy"
    return None


async def answer(call: Callable[[dict[str, Any]], Awaitable[types.CallToolResult]], request: CallRequest,
                 kind: str, server_info: dict[str, Any]) -> bytes:
    """The JSON-RPC response body for one tools/call. ``call`` runs it with the arguments: a tool
    through ``Executor.call``, or a skill through its runner (whose steps go through it too)."""
    assert request.params is not None
    arguments = request.params.get("arguments") or {}
    try:
        if not isinstance(arguments, dict):
            raise ToolUnavailableError("`arguments` must be an object")
        result = await call(arguments)
        payload = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    except (ToolUnavailableError, SkillInputError, SkillRunError) as exc:
        return _error(request, types.INVALID_PARAMS, exc.message)
    except AccessDeniedError as exc:
        return _error(request, ACCESS_DENIED, exc.message, denial_data(exc))
    except (AuthorizationRequired, SkillPaused) as exc:
        needed = exc.request if isinstance(exc, SkillPaused) else exc
        if kind == "legacy":
            error = UrlElicitationRequiredError([types.ElicitRequestURLParams(
                message=exc.message, url=needed.url, elicitation_id=needed.flow_id)], exc.message).error
            return _error(request, error.code, error.message, error.data)
        request_for = types.ElicitRequest(params=types.ElicitRequestURLParams(message=exc.message, url=needed.url))
        payload = types.InputRequiredResult(input_requests={f"connect-{needed.provider}": request_for},
                                            request_state=needed.flow_id).model_dump(
            by_alias=True, exclude_none=True, mode="json")
    meta = payload.pop("_meta", None)
    if isinstance(meta, dict):
        meta.pop(SERVER_INFO_META, None)  # the upstream's identity is not ours to relay
    if kind == "modern":
        payload["_meta"] = {**(meta or {}), SERVER_INFO_META: server_info}
    else:
        payload.pop("resultType", None)
        if meta:
            payload["_meta"] = meta
    return _encode({"jsonrpc": "2.0", "id": request.id, "result": payload})


def denial_data(exc: AccessDeniedError) -> dict[str, Any]:
    return {"reason": exc.reason, "side": exc.side, "missing_scopes": list(exc.missing_scopes)}


def wants_progress(request: CallRequest) -> bool:
    meta = (request.params or {}).get("_meta")
    return isinstance(meta, dict) and "progressToken" in meta


def _error(request: CallRequest, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _encode({"jsonrpc": "2.0", "id": request.id, "error": error})
