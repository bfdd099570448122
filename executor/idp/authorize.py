"""The browser side of the authorization code flow: ``/idp/authorize``, the login page, consent.

    client ──▶ GET /idp/authorize?response_type=code&client_id&redirect_uri&code_challenge&resource&state
                 │ client known? (config, or its metadata document fetched)   else: error page
                 │ request valid? (redirect URI, PKCE S256, scope, resource)  else: error to the
                 │                                          redirect URI if it is valid, else error page
                 │ logged in? (session cookie)                                else: 303 → /idp/login
                 │ metadata-document client? → consent page (POST back with CSRF token)
                 ▼
               302 → redirect_uri?code&state&iss        (RFC 9207 `iss`; code lives 60 s, single use)

Config-registered clients get no consent screen: the admin registered them. Pages are
returned as ``Page`` values; the edge renders them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import OAuth2Error

from executor.idp.http import HttpRequest, HttpResponse, Page, SetCookie, redirect
from executor.idp.server import IssuerServer, describe
from executor.idp.sessions import CSRF_COOKIE, SESSION_COOKIE, Sessions
from executor.idp.users import Users

MAX_PASSWORD = 1024


class BrowserFlow:
    def __init__(
        self, server: IssuerServer, sessions: Sessions, users: Users,
        prepare_client: Callable[[str | None], Awaitable[str | None]],
    ) -> None:
        self.server = server
        self.issuer = server.issuer
        self.sessions = sessions
        self.users = users
        self._prepare_client = prepare_client

    # -- /idp/authorize

    async def authorize(self, request: HttpRequest) -> HttpResponse | Page:
        params = request.query if request.method == "GET" else request.form
        client_id = next((v for k, v in params if k == "client_id"), None)
        problem = await self._prepare_client(client_id)
        if problem:
            return _error_page("invalid_client", problem)
        oauth = self.server.create_oauth2_request(request)
        try:
            grant = self.server.get_consent_grant(oauth)
        except OAuth2Error as error:
            return self._authorization_error(oauth, error)

        session = self.sessions.read(request.cookies.get(SESSION_COOKIE))
        user = self.users.get(session.username, auth_time=session.auth_time) if session else None
        if user is None:
            return_to = f"{self.issuer}/authorize?{urlencode(params)}"
            return redirect(f"{self.issuer}/login?{urlencode({'return_to': return_to})}", status=303)

        client = grant.request.client
        if client.metadata_document:
            if request.method == "GET":
                return self._consent_page(request, client, grant.redirect_uri, params, user.username)
            if not self.sessions.check_csrf(request.cookies.get(CSRF_COOKIE), request.param("csrf_token", form=True)):
                return _error_page("invalid_request", "the form expired or did not come from this server; "
                                   "start again from your application")
            if request.param("decision", form=True) != "allow":
                user = None  # authlib answers access_denied to the client
        response: HttpResponse = self.server.create_authorization_response(oauth, grant_user=user, grant=grant)
        return response

    def _authorization_error(self, oauth: Any, error: OAuth2Error) -> HttpResponse | Page:
        # RFC 6749 §4.1.2.1: without a valid redirect URI (or client) the server "MUST NOT
        # automatically redirect the user-agent to the invalid redirection URI".
        if not error.redirect_uri:
            return _error_page(error.error, describe(error))
        response: HttpResponse = self.server.handle_error_response(oauth, error)
        if response.location:
            response.location = add_params_to_uri(response.location, {"iss": self.issuer})  # RFC 9207 §2
        return response

    def _consent_page(self, request: HttpRequest, client: Any, redirect_uri: str, params: Any,
                      username: str) -> Page:
        token, cookie = self.sessions.csrf(request.cookies.get(CSRF_COOKIE))
        target = urlsplit(redirect_uri)
        return Page("consent.html", {
            "client_name": client.name,
            "client_id": client.client_id,
            "redirect_host": target.netloc or f"{target.scheme}:",
            "scopes": next((v for k, v in params if k == "scope"), "").split(),
            "resource": next((v for k, v in params if k == "resource"), ""),
            "username": username,
            "action": f"{self.issuer}/authorize",
            "fields": [(k, v) for k, v in params if k not in ("csrf_token", "decision")],
            "csrf_token": token,
        }, cookies=(cookie,) if cookie else ())

    # -- /idp/login

    def login_page(self, request: HttpRequest) -> Page:
        return self._login_page(request, return_to=self._return_to(request.param("return_to")))

    async def login(self, request: HttpRequest) -> HttpResponse | Page:
        return_to = self._return_to(request.param("return_to", form=True))
        if not self.sessions.check_csrf(request.cookies.get(CSRF_COOKIE), request.param("csrf_token", form=True)):
            return self._login_page(request, return_to=return_to, status=400,
                                    error="the form expired or did not come from this server; please try again")
        username = request.param("username", form=True) or ""
        password = request.param("password", form=True) or ""
        ok = len(password) <= MAX_PASSWORD and await anyio.to_thread.run_sync(
            self.users.check_password, username, password)
        if not ok:
            return self._login_page(request, return_to=return_to, status=401, username=username,
                                    error="wrong username or password")
        cookie = self.sessions.start(username)
        if return_to:
            return redirect(return_to, status=303, cookies=(cookie,))
        return Page("login.html", {"signed_in": username}, cookies=(cookie,))

    def _login_page(self, request: HttpRequest, *, return_to: str | None, status: int = 200,
                    username: str = "", error: str | None = None) -> Page:
        token, cookie = self.sessions.csrf(request.cookies.get(CSRF_COOKIE))
        cookies: tuple[SetCookie, ...] = (cookie,) if cookie else ()
        return Page("login.html", {"action": f"{self.issuer}/login", "csrf_token": token, "return_to": return_to or "",
                                   "username": username, "error": error, "signed_in": None},
                    status=status, cookies=cookies)

    def _return_to(self, value: str | None) -> str | None:
        """Only back into our own authorization endpoint: never an open redirect."""
        prefix = f"{self.issuer}/authorize?"
        if value and value.startswith(prefix) and "\\" not in value and "#" not in value:
            return value
        return None


def _error_page(error: str, description: str) -> Page:
    return Page("error.html", {"error": error, "description": description}, status=400)
