"""The ASGI app: authorization server, discovery documents, control endpoints and ``/mcp`` on one port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from examples.demo_mail.control import control_routes
from examples.demo_mail.login_and_consent import authorize_routes
from examples.demo_mail.mail_tools import MailTokenVerifier, build_mcp_server
from examples.demo_mail.metadata import metadata_routes
from examples.demo_mail.public_catalog import PublicCatalogAuth
from examples.demo_mail.settings import HOST, ProviderSettings
from examples.demo_mail.state import ProviderState
from examples.demo_mail.token_endpoint import token_routes
from examples.demo_mail.tokens import Tokens


class _CountUnauthorized:
    """Counts the ``401`` answers of the MCP endpoint into ``/_stats`` (``mcp_unauthorized``)."""

    def __init__(self, app: ASGIApp, state: ProviderState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.state.stats["mcp_unauthorized"] += 1
            await send(message)

        await self.app(scope, receive, counting_send if scope["type"] == "http" else send)


def create_app(settings: ProviderSettings) -> Starlette:
    """A fresh provider (its own state, keys and mailboxes, or those of ``settings.state_file``)."""
    state = ProviderState(settings)
    tokens = Tokens(state)
    server = build_mcp_server(state)
    # Authentication is ours, not the SDK's: the catalogue is public, calls need a token
    # (examples/demo_mail/public_catalog.py).
    mcp_app = PublicCatalogAuth(
        server.streamable_http_app(streamable_http_path="/mcp", host=HOST),
        MailTokenVerifier(tokens), f"{settings.issuer}/.well-known/oauth-protected-resource/mcp")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A mounted app's own lifespan never runs: the MCP session manager is entered here.
        async with server.session_manager.run():
            yield

    routes: list[BaseRoute] = [
        *metadata_routes(state),
        *authorize_routes(state, tokens),
        *token_routes(state, tokens),
        *control_routes(state, tokens),
        Mount("/", app=_CountUnauthorized(mcp_app, state)),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
