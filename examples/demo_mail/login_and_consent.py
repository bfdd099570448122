"""``/authorize``: check the authorization request, log the user in, ask for consent, redirect back.

The user's browser sees three pages::

    GET  /authorize?response_type=code&client_id&redirect_uri&scope&state&code_challenge
                   &code_challenge_method=S256[&resource]          → login form (sets a browser cookie)
    POST /authorize/login     request_id, csrf_token, username, password
                                                                    → 303 to the consent page (401 + form again
                                                                      on a bad password)
    GET  /authorize/consent?request_id=…                           → consent form
    POST /authorize/consent   request_id, csrf_token, scope…, decision=allow|deny
                                                                    → 303 to redirect_uri?code&state&iss
                                                                      (or ?error=access_denied&state&iss)

An unknown ``client_id`` or a ``redirect_uri`` that is not registered exactly gets an HTML error
page (400) and no redirect (RFC 6749 §4.1.2.1). Every other problem is redirected back to the
client as ``error=…`` with ``state`` and ``iss`` (RFC 9207). The user logs in on every
authorization; the forms work only from the browser (cookie) that opened ``/authorize``.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from examples.demo_mail import pages
from examples.demo_mail.settings import PENDING_TTL, SCOPES
from examples.demo_mail.state import PendingAuthorization, ProviderState
from examples.demo_mail.tokens import Tokens

BROWSER_COOKIE = "demo_mail_browser"
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PAGE_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def redirect_with(uri: str, params: dict[str, str]) -> str:
    """``uri`` with ``params`` added to its query (keeping any query it already has)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)


def _error(error: str, description: str, status: int = 400) -> HTMLResponse:
    return _html(pages.error_page(error, description), status)


def authorize_routes(state: ProviderState, tokens: Tokens) -> list[Route]:
    settings = state.settings

    def back_to_client(redirect_uri: str, client_state: str | None, **params: str) -> RedirectResponse:
        if client_state is not None:
            params["state"] = client_state
        params["iss"] = settings.issuer
        return RedirectResponse(redirect_with(redirect_uri, params), status_code=303, headers=_PAGE_HEADERS)

    def find_pending(request_id: str, request: Request) -> PendingAuthorization | Response:
        state.forget_stale()
        pending = state.pending.get(request_id)
        if pending is None:
            return _error("invalid_request", "unknown or expired authorization request; start again")
        cookie = request.cookies.get(BROWSER_COOKIE, "")
        if not hmac.compare_digest(cookie, pending.browser):
            return _error("invalid_request", "this authorization was started in another browser", 403)
        return pending

    def check_csrf(pending: PendingAuthorization, token: str) -> Response | None:
        if not hmac.compare_digest(token, pending.csrf_token):
            return _error("invalid_request", "bad CSRF token", 403)
        return None

    async def authorize(request: Request) -> Response:
        state.stats["authorization_requests"] += 1
        query = request.query_params
        for name in ("client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge"):
            if len(query.getlist(name)) > 1:
                return _error("invalid_request", f"parameter {name} given more than once")
        client_id = query.get("client_id", "")
        if client_id != settings.client_id:
            return _error("invalid_request", "unknown client_id")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in settings.redirect_uris:
            return _error("invalid_request", "redirect_uri is missing or not registered for this client")
        client_state = query.get("state")

        def fail(error: str, description: str) -> Response:
            state.stats["authorization_errors"] += 1
            return back_to_client(redirect_uri, client_state, error=error, error_description=description)

        if query.get("response_type") != "code":
            return fail("unsupported_response_type", "only response_type=code is supported")
        challenge = query.get("code_challenge", "")
        if not challenge:
            return fail("invalid_request", "code_challenge is required (PKCE)")
        if query.get("code_challenge_method") != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.match(challenge):
            return fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
        scopes = query.get("scope", "").split()
        if not scopes:
            return fail("invalid_scope", f"scope is required; known scopes: {' '.join(SCOPES)}")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            return fail("invalid_scope", f"unknown scope {' '.join(unknown)}")
        resources = query.getlist("resource")
        if len(resources) > 1 or (resources and resources[0].rstrip("/") != settings.mcp_url):
            return fail("invalid_target", f"the only resource here is {settings.mcp_url}")

        browser = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(24)
        pending = PendingAuthorization(
            id=secrets.token_urlsafe(16), csrf_token=secrets.token_urlsafe(24), browser=browser,
            client_id=client_id, redirect_uri=redirect_uri, scopes=list(dict.fromkeys(scopes)),
            state=client_state, code_challenge=challenge, resource=settings.mcp_url,
            expires_at=time.time() + PENDING_TTL,
        )
        state.forget_stale()
        state.pending[pending.id] = pending
        response = _html(pages.login_page(client_id=client_id, request_id=pending.id, csrf_token=pending.csrf_token))
        response.set_cookie(BROWSER_COOKIE, browser, path="/authorize", httponly=True, samesite="lax")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        found = find_pending(str(form.get("request_id", "")), request)
        if not isinstance(found, PendingAuthorization):
            return found
        pending = found
        bad = check_csrf(pending, str(form.get("csrf_token", "")))
        if bad is not None:
            return bad
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        expected = settings.users.get(username)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            state.stats["logins_failed"] += 1
            page = pages.login_page(
                client_id=pending.client_id, request_id=pending.id, csrf_token=pending.csrf_token,
                username=username, error="Invalid username or password.",
            )
            return _html(page, 401)
        state.stats["logins"] += 1
        pending.user = username
        return RedirectResponse(
            f"/authorize/consent?{urlencode({'request_id': pending.id})}", status_code=303, headers=_PAGE_HEADERS,
        )

    async def consent_form(request: Request) -> Response:
        found = find_pending(request.query_params.get("request_id", ""), request)
        if not isinstance(found, PendingAuthorization):
            return found
        if found.user is None:
            return _error("invalid_request", "sign in first")
        return _html(pages.consent_page(
            client_id=found.client_id, user=found.user, request_id=found.id, csrf_token=found.csrf_token,
            scopes=[(s, SCOPES[s]) for s in found.scopes],
        ))

    async def consent(request: Request) -> Response:
        form = await request.form()
        found = find_pending(str(form.get("request_id", "")), request)
        if not isinstance(found, PendingAuthorization):
            return found
        pending = found
        bad = check_csrf(pending, str(form.get("csrf_token", "")))
        if bad is not None:
            return bad
        if pending.user is None:
            return _error("invalid_request", "sign in first")
        del state.pending[pending.id]
        ticked = {str(v) for v in form.getlist("scope")}
        granted = [s for s in pending.scopes if s in ticked]
        if form.get("decision") != "allow" or not granted:
            state.stats["consents_denied"] += 1
            return back_to_client(
                pending.redirect_uri, pending.state, error="access_denied", error_description="the user denied access",
            )
        state.stats["consents_allowed"] += 1
        code = tokens.issue_code(pending, granted)
        return back_to_client(pending.redirect_uri, pending.state, code=code)

    return [
        Route("/authorize", authorize, methods=["GET"]),
        Route("/authorize/login", login, methods=["POST"]),
        Route("/authorize/consent", consent_form, methods=["GET"]),
        Route("/authorize/consent", consent, methods=["POST"]),
    ]
