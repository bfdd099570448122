"""The provider's configuration, and the fixed demo users and scopes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

SCOPES: dict[str, str] = {
    "mail.read": "Read your messages",
    "mail.send": "Send replies on your behalf",
}
"""Every scope this provider knows, with the text the consent page shows for it."""

USERS: dict[str, str] = {"alice": "alice-password", "bob": "bob-password"}
"""The demo users and their (public, fixed) passwords."""

DEFAULT_CLIENT_ID = "interlock"
DEFAULT_CLIENT_SECRET = "interlock-demo-secret"
DEFAULT_ACCESS_TOKEN_TTL = 300
CODE_TTL = 120
"""Seconds an authorization code may wait for its exchange."""
PENDING_TTL = 900
"""Seconds a user may take over the login and consent pages."""


@dataclass(frozen=True)
class ProviderSettings:
    """One provider process. Every URL derives from ``port``; the host is always 127.0.0.1."""

    port: int
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: tuple[str, ...] = ()
    access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    state_file: Path | None = None
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    @property
    def issuer(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint, which is also the resource (RFC 8707) and every token's ``aud``."""
        return f"{self.issuer}/mcp"

    @property
    def resource_metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/oauth-protected-resource/mcp"
