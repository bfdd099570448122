"""OAuth clients of the embedded issuer, as authlib's ``ClientMixin`` sees them.

Two kinds:

- registered in the config (``identity.embedded.clients``): public (no secret) or confidential
  (a secret read once at start-up from the environment variable ``secret_env`` or the file
  ``secret_file``, never from the config text);
- client ID metadata documents (``client_metadata.py``): the ``client_id`` is an https URL
  whose JSON document names the client; always public.

Redirect URIs are matched by ``redirects.same_redirect_uri``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from authlib.oauth2.rfc6749 import ClientMixin

from executor.idp.errors import IssuerError
from executor.idp.redirects import same_redirect_uri
from registry.config import ClientConfig

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class Client(ClientMixin):  # type: ignore[misc]  # authlib is untyped
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str] | None
    """None: any scope the issuer supports."""
    secret: str | None = field(default=None, repr=False)
    """Set for confidential clients only; never in a repr (authlib logs clients)."""
    metadata_document: bool = False
    """Known from a client ID metadata document (not registered in the config)."""

    @property
    def confidential(self) -> bool:
        return self.secret is not None

    # -- ClientMixin

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several, the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scope to grant, or None (`invalid_scope`) if any requested scope is not this client's."""
        requested = (scope or "").split()
        if self.scopes is not None and not set(requested) <= self.scopes:
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(same_redirect_uri(redirect_uri, registered) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret is None:
            return False
        return hmac.compare_digest(client_secret.encode("utf-8"), self.secret.encode("utf-8"))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # OAuth 2.1 §2.4: a confidential client MUST authenticate; a public client has nothing to
        # authenticate with.
        return method in SECRET_METHODS if self.confidential else method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and not self.confidential:
            return False  # OAuth 2.1 §4.2: "MUST only be used by confidential clients"
        return grant_type in self.grant_types


def load_clients(configs: list[ClientConfig], environ: Mapping[str, str]) -> dict[str, Client]:
    """The config's clients with their secrets, read now. Raises ``IssuerError`` listing every
    client whose secret cannot be read (the message names where it was looked for, never a value)."""
    clients: dict[str, Client] = {}
    problems: list[str] = []
    for config in configs:
        secret: str | None = None
        if config.secret_env is not None:
            secret = environ.get(config.secret_env)
            if not secret:
                problems.append(f"client `{config.client_id}`: environment variable `{config.secret_env}` "
                                "is not set or empty; set it to the client's secret")
        elif config.secret_file is not None:
            try:
                secret = Path(config.secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"client `{config.client_id}`: cannot read secret file `{config.secret_file}` "
                                f"({exc.strerror or type(exc).__name__})")
            else:
                if not secret:
                    problems.append(f"client `{config.client_id}`: secret file `{config.secret_file}` is empty")
        clients[config.client_id] = Client(
            client_id=config.client_id,
            name=config.name or config.client_id,
            redirect_uris=tuple(config.redirect_uris),
            grant_types=frozenset(config.grant_types),
            scopes=frozenset(config.scopes) if config.scopes else None,
            secret=secret,
        )
    if problems:
        raise IssuerError("the embedded issuer cannot start:\n" + "\n".join(f"  {p}" for p in problems))
    return clients
