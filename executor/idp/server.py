"""The embedded issuer's authlib ``AuthorizationServer``, adapted to framework-neutral HTTP values.

authlib ships server integrations for Flask and Django only. This subclass supplies what an
integration must (``create_oauth2_request``, ``create_json_request``, ``handle_response``,
``send_signal``) over ``executor.idp.http`` values, so the web framework stays in
``registry/idp_routes.py``. It also

- registers the grants (``grants.py``, PKCE S256 required), revocation, introspection and the
  RFC 9207 ``iss`` authorization response parameter;
- answers every OAuth error per RFC 6749 §5.2 (JSON ``error``, ``error_description``), with
  descriptions rewritten to be lowercase and helpful, never carrying a secret.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc9207 import IssuerParameter

from executor.idp.clients import Client
from executor.idp.errors import printable
from executor.idp.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from executor.idp.http import HttpRequest, HttpResponse, Pairs
from executor.idp.introspection import TokenIntrospection
from executor.idp.pkce import S256CodeChallenge
from executor.idp.revocation import TokenRevocation
from executor.idp.tokens import Issued, TokenMinter
from executor.idp.users import Users
from registry.store import IssuerStore

SINGLE_PARAMETERS = ("grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
                     "client_secret", "scope", "token", "token_type_hint")
"""OAuth 2.1 §3.2.2: "Request and response parameters ... MUST NOT be included more than once"."""

_DEFAULT_DESCRIPTIONS = {
    "invalid_client": "client authentication failed",
    "invalid_grant": "the grant is not valid for this client",
    "invalid_scope": "the requested scope is not allowed",
    "invalid_request": "the request is malformed",
    "access_denied": "the user denied the request",
    "unauthorized_client": "this client may not use this grant",
}
_REWRITES = (
    ("The client cannot authenticate with methods", "client authentication failed: send the client's id and "
     "secret (http basic or form), or only `client_id` for a public client"),
    ("The client does not exist on this server", "unknown client; check `client_id`"),
    ("Missing 'client_id' parameter", "`client_id` is required"),
    ("The client is not authorized to use 'grant_type=", "this client may not use this grant type"),
    ("The client is not authorized to use 'response_type=", "this client may not use this response type"),
    ("There is no 'user' for this", "the user of this grant no longer exists"),
)
_FIXED = {
    # authlib builds these two descriptions from the request (and mixes up its arguments for the first).
    "unsupported_response_type": "unsupported or missing `response_type`; use `code`",
    "unsupported_grant_type": "unsupported or missing `grant_type`; use `authorization_code`, `refresh_token` or "
                              "`client_credentials`",
}


def describe(error: OAuth2Error) -> str:
    """A lowercase, helpful description for ``error`` (never echoing a secret: only these texts,
    parameters named in backticks, and URIs the client sent)."""
    if error.error in _FIXED:
        return _FIXED[error.error]
    text = str(error.description or error.get_error_description() or "") or _DEFAULT_DESCRIPTIONS.get(error.error, "")
    for prefix, replacement in _REWRITES:
        if text.startswith(prefix):
            text = replacement
    text = re.sub(r"'([^']*)'", r"`\1`", text).rstrip(".")
    return printable(text[:1].lower() + text[1:], limit=300)


class _Headers(dict[str, str]):
    """Case-insensitive header lookups (authlib asks for `Authorization`)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _Payload(OAuth2Payload):  # type: ignore[misc]  # authlib is untyped
    def __init__(self, pairs: Pairs) -> None:
        # RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were omitted".
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            if value != "":
                self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class IssuerRequest(OAuth2Request):  # type: ignore[misc]
    """An ``HttpRequest`` as authlib sees it: GET parameters from the query, POST from the form."""

    def __init__(self, http: HttpRequest) -> None:
        # authlib refuses http URLs off loopback. Whether plain http is acceptable is the config's
        # decision (validated at load), so authlib is shown the https form and the real URL kept.
        checked = "https:" + http.url[5:] if http.url.startswith("http:") else http.url
        super().__init__(http.method, checked, headers=_Headers(http.headers))
        self.uri = http.url
        self.http = http
        self.payload = _Payload(http.query if http.method == "GET" else http.form)
        self.resource: str | None = None
        self.issued: Issued | None = None

    @property
    def args(self) -> dict[str, str]:
        return _Payload(self.http.query).data

    @property
    def form(self) -> dict[str, str]:
        return _Payload(self.http.form).data


class _Iss(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class IssuerServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self, *, issuer: str, store: IssuerStore, minter: TokenMinter, users: Users,
        clients: Callable[[str], Client | None], resources: Callable[[], Collection[str]],
        example_resource: Callable[[], str | None], scopes: list[str], clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(scopes_supported=scopes)
        self.issuer = issuer
        self.store = store
        self.minter = minter
        self.users = users
        self.resources = resources
        self.example_resource = example_resource
        self._clients = clients
        self._clock = clock
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge()])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_endpoint(TokenRevocation)
        self.register_endpoint(TokenIntrospection)
        self.register_extension(_Iss(issuer))

    def now(self) -> int:
        return int(self._clock())

    # -- what authlib asks of an integration

    def query_client(self, client_id: str) -> Client | None:
        return self._clients(client_id)

    def save_token(self, token: dict[str, Any], request: IssuerRequest) -> None:
        issued = request.issued
        assert issued is not None, "tokens are minted by the grants' generate_token"
        if not self.store.record_tokens(issued.access, issued.refresh, self.now()):
            # The family was revoked between the grant check and now (a concurrent reuse).
            raise InvalidGrantError("this authorization was revoked; authorize again")

    def validate_requested_scope(self, scope: str | None) -> None:
        unknown = sorted(set((scope or "").split()) - set(self.scopes_supported or ()))
        if unknown:
            known = ", ".join(f"`{s}`" for s in self.scopes_supported or ())
            raise InvalidScopeError(f"unknown scope `{printable(' '.join(unknown))}`; this server knows {known}")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass  # no signal system: auditing of issuer events is not wired yet

    def create_oauth2_request(self, request: HttpRequest | OAuth2Request) -> OAuth2Request:
        return request if isinstance(request, OAuth2Request) else IssuerRequest(request)

    def create_json_request(self, request: HttpRequest) -> JsonRequest:
        return JsonRequest(request.method, request.url, _Headers(request.headers))

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        return HttpResponse(status, body if body != "" else None, list(headers))

    def handle_error_response(self, request: Any, error: OAuth2Error) -> HttpResponse:
        error.description = describe(error)
        response: HttpResponse = super().handle_error_response(request, error)
        return response

    # -- endpoints

    def token_response(self, request: HttpRequest) -> HttpResponse:
        oauth = self.create_oauth2_request(request)
        repeated = [k for k in SINGLE_PARAMETERS if len(oauth.payload.datalist.get(k, [])) > 1]
        if repeated:
            return self.handle_error_response(oauth, InvalidRequestError(f"`{repeated[0]}` is given more than once"))
        response: HttpResponse = self.create_token_response(oauth)
        return response

    def endpoint_response(self, name: str, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = self.create_endpoint_response(name, request)
        return response
