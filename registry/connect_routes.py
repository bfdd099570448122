"""``/connect``: where a user grants a third-party connection for one (agent, user, provider).

An authorization request (``executor.vault.AuthorizationRequired``) points the user here. The
flow is bound to the (agent, user, provider) that started it (invariant 7):

1. ``GET /connect/{flow}``: the user first proves who they are at the identity provider the
   gateway trusts (OAuth code + PKCE, as Interlock's own login client) -- before any redirect
   to the third party.
2. ``GET /connect/login``: the identity provider's answer. If the user who logged in is not the
   user the flow was started for, nothing is bound, and the page says so; the flow stays open
   for its rightful user.
3. Then the browser goes to the provider (its own state and PKCE), and
   ``GET /connect/callback`` stores the provider's tokens in the vault, for that key only.

Every ``state`` is random, stored hashed, and single use; the flow expires (10 minutes).
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import Parameter
from litestar.response import Redirect

from executor.audit import AuditUnavailableError
from executor.connections import FlowRow
from executor.errors import AuthenticationError
from executor.identity import TokenVerifier
from executor.principal import User
from executor.provider_client import ProviderError, pkce_pair
from executor.vault import Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginClient:
    """Interlock's client at one identity provider, for confirming who completes a flow."""

    client_id: str
    secret: str | None = None


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _page(status: int, title: str, detail: str) -> Response[str]:
    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></body></html>")
    return Response(body, status_code=status, media_type="text/html",
                    headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'",
                             "X-Frame-Options": "DENY"})


def connect_routes(vault: Vault, verifier: TokenVerifier, login_clients: Callable[[str], LoginClient | None],
                   base_url: str, http: httpx2.AsyncClient, clock: Callable[[], float] = time.time
                   ) -> list[HTTPRouteHandler]:
    base = base_url.rstrip("/")
    audience = f"{base}/connect"
    store = vault.store
    metadata: dict[str, dict[str, Any]] = {}

    async def issuer_endpoints(issuer: str) -> dict[str, Any]:
        if issuer not in metadata:
            parts = urlsplit(issuer)
            url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"
            r = await http.get(url, timeout=10)
            doc = r.json() if r.status_code == 200 else {}
            if doc.get("issuer") != issuer:
                raise ProviderError("the identity provider's metadata could not be read")
            metadata[issuer] = doc
        return metadata[issuer]

    def seal(flow_id: str, verifier_text: str) -> str:
        return vault.sealer.seal(verifier_text.encode(), flow_id.encode())

    def unseal(flow: FlowRow) -> str:
        return vault.sealer.open(flow.sealed_verifier or "", flow.id.encode()).decode()

    def live(flow: FlowRow | None) -> FlowRow | None:
        return flow if flow is not None and flow.status != "completed" and flow.expires_at > clock() else None

    def note(flow: FlowRow, outcome: Any, *, reason: str | None = None, credential: str | None = None) -> None:
        if vault.audit is None:
            return
        try:
            vault.audit.authorization_completed(agent=flow.key.agent, user=User(flow.key.issuer, flow.key.subject),
                                                provider=flow.key.provider, flow=flow.id, outcome=outcome,
                                                credential_id=credential, reason=reason)
        except AuditUnavailableError as exc:
            log.error("connect: could not audit a flow's outcome: %s", exc.message)

    expired = _page(410, "This link has expired",
                    "It was already used or is too old. Go back to your agent and try again; it will give you a "
                    "new link.")

    @get("/connect/{flow_id:str}")
    async def start(flow_id: str) -> Response[Any]:
        flow = live(store.get_flow(flow_id))
        if flow is None:
            return expired
        login = login_clients(flow.key.issuer)
        if login is None:
            return _page(500, "This gateway cannot confirm who you are",
                         "An admin must give Interlock a login client at your identity provider.")
        try:
            endpoint = (await issuer_endpoints(flow.key.issuer))["authorization_endpoint"]
        except (ProviderError, httpx2.HTTPError, KeyError, ValueError):
            return _page(502, "Your identity provider did not answer", "Try again in a moment.")
        state = secrets.token_urlsafe(32)
        verifier_text, challenge = pkce_pair()
        store.put_flow(msgspec.structs.replace(flow, status="authenticating", login_state=_hash(state),
                                               sealed_verifier=seal(flow.id, verifier_text)))
        query = urlencode({"response_type": "code", "client_id": login.client_id,
                           "redirect_uri": f"{base}/connect/login", "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256", "scope": "openid", "resource": audience})
        return Redirect(f"{endpoint}?{query}", status_code=302)

    @get("/connect/login")
    async def logged_in(code: str = "", error: str = "",
                        oauth_state: str = Parameter(query="state", default="")) -> Response[Any]:
        flow = live(store.flow_by_state("login_state", _hash(oauth_state))) if oauth_state else None
        if flow is None:
            return expired
        store.put_flow(msgspec.structs.replace(flow, status="pending", login_state=None, sealed_verifier=None))
        if error or not code:
            return _page(400, "Sign-in did not complete", "Go back to your agent and try again.")
        login = login_clients(flow.key.issuer)
        assert login is not None  # checked when the flow started
        try:
            token_endpoint = (await issuer_endpoints(flow.key.issuer))["token_endpoint"]
            form = {"grant_type": "authorization_code", "code": code, "code_verifier": unseal(flow),
                    "redirect_uri": f"{base}/connect/login", "client_id": login.client_id, "resource": audience}
            if login.secret:
                form["client_secret"] = login.secret
            r = await http.post(token_endpoint, data=form, timeout=15)
            access = r.json().get("access_token") if r.status_code == 200 else None
            if not isinstance(access, str):
                raise AuthenticationError("the identity provider did not issue a token")
            who = await verifier.verify(access, audience)
        except (AuthenticationError, ProviderError, httpx2.HTTPError, KeyError, ValueError) as exc:
            log.warning("connect: sign-in for a flow failed: %s", type(exc).__name__)
            return _page(400, "Sign-in did not complete", "Go back to your agent and try again.")
        if (who.user.issuer, who.user.subject) != (flow.key.issuer, flow.key.subject):
            log.warning("connect: a flow was opened by another user than the one it was started for")
            note(flow, "mismatch", reason="completed by another user; nothing bound")
            return _page(403, "This link belongs to someone else",
                         "It was started for another user. Nothing was connected to your account or theirs.")
        provider = vault.providers[flow.key.provider]
        state2 = secrets.token_urlsafe(32)
        verifier2, challenge2 = pkce_pair()
        store.put_flow(msgspec.structs.replace(flow, status="authorizing", provider_state=_hash(state2),
                                               sealed_verifier=seal(flow.id, verifier2)))
        try:
            url = await provider.authorization_url(redirect_uri=f"{base}/connect/callback", state=state2,
                                                   challenge=challenge2, scopes=flow.scopes)
        except ProviderError:
            return _page(502, f"{provider.name} did not answer", "Try again in a moment.")
        return Redirect(url, status_code=302)

    @get("/connect/callback")
    async def callback(code: str = "", error: str = "",
                       oauth_state: str = Parameter(query="state", default="")) -> Response[Any]:
        flow = live(store.flow_by_state("provider_state", _hash(oauth_state))) if oauth_state else None
        if flow is None:
            return expired
        # Single use: the state is spent whatever happens next.
        store.put_flow(msgspec.structs.replace(flow, status="pending", provider_state=None, sealed_verifier=None))
        provider = vault.providers[flow.key.provider]
        if error or not code:
            note(flow, "denied", reason=error[:100] or "no code")
            return _page(400, f"{provider.name} was not connected", "Permission was not given. Nothing changed.")
        try:
            tokens = await provider.exchange_code(code=code, verifier=unseal(flow),
                                                  redirect_uri=f"{base}/connect/callback")
        except ProviderError as exc:
            log.warning("connect: code exchange failed: %s", exc.oauth_error or "no answer")
            note(flow, "failed", reason=exc.oauth_error or "no answer")
            return _page(502, f"{provider.name} was not connected", "The provider refused. Try again from your agent.")
        vault.save(flow.key, tokens, flow.scopes)
        store.put_flow(msgspec.structs.replace(flow, status="completed", provider_state=None, sealed_verifier=None))
        note(flow, "success", credential=tokens.access_token)
        return _page(200, f"{provider.name} is connected",
                     f"Agent {flow.key.agent} may now use {provider.name} for you. You can return to your agent.")

    return [start, logged_in, callback]
