"""``/token`` (authorization_code, refresh_token) and ``/revoke`` (RFC 7009), client-authenticated.

The one registered client is confidential and may authenticate either way:

- ``client_secret_basic``: ``Authorization: Basic base64(urlencode(id):urlencode(secret))``;
- ``client_secret_post``: ``client_id`` and ``client_secret`` form fields.

Using both at once is an ``invalid_request``; a wrong or missing secret is ``401 invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import unquote_plus

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples.demo_mail.state import ProviderState
from examples.demo_mail.tokens import OAuthError, Tokens

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers={**_NO_STORE, **(headers or {})})


def _oauth_error(exc: OAuthError, *, basic: bool = False) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="demo-mail"'} if exc.status == 401 and basic else None
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _single(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"parameter {name} given more than once")
    return str(values[0]) if values else None


def authenticate_client(state: ProviderState, request: Request, form: FormData) -> str:
    """The authenticated ``client_id``, or :class:`OAuthError` ``invalid_client`` (401)."""
    settings = state.settings
    header = request.headers.get("authorization", "")
    form_id, form_secret = _single(form, "client_id"), _single(form, "client_secret")
    if header.lower().startswith("basic "):
        if form_secret is not None:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            raw_id, _, raw_secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form_id is not None and form_id != client_id:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
    else:
        if form_id is None or form_secret is None:
            raise OAuthError("invalid_client", "client authentication required", 401)
        client_id, secret = form_id, form_secret
    if client_id != settings.client_id or not hmac.compare_digest(secret.encode(), settings.client_secret.encode()):
        state.stats["client_auth_failures"] += 1
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    return client_id


def token_routes(state: ProviderState, tokens: Tokens) -> list[Route]:
    async def token(request: Request) -> Response:
        basic = request.headers.get("authorization", "").lower().startswith("basic ")
        try:
            form = await request.form()
            client_id = authenticate_client(state, request, form)
            grant_type = _single(form, "grant_type")
            if grant_type == "authorization_code":
                code = _single(form, "code")
                if not code:
                    raise OAuthError("invalid_request", "code is required")
                result = tokens.redeem_code(
                    client_id, code, _single(form, "redirect_uri"), _single(form, "code_verifier"),
                    _single(form, "resource"),
                )
            elif grant_type == "refresh_token":
                refresh_token = _single(form, "refresh_token")
                if not refresh_token:
                    raise OAuthError("invalid_request", "refresh_token is required")
                result = tokens.refresh(client_id, refresh_token, _single(form, "scope"), _single(form, "resource"))
            else:
                raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")
        except OAuthError as exc:
            state.stats["token_errors"] += 1
            return _oauth_error(exc, basic=basic)
        return _json(result)

    async def revoke(request: Request) -> Response:
        basic = request.headers.get("authorization", "").lower().startswith("basic ")
        try:
            form = await request.form()
            client_id = authenticate_client(state, request, form)
            value = _single(form, "token")
            if not value:
                raise OAuthError("invalid_request", "token is required")
            state.stats["revocation_requests"] += 1
            tokens.revoke(client_id, value)
        except OAuthError as exc:
            return _oauth_error(exc, basic=basic)
        return Response(status_code=200, headers=_NO_STORE)

    return [Route("/token", token, methods=["POST"]), Route("/revoke", revoke, methods=["POST"])]
