"""The three grants of the embedded issuer, as authlib grant subclasses backed by the store.

- authorization code (OAuth 2.1 §4.1) with PKCE S256 (``pkce.py``) and a ``resource``
  (``resource_indicators.py``). A code lives ``CODE_TTL_SECONDS``, is bound to client,
  redirect URI, PKCE challenge, resource and user, and is consumed atomically on first
  presentation: a replay fails and revokes what was issued from it.
- refresh token (OAuth 2.1 §4.3) with rotation: every use returns a new refresh token;
  presenting a used one revokes the whole family (RFC 9700 §4.14.2). Scope and resource can
  only stay or narrow.
- client credentials (OAuth 2.1 §4.2), confidential clients only; no refresh token.

authlib drives the order of checks; the token itself is minted by ``tokens.TokenMinter`` and
recorded by the server's ``save_token`` (which refuses if the family was revoked meanwhile).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    TokenMixin,
    grants,
)

from executor.idp.errors import printable
from executor.idp.records import CodeRecord, RefreshTokenRecord
from executor.idp.resource_indicators import requested_resource
from executor.idp.tokens import Grant, new_secret, token_hash
from executor.idp.users import User

CODE_TTL_SECONDS = 60
ANY_AUTH = ["client_secret_basic", "client_secret_post", "none"]
SECRET_AUTH = ["client_secret_basic", "client_secret_post"]

_CODE_REFUSED = {
    "unknown": "the authorization code is not valid",
    "expired": "the authorization code has expired; start the authorization again",
    "replayed": "the authorization code was already used; tokens issued from it are revoked",
}
_REFRESH_REFUSED = {
    "unknown": "the refresh token is not valid",
    "expired": "the refresh token has expired; authorize again",
    "revoked": "the refresh token was revoked; authorize again",
    "reused": "the refresh token was already used; every token of this authorization is now revoked",
}


@dataclass(frozen=True, slots=True)
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]  # authlib is untyped
    record: CodeRecord

    @property
    def code_challenge(self) -> str:
        return self.record.code_challenge

    def get_redirect_uri(self) -> str | None:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return self.record.scope


@dataclass(frozen=True, slots=True)
class _Refresh(TokenMixin):  # type: ignore[misc]
    record: RefreshTokenRecord

    def check_client(self, client: Any) -> bool:
        return bool(self.record.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.record.scope


class _Issuing:
    """Mints through the server's ``TokenMinter`` instead of authlib's bearer generator, so the
    token carries the resource and family of this request."""

    request: Any
    server: Any

    def _grant(self, user: User | None, scope: str) -> Grant:
        raise NotImplementedError

    def generate_token(
        self, user: User | None = None, scope: str | None = None, grant_type: str | None = None,
        expires_in: int | None = None, include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        allowed = self.request.client.get_allowed_scope(scope)
        if allowed is None:
            raise InvalidScopeError("this client may not ask for that scope")
        issued = self.server.minter.mint(self._grant(user, allowed), refresh=include_refresh_token)
        self.request.issued = issued
        response: dict[str, Any] = issued.response
        return response


class AuthorizationCodeGrant(_Issuing, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_AUTH

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        requested = request.payload.redirect_uri
        if requested:
            if not client.check_redirect_uri(requested):
                raise InvalidRequestError(f"redirect URI `{printable(requested)}` is not registered for this client")
            return str(requested)
        default = client.get_default_redirect_uri()
        if not default:
            raise InvalidRequestError("`redirect_uri` is required: the client has several", state=request.payload.state)
        return str(default)

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        try:
            self.request.resource = requested_resource(
                self.request.payload.datalist, self.server.resources(), example=self.server.example_resource())
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def generate_authorization_code(self) -> str:
        return new_secret()

    def save_authorization_code(self, code: str, request: Any) -> None:
        now = self.server.now()
        user: User = request.user
        self.server.store.put_code(CodeRecord(
            code_hash=token_hash(code), family=uuid.uuid4().hex, client_id=request.client.get_client_id(),
            username=user.username, redirect_uri=request.payload.redirect_uri, scope=request.scope or "",
            resource=request.resource, code_challenge=request.payload.data["code_challenge"],
            code_challenge_method=request.payload.data["code_challenge_method"], auth_time=user.auth_time,
            expires_at=now + CODE_TTL_SECONDS), now)

    def query_authorization_code(self, code: str, client: Any) -> _Code:
        # Consumed here, on first presentation, whatever happens next: a code that met a wrong
        # verifier or redirect URI is spent, so a stolen code cannot be tried twice.
        use = self.server.store.use_code(token_hash(code), self.server.now())
        if use.outcome != "ok" or use.code is None:
            raise InvalidGrantError(_CODE_REFUSED[use.outcome])
        if use.code.client_id != client.get_client_id():
            raise InvalidGrantError("the authorization code was issued to another client")
        return _Code(use.code)

    def validate_token_request(self) -> None:
        super().validate_token_request()  # client, code, redirect URI, then the PKCE hook
        code: CodeRecord = self.request.authorization_code.record
        self.request.resource = requested_resource(
            self.request.payload.datalist, self.server.resources(), bound=code.resource)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        pass  # consumed atomically by query_authorization_code

    def authenticate_user(self, authorization_code: _Code) -> User | None:
        record = authorization_code.record
        user: User | None = self.server.users.get(record.username, auth_time=record.auth_time)
        return user

    def _grant(self, user: User | None, scope: str) -> Grant:
        assert user is not None
        code: CodeRecord = self.request.authorization_code.record
        return Grant(client_id=code.client_id, subject=user.username, scope=scope, resource=self.request.resource,
                     family=code.family, username=user.username, claims=user.claims, auth_time=code.auth_time)


class RefreshTokenGrant(_Issuing, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        value = self.request.form.get("refresh_token")
        if not value:
            raise InvalidRequestError("`refresh_token` is required")
        digest = token_hash(value)
        store, now = self.server.store, self.server.now()
        record: RefreshTokenRecord | None = store.get_refresh_token(digest)
        if record is None or record.client_id != client.get_client_id():
            raise InvalidGrantError(_REFRESH_REFUSED["unknown"])
        if record.used_at is None and record.revoked_at is None:
            # Check what the client asks for before spending the token, so a refused request
            # (wider scope, another resource) does not cost the client its session.
            requested = (self.request.payload.scope or "").split()
            if not set(requested) <= set(record.scope.split()):
                raise InvalidScopeError("a refresh cannot add scopes; ask for the original scopes or fewer")
            self.request.resource = requested_resource(
                self.request.payload.datalist, self.server.resources(), bound=record.resource)
        use = store.use_refresh_token(digest, now)
        if use.outcome != "ok" or use.token is None:
            raise InvalidGrantError(_REFRESH_REFUSED[use.outcome])
        self.request.refresh_token = _Refresh(use.token)

    def authenticate_user(self, refresh_token: _Refresh) -> User | None:
        record = refresh_token.record
        user: User | None = self.server.users.get(record.username, auth_time=record.auth_time)
        return user

    def revoke_old_credential(self, refresh_token: _Refresh) -> None:
        pass  # marked used by validate_token_request, atomically

    def _grant(self, user: User | None, scope: str) -> Grant:
        assert user is not None
        record: RefreshTokenRecord = self.request.refresh_token.record
        return Grant(client_id=record.client_id, subject=user.username, scope=scope, resource=record.resource,
                     family=record.family, username=user.username, claims=user.claims, auth_time=record.auth_time)


class ClientCredentialsGrant(_Issuing, grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH

    def validate_token_request(self) -> None:
        super().validate_token_request()
        self.request.resource = requested_resource(
            self.request.payload.datalist, self.server.resources(), example=self.server.example_resource())

    def _grant(self, user: User | None, scope: str) -> Grant:
        client_id: str = self.request.client.get_client_id()
        return Grant(client_id=client_id, subject=client_id, scope=scope, resource=self.request.resource,
                     family=None)
