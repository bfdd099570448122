"""Bearer authentication for ``/mcp`` in which the tool *catalogue* is public.

A gateway pins an upstream's tool definitions before any user has connected, so discovery
(`initialize`, `server/discover`, `tools/list` and notifications) is answered without a token.
Every other request, and every tool call, needs one of this provider's live access tokens;
without it the answer is 401 with `WWW-Authenticate` pointing at the RFC 9728 metadata. A
request that carries a token always has it checked, whatever the method.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_METHODS = frozenset({"initialize", "server/discover", "tools/list", "notifications/initialized"})


class PublicCatalogAuth:
    def __init__(self, app: ASGIApp, verifier: Any, resource_metadata_url: str) -> None:
        self.app = app
        self.verifier = verifier
        self.challenge = f'Bearer resource_metadata="{resource_metadata_url}"'

    async def _deny(self, send: Send, error: str | None = None) -> None:
        challenge = self.challenge if error is None else f'Bearer error="{error}", {self.challenge[7:]}'
        body = json.dumps({"error": error or "invalid_request",
                           "error_description": "a bearer token from this provider is required"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", challenge.encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            verified: AccessToken | None = await self.verifier.verify_token(token.strip())
            if verified is None:
                await self._deny(send, "invalid_token")
                return
            scope["user"] = AuthenticatedUser(verified)
            scope["auth"] = AuthCredentials(verified.scopes)
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self._deny(send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            method = json.loads(body).get("method")
        except (ValueError, AttributeError):
            method = None
        if method not in PUBLIC_METHODS:
            await self._deny(send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
