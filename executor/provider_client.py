"""Interlock as an OAuth 2.1 client of third-party providers (RFC 6749, 7636, 8414, 8707, 7009).

Discovery, the authorization URL (PKCE S256, `state`, `resource`), the code exchange,
refresh and revocation. Secrets are resolved once at start-up from the environment or a
file, never from the config text. Nothing here logs or returns token text in an error.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
import msgspec

from executor.errors import InterlockError
from registry.config import ProviderConfig

log = logging.getLogger(__name__)


class ProviderError(InterlockError):
    """The provider refused or failed. ``invalid_grant`` means the grant is gone: authorize again."""

    code = "provider_error"

    def __init__(self, message: str, *, oauth_error: str | None = None) -> None:
        super().__init__(message)
        self.oauth_error = oauth_error


class TokenSet(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    scopes: list[str] = msgspec.field(default_factory=list)

    def __repr__(self) -> str:  # never print a token, even in a debugger or a traceback
        return f"TokenSet(expires_at={self.expires_at}, scopes={self.scopes})"


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1-4.2: a 43+ character verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def resolve_secret(provider: ProviderConfig, env: Mapping[str, str]) -> str | None:
    if provider.client_secret_env:
        value = env.get(provider.client_secret_env)
        if not value:
            raise InterlockError(f"provider `{provider.name}`: environment variable "
                                 f"`{provider.client_secret_env}` holding its client secret is not set")
        return value
    if provider.client_secret_file:
        try:
            return Path(provider.client_secret_file).read_text().strip()
        except OSError as exc:
            raise InterlockError(f"provider `{provider.name}`: cannot read its client secret file "
                                 f"({exc.strerror})") from exc
    return None


class ProviderClient:
    def __init__(self, config: ProviderConfig, secret: str | None, http: httpx2.AsyncClient) -> None:
        self.config = config
        self._secret = secret
        self._http = http
        self._endpoints: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def endpoints(self) -> dict[str, str]:
        if self._endpoints is None:
            found = {k: v for k in ("authorization_endpoint", "token_endpoint", "revocation_endpoint")
                     if (v := getattr(self.config, k))}
            if self.config.issuer and not {"authorization_endpoint", "token_endpoint"} <= found.keys():
                parts = urlsplit(self.config.issuer)
                url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"
                try:
                    r = await self._http.get(url, timeout=10)
                    meta = r.json() if r.status_code == 200 else {}
                except (httpx2.HTTPError, ValueError) as exc:
                    raise ProviderError(f"provider `{self.name}` metadata could not be fetched") from exc
                if meta.get("issuer") != self.config.issuer:
                    raise ProviderError(f"provider `{self.name}` metadata is missing or names another issuer")
                for k in ("authorization_endpoint", "token_endpoint", "revocation_endpoint"):
                    if k not in found and isinstance(meta.get(k), str):
                        found[k] = meta[k]
            self._endpoints = found
        return self._endpoints

    async def authorization_url(self, *, redirect_uri: str, state: str, challenge: str, scopes: list[str]) -> str:
        params = {"response_type": "code", "client_id": self.config.client_id, "redirect_uri": redirect_uri,
                  "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
                  "scope": " ".join(scopes)}
        if self.config.resource:
            params["resource"] = self.config.resource
        return f"{(await self.endpoints())['authorization_endpoint']}?{urlencode(params)}"

    async def exchange_code(self, *, code: str, verifier: str, redirect_uri: str) -> TokenSet:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": redirect_uri}
        if self.config.resource:
            form["resource"] = self.config.resource
        return await self._token(form)

    async def refresh(self, refresh_token: str, scopes: list[str]) -> TokenSet:
        tokens = await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                    "scope": " ".join(scopes)})
        # RFC 6749 §6: the provider may keep the old refresh token (no rotation).
        return tokens if tokens.refresh_token else msgspec.structs.replace(tokens, refresh_token=refresh_token)

    async def revoke(self, token: str, hint: str) -> bool:
        """RFC 7009; False when the provider offers no revocation endpoint or refused."""
        endpoint = (await self.endpoints()).get("revocation_endpoint")
        if endpoint is None:
            return False
        try:
            r = await self._http.post(endpoint, data={"token": token, "token_type_hint": hint,
                                                      **self._client_auth()}, timeout=10)
        except httpx2.HTTPError:
            log.warning("provider %s: revocation request failed", self.name)
            return False
        return r.status_code == 200

    def _client_auth(self) -> dict[str, str]:
        auth = {"client_id": self.config.client_id}
        if self._secret is not None:
            auth["client_secret"] = self._secret
        return auth

    async def _token(self, form: dict[str, str]) -> TokenSet:
        endpoint = (await self.endpoints())["token_endpoint"]
        try:
            r = await self._http.post(endpoint, data={**form, **self._client_auth()}, timeout=15)
            body: Any = r.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderError(f"provider `{self.name}` token endpoint did not answer usably") from exc
        if r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise ProviderError(f"provider `{self.name}` refused the token request ({error or r.status_code})",
                                oauth_error=error if isinstance(error, str) else None)
        expires_in = body.get("expires_in")
        scope = body.get("scope")
        return TokenSet(
            access_token=body["access_token"], refresh_token=body.get("refresh_token"),
            expires_at=time.time() + float(expires_in) if isinstance(expires_in, int | float) else None,
            scopes=scope.split() if isinstance(scope, str) else form.get("scope", "").split())
