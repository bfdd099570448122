"""RFC 9728 OAuth 2.0 Protected Resource Metadata, and the RFC 6750 challenge that points at it.

RFC 9728 §3: the metadata for a resource ``https://host/path`` is served at
``https://host/.well-known/oauth-protected-resource/path``. §5.1: a 401 "MUST"
... carry ``resource_metadata`` in ``WWW-Authenticate`` so a client can find it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def resource_uri(base_url: str, gateway: str) -> str:
    """The gateway's canonical resource URI (RFC 8707): the token audience."""
    return f"{base_url.rstrip('/')}/mcp/{gateway}"


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"


def metadata(resource: str, authorization_servers: list[str], scopes: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": authorization_servers,
        "bearer_methods_supported": ["header"],
    }
    if scopes:
        doc["scopes_supported"] = scopes
    return doc


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    resource: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """RFC 6750 §3: no ``error`` when the request carried no token at all."""
    params: list[tuple[str, str]] = []
    if error:
        params.append(("error", error))
    if description:
        params.append(("error_description", description))
    if scope:
        params.append(("scope", scope))
    params.append(("resource_metadata", metadata_url(resource)))
    return "Bearer " + ", ".join(f"{k}={_quote(v)}" for k, v in params)
