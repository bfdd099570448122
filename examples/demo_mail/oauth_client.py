"""A minimal OAuth 2.1 client of the demo provider, for tests that just need a token.

Interlock has its own OAuth client; this one exists so that a test can get a provider token
in one line, or walk through the protocol step by step::

    client = OAuthClient(http, issuer, "interlock", "interlock-demo-secret", "http://127.0.0.1:9/cb")
    tokens = await client.obtain_tokens("alice", "alice-password", ["mail.read", "mail.send"])
    # or: request = client.authorization_request([...]); final = await complete_login_and_consent(...)
    #     code = client.code_from_redirect(final, request); tokens = await client.exchange_code(code, request)
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import httpx2

from examples.demo_mail.browser import complete_login_and_consent
from examples.demo_mail.tokens import s256


class TokenEndpointError(Exception):
    """An OAuth error from ``/token`` or ``/revoke`` (or from the authorization redirect)."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"HTTP {status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, code_challenge)`` for S256."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


@dataclass
class OAuthClient:
    http: httpx2.AsyncClient
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"

    @property
    def resource(self) -> str:
        return f"{self.issuer}/mcp"

    def authorization_request(
        self, scopes: Sequence[str], *, state: str | None = None, redirect_uri: str | None = None,
        resource: str | None = None, **extra: str,
    ) -> AuthorizationRequest:
        verifier, challenge = pkce_pair()
        state = state or secrets.token_urlsafe(16)
        redirect_uri = redirect_uri or self.redirect_uri
        params = {
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": " ".join(scopes), "state": state, "code_challenge": challenge,
            "code_challenge_method": "S256", "resource": resource or self.resource, **extra,
        }
        return AuthorizationRequest(f"{self.issuer}/authorize?{urlencode(params)}", state, verifier, redirect_uri)

    def code_from_redirect(self, final_url: str, request: AuthorizationRequest) -> str:
        """The ``code`` of the redirect back, after checking ``state`` and ``iss`` (RFC 9207)."""
        if not final_url.startswith(request.redirect_uri):
            raise TokenEndpointError(0, "wrong_redirect", final_url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(final_url).query).items()}
        if query.get("state") != request.state:
            raise TokenEndpointError(0, "state_mismatch", final_url)
        if query.get("iss") != self.issuer:
            raise TokenEndpointError(0, "iss_mismatch", final_url)
        if "error" in query:
            raise TokenEndpointError(0, query["error"], query.get("error_description", ""))
        return query["code"]

    async def _post(self, path: str, form: dict[str, str]) -> httpx2.Response:
        headers: dict[str, str] = {}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: form-urlencode id and secret, then Basic.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        return await self.http.post(f"{self.issuer}{path}", data=form, headers=headers)

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        response = await self._post("/token", form)
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise TokenEndpointError(response.status_code, body.get("error", "?"), body.get("error_description", ""))
        return body

    async def exchange_code(
        self, code: str, request: AuthorizationRequest, *, code_verifier: str | None = None,
        redirect_uri: str | None = None,
    ) -> dict[str, Any]:
        return await self._token({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or request.redirect_uri,
            "code_verifier": code_verifier if code_verifier is not None else request.code_verifier,
            "resource": self.resource,
        })

    async def refresh(self, refresh_token: str, *, scope: str | None = None) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope is not None:
            form["scope"] = scope
        return await self._token(form)

    async def revoke(self, token: str, *, hint: str | None = None) -> None:
        form = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
        response = await self._post("/revoke", form)
        if response.status_code != 200:
            body = response.json()
            raise TokenEndpointError(response.status_code, body.get("error", "?"), body.get("error_description", ""))

    async def obtain_tokens(self, username: str, password: str, scopes: Sequence[str]) -> dict[str, Any]:
        """The whole authorization-code flow with PKCE, the user played by the browser helper."""
        request = self.authorization_request(scopes)
        final = await complete_login_and_consent(self.http, request.url, username, password)
        return await self.exchange_code(self.code_from_redirect(final, request), request)
