"""The Litestar application: the MCP surface, RFC 9728 metadata, health; and its lifespan.

Frameworks stay here at the edge; the decision and the call path know nothing of Litestar.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote

import anyio
import httpx2
import msgspec
from litestar import Litestar, Response, get
from litestar.handlers import asgi
from litestar.openapi import OpenAPIConfig
from litestar.types import Receive, Scope, Send

from executor.audit import AuditLog
from executor.audit_recorder import Actor, Recorder
from executor.call import Executor
from executor.errors import CatalogError, StoreError
from executor.identity import TokenVerifier
from executor.idp.issuer import EmbeddedIssuer
from executor.resource_metadata import metadata, resource_uri
from executor.skill_runner import SkillRunner
from executor.upstream import UpstreamPool
from executor.vault import Vault
from registry.admin_api import admin_controller
from registry.audit_store import GatewayArguments, open_configured, retention_watch
from registry.catalog import Catalog
from registry.config import ClientConfig, Config
from registry.connect_routes import LoginClient, connect_routes
from registry.idp_routes import idp_routes
from registry.store import Store
from registry.surface import McpSurface
from registry.sync import sync_server
from registry.vault_setup import build_vault

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    store: Store
    catalog: Catalog
    upstreams: UpstreamPool
    executor: Executor
    verifier: TokenVerifier
    surface: McpSurface
    issuer: EmbeddedIssuer | None = None
    """The embedded OAuth issuer under /idp, when `identity.embedded.enabled`."""
    vault: Vault | None = None
    http: httpx2.AsyncClient | None = None
    """Outbound HTTP to providers and identity providers (not to upstreams: the pool has its own)."""
    audit: Recorder | None = None
    """The audit trail's recording API (always set by ``build_runtime``)."""


CONNECT_CLIENT = "interlock-connect"
"""Interlock's own client at the embedded issuer, through which users sign in at `/connect`."""


def build_runtime(config: Config, store: Store, audit_log: AuditLog | None = None) -> Runtime:
    """``audit_log``: the trail to record to (default: open the one ``config.audit`` names)."""
    base_url = config.server.base_url()
    audit = Recorder(audit_log or open_configured(config.audit), GatewayArguments(store))
    catalog = Catalog(store)
    upstreams = UpstreamPool()
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(15.0))
    # Vault keys and provider secrets are read from the environment here, once, at start-up.
    vault = build_vault(store, base_url=base_url, env=os.environ, config=config.vault,
                        database=config.server.database, http=http, audit=audit)
    executor = Executor(catalog, upstreams, vault, audit=audit)
    verifier = TokenVerifier(catalog.current().issuers)
    surface = McpSurface(catalog, executor, verifier, base_url, SkillRunner(executor, catalog, store, audit=audit))
    issuer = None
    if config.identity.embedded.enabled:
        embedded = config.identity.embedded
        connect_client = ClientConfig(client_id=CONNECT_CLIENT, name="Interlock", grant_types=["authorization_code"],
                                      redirect_uris=[f"{base_url}/connect/login"])
        with_connect = msgspec.structs.replace(config, identity=msgspec.structs.replace(
            config.identity, embedded=msgspec.structs.replace(embedded, clients=[*embedded.clients, connect_client])))
        own = {f"{base_url}/connect", f"{base_url}/admin/api"}
        issuer = EmbeddedIssuer(with_connect, store, environ=os.environ,
                                resources=lambda: own | {resource_uri(base_url, g) for g in catalog.current().gateways})
        verifier.register_local_issuer(issuer)
    return Runtime(config, store, catalog, upstreams, executor, verifier, surface, issuer, vault, http, audit)


def login_client(runtime: Runtime, issuer: str) -> LoginClient | None:
    """Interlock's client at ``issuer``, for users confirming who they are at `/connect`."""
    if runtime.issuer is not None and issuer == runtime.issuer.issuer:
        return LoginClient(CONNECT_CLIENT)
    for trusted in runtime.catalog.current().issuers:
        if trusted.issuer == issuer and trusted.login_client_id:
            secret = os.environ.get(trusted.login_client_secret_env) if trusted.login_client_secret_env else None
            return LoginClient(trusted.login_client_id, secret)
    return None


async def sync_all(runtime: Runtime, *, only_unsynced: bool) -> None:
    """Sync blessed servers concurrently; each is bounded by its own timeout, a failure is logged."""

    async def one(name: str) -> None:
        try:
            audit = runtime.audit.admin(Actor("interlock-server")) if runtime.audit else None
            report = await sync_server(runtime.store, runtime.upstreams, name, audit)
            log.info("synced %s: %s", name, report.counts)
        except (CatalogError, StoreError) as exc:
            log.warning("%s", exc.message)

    async with anyio.create_task_group() as tg:
        for server in runtime.store.list_servers():
            if not (only_unsynced and server.synced_at is not None):
                tg.start_soon(one, server.name)


async def _drift_watch(runtime: Runtime) -> None:
    interval = runtime.config.server.sync_interval_seconds
    while interval > 0:
        await anyio.sleep(interval)
        await sync_all(runtime, only_unsynced=False)


def create_app(runtime: Runtime) -> Litestar:
    base_url = runtime.config.server.base_url()

    @get("/.well-known/oauth-protected-resource/mcp/{gateway:str}", sync_to_thread=False)
    def protected_resource(gateway: str) -> Response[dict[str, object]]:
        snapshot = runtime.catalog.current()
        if gateway not in snapshot.gateways:
            return Response({"error": "not_found", "error_description": "no such gateway"}, status_code=404)
        embedded = [runtime.issuer.issuer] if runtime.issuer else []
        return Response(metadata(resource_uri(base_url, gateway), [*embedded, *(i.issuer for i in snapshot.issuers)]))

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, object]:
        return {"status": "ok", "generation": runtime.catalog.current().generation}

    @asgi("/mcp", is_mount=True, copy_scope=True)
    async def mcp_mount(scope: Scope, receive: Receive, send: Send) -> None:
        # Litestar rewrites the mounted path; the surface routes on the real one.
        scope["path"] = unquote(scope["raw_path"].decode("latin-1"))
        await runtime.surface(scope, receive, send)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with runtime.surface.running(), anyio.create_task_group() as tg:
            # Servers never synced are synced before we accept traffic, so a fresh gateway
            # does not answer with an empty catalogue.
            await sync_all(runtime, only_unsynced=True)
            tg.start_soon(_drift_watch, runtime)
            if runtime.audit is not None:
                tg.start_soon(retention_watch, runtime.audit.log, runtime.config.audit.retention_days)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                await runtime.upstreams.aclose()
                await runtime.verifier.aclose()
                if runtime.issuer is not None:
                    await runtime.issuer.aclose()
                if runtime.http is not None:
                    await runtime.http.aclose()

    admin = admin_controller(runtime.store, runtime.catalog, runtime.verifier, runtime.upstreams, base_url,
                             runtime.audit)
    idp = idp_routes(runtime.issuer, base_url) if runtime.issuer is not None else []
    connect = []
    if runtime.vault is not None and runtime.http is not None:
        connect = connect_routes(runtime.vault, runtime.verifier, lambda iss: login_client(runtime, iss), base_url,
                                 runtime.http)
    openapi = OpenAPIConfig(title="Interlock admin API", version="0.1.0", path="/admin/api/schema")
    return Litestar(route_handlers=[protected_resource, healthz, mcp_mount, admin, *idp, *connect], lifespan=[lifespan],
                    openapi_config=openapi)
