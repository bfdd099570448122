"""The admin REST API under ``/admin/api``: curate what agents can reach.

Authorized like everything else, by a bearer token from a trusted issuer, whose
audience is ``{public_url}/admin/api``, and by the admin decision
(``executor.policy.is_admin``): an admin *user* acting through an admin *client*.
An agent never gets admin power from its user's admin role. Everything here the
CLI can do too; both call the same registry functions. Every change is
recorded in the audit trail as made by the admin (client and user).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide

from executor.audit import AuditUnavailableError
from executor.audit_recorder import Actor, AdminAudit, Recorder
from executor.errors import AuthenticationError, CatalogError
from executor.identity import TokenVerifier
from executor.principal import Principal
from executor.resource_metadata import www_authenticate
from executor.upstream import UpstreamPool
from registry.catalog import Catalog
from registry.store import Store
from registry.sync import bless_tools, sync_server


class AdminDenied(Exception):
    """Answered as `{"error": code, "error_description": ...}`, the OAuth error shape."""

    def __init__(self, status: int, code: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.code, self.description, self.headers = status, code, description, headers


def admin_denied(_: Request[Any, Any, Any], exc: AdminDenied) -> Response[Any]:
    return Response({"error": exc.code, "error_description": exc.description}, status_code=exc.status,
                    headers=exc.headers)


def admin_controller(store: Store, catalog: Catalog, verifier: TokenVerifier, upstreams: UpstreamPool,
                     base_url: str, audit: Recorder | None = None) -> type[Controller]:
    resource = f"{base_url.rstrip('/')}/admin/api"

    def audited_by(admin: Principal) -> AdminAudit | None:
        return audit.admin(Actor.of(admin)) if audit is not None else None

    async def current_admin(request: Request[Any, Any, Any]) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationError("a bearer token is required", missing=True)
            verifier.set_issuers(catalog.current().issuers)
            principal = await verifier.verify(token.strip(), resource)
        except AuthenticationError as exc:
            challenge = (www_authenticate(resource) if exc.missing
                         else www_authenticate(resource, error="invalid_token", description=exc.description))
            raise AdminDenied(401, "invalid_token", exc.description, {"WWW-Authenticate": challenge}) from None
        decision = catalog.current().is_admin(principal)
        if not decision.allowed:
            why = ("this client is not an admin client; admin actions need an admin user acting "
                   "through an admin client") if decision.side == "agent" else "your user is not an admin"
            raise AdminDenied(403, "forbidden", f"{why} ({decision.reason})")
        return principal

    class AdminController(Controller):
        path = "/admin/api"
        dependencies = {"admin": Provide(current_admin)}
        exception_handlers = {AdminDenied: admin_denied}

        @get("/whoami")
        async def whoami(self, admin: Principal) -> dict[str, Any]:
            return {"agent": admin.agent, "user": str(admin.user), "admin": True}

        @get("/servers")
        async def servers(self, admin: Principal) -> Any:
            return msgspec.to_builtins(store.list_servers())

        @get("/tools")
        async def tools(self, admin: Principal, status: str | None = None) -> Any:
            return msgspec.to_builtins([t for t in store.list_tools() if status is None or t.status == status])

        @post("/tools/{name:str}/bless", status_code=200)
        async def bless(self, admin: Principal, name: str) -> Any:
            try:
                return msgspec.to_builtins(bless_tools(store, [name], audited_by(admin)))
            except CatalogError as exc:
                raise AdminDenied(400, exc.code, exc.message) from None
            except AuditUnavailableError as exc:
                raise AdminDenied(503, exc.code, f"the change was made, but not audited: {exc.message}") from None

        @post("/servers/{name:str}/sync", status_code=200)
        async def sync(self, admin: Principal, name: str) -> Any:
            try:
                return msgspec.to_builtins(await sync_server(store, upstreams, name, audited_by(admin)))
            except CatalogError as exc:
                raise AdminDenied(400, exc.code, exc.message) from None
            except AuditUnavailableError as exc:
                raise AdminDenied(503, exc.code, f"the change was made, but not audited: {exc.message}") from None

    return AdminController
