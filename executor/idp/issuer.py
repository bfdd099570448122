"""The embedded OAuth 2.1 issuer, assembled: ``EmbeddedIssuer`` is what the web edge and the
gateway's token verifier talk to.

    EmbeddedIssuer(config, store, resources=..., environ=os.environ)
        .authorize / .login_page / .login      browser endpoints    (authorize.py)
        .token / .revoke / .introspect         client endpoints     (server.py, grants.py, ...)
        .metadata() / .jwks()                  discovery            (metadata.py, keys.py)
        .verification_keys() / .is_revoked()   for executor.identity.TokenVerifier (no HTTP)

Module map: ``passwords`` (scrypt hashes), ``users``, ``clients`` and ``client_metadata``
(who may ask), ``redirects``, ``pkce``, ``resource_indicators`` (what a request must carry),
``grants`` (how codes and refresh tokens are spent), ``tokens`` and ``keys`` (what is issued,
signed with what), ``revocation`` and ``introspection``, ``sessions`` (login cookie, CSRF),
``dev_tokens`` (``interlock token`` in dev mode).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
from joserfc.jwk import KeySet

from executor.idp.authorize import BrowserFlow
from executor.idp.client_metadata import ClientMetadataDocuments, MetadataDocumentError, is_metadata_client_id
from executor.idp.clients import Client, load_clients
from executor.idp.http import HttpRequest, HttpResponse, Page
from executor.idp.keys import KeyRing
from executor.idp.metadata import issuer_metadata
from executor.idp.server import IssuerServer
from executor.idp.sessions import Sessions
from executor.idp.tokens import TokenMinter
from executor.idp.users import Users
from registry.config import Config
from registry.store import IssuerStore


def issuer_url(config: Config) -> str:
    """The embedded issuer's identifier: ``{public_url}/idp``."""
    return f"{config.server.base_url()}/idp"


class ClientDirectory:
    """Config clients, then client ID metadata documents (fetched ahead of authlib's sync lookups)."""

    def __init__(self, registered: dict[str, Client], documents: ClientMetadataDocuments | None) -> None:
        self.registered = registered
        self.documents = documents

    def get(self, client_id: str) -> Client | None:
        client = self.registered.get(client_id)
        if client is None and self.documents is not None and is_metadata_client_id(client_id):
            client = self.documents.cached(client_id)
        return client

    async def prepare(self, client_id: str | None) -> str | None:
        """Make ``client_id`` known before authlib looks it up; the reason when it cannot be."""
        if client_id is None or client_id in self.registered or not is_metadata_client_id(client_id):
            return None
        if self.documents is None:
            return "this server does not accept client ID metadata documents; ask the admin to register the client"
        try:
            await self.documents.fetch(client_id)
        except MetadataDocumentError as exc:
            return str(exc)
        return None


class EmbeddedIssuer:
    def __init__(
        self, config: Config, store: IssuerStore, *, resources: Callable[[], Collection[str]],
        environ: Mapping[str, str], clock: Callable[[], float] = time.time, http: httpx2.AsyncClient | None = None,
    ) -> None:
        embedded = config.identity.embedded
        # authlib logs issued token responses and clients at DEBUG: never let a verbose root
        # level put tokens in the logs.
        logging.getLogger("authlib").setLevel(logging.WARNING)
        self.issuer = issuer_url(config)
        self.config = embedded
        self.store = store
        self.keys = KeyRing(store, clock)
        self.users = Users(embedded.users)
        documents = ClientMetadataDocuments(dev_mode=config.server.dev_mode, http=http) \
            if embedded.client_metadata_documents else None
        self.clients = ClientDirectory(load_clients(embedded.clients, environ), documents)
        self.minter = TokenMinter(self.issuer, self.keys, access_ttl=embedded.access_token_ttl_seconds,
                                  refresh_ttl=embedded.refresh_token_ttl_seconds, clock=clock)
        self.server = IssuerServer(
            issuer=self.issuer, store=store, minter=self.minter, users=self.users, clients=self.clients.get,
            resources=resources, example_resource=lambda: min(resources(), default=None),
            scopes=list(embedded.scopes), clock=clock)
        self.sessions = Sessions(self.keys.session_secret, path=urlsplit(self.issuer).path or "/",
                                 secure=self.issuer.startswith("https://"), clock=clock)
        self.flow = BrowserFlow(self.server, self.sessions, self.users, self.clients.prepare)

    async def aclose(self) -> None:
        if self.clients.documents is not None:
            await self.clients.documents.aclose()

    # -- browser endpoints

    async def authorize(self, request: HttpRequest) -> HttpResponse | Page:
        return await self.flow.authorize(request)

    def login_page(self, request: HttpRequest) -> Page:
        return self.flow.login_page(request)

    async def login(self, request: HttpRequest) -> HttpResponse | Page:
        return await self.flow.login(request)

    # -- client endpoints

    async def token(self, request: HttpRequest) -> HttpResponse:
        await self.clients.prepare(request.param("client_id", form=True))
        return self.server.token_response(request)

    async def revoke(self, request: HttpRequest) -> HttpResponse:
        await self.clients.prepare(request.param("client_id", form=True))
        return self.server.endpoint_response("revocation", request)

    def introspect(self, request: HttpRequest) -> HttpResponse:
        return self.server.endpoint_response("introspection", request)

    # -- discovery

    def metadata(self) -> dict[str, Any]:
        return issuer_metadata(self.issuer, list(self.config.scopes),
                               client_metadata_documents=self.clients.documents is not None)

    def jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    # -- for the gateway's token verifier (executor.identity.LocalIssuer)

    def verification_keys(self, *, refresh: bool = False) -> KeySet:
        return self.keys.verification_keys(refresh=refresh)

    def is_revoked(self, jti: str) -> bool:
        return self.store.is_token_revoked(jti)
