"""Discovery documents: RFC 8414 authorization-server metadata, RFC 9728 protected-resource
metadata for ``/mcp``, and the JWKS that verifies the access tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.demo_mail.settings import SCOPES
from examples.demo_mail.state import ProviderState


def authorization_server_metadata(state: ProviderState) -> dict[str, Any]:
    issuer = state.settings.issuer
    auth_methods = ["client_secret_basic", "client_secret_post"]
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "jwks_uri": f"{issuer}/jwks",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


def protected_resource_metadata(state: ProviderState) -> dict[str, Any]:
    settings = state.settings
    return {
        "resource": settings.mcp_url,
        "authorization_servers": [settings.issuer],
        "scopes_supported": list(SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": "Demo Mail",
    }


def metadata_routes(state: ProviderState) -> list[Route]:
    async def as_metadata(request: Request) -> Response:
        return JSONResponse(authorization_server_metadata(state))

    async def pr_metadata(request: Request) -> Response:
        return JSONResponse(protected_resource_metadata(state))

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [dict(state.signing_key.as_dict(private=False))]})

    return [
        Route("/.well-known/oauth-authorization-server", as_metadata, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource/mcp", pr_metadata, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource", pr_metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
    ]
