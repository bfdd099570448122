"""Login sessions and CSRF tokens of the embedded issuer's pages, signed with HMAC-SHA256.

- Session: after a good password, a cookie ``interlock_idp_session`` (path: the issuer's, ``/idp``; HttpOnly,
  SameSite=Lax, Secure when the issuer is https) carries ``{user, auth_time, expiry}`` and its
  MAC. Nothing is stored server-side; the key lives in the store, so every replica and every
  restart accepts it. A user removed from the config is logged out by that removal.
- CSRF (login and consent forms): a signed double-submit token. A random nonce goes in the
  cookie ``interlock_idp_csrf``; the form carries ``MAC(nonce)``. A cross-site form cannot read
  the cookie, so it cannot produce the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from executor.idp.http import SetCookie

SESSION_COOKIE = "interlock_idp_session"
CSRF_COOKIE = "interlock_idp_csrf"
SESSION_SECONDS = 8 * 3600
CSRF_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    auth_time: int


class Sessions:
    def __init__(self, secret: bytes, *, path: str, secure: bool, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._path = path
        self._secure = secure
        self._clock = clock

    def _cookie(self, name: str, value: str, max_age: int) -> SetCookie:
        return SetCookie(name, value, max_age, path=self._path, secure=self._secure)

    def _mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}|{data}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    # -- sessions

    def start(self, username: str) -> SetCookie:
        now = int(self._clock())
        data = _b64(json.dumps({"u": username, "t": now, "e": now + SESSION_SECONDS}).encode())
        return self._cookie(SESSION_COOKIE, f"{data}.{self._mac('session', data)}", SESSION_SECONDS)

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        data, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", data)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
            username, auth_time, expiry = fields["u"], fields["t"], fields["e"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(username, str) or not isinstance(auth_time, int) or not isinstance(expiry, int):
            return None
        if expiry <= self._clock():
            return None
        return Session(username, auth_time)

    # -- CSRF

    def csrf(self, cookie: str | None) -> tuple[str, SetCookie | None]:
        """The form token for this browser, and the cookie to set when it has none yet."""
        if cookie and len(cookie) <= 64:
            return self._mac("csrf", cookie), None
        nonce = secrets.token_urlsafe(24)
        return self._mac("csrf", nonce), self._cookie(CSRF_COOKIE, nonce, CSRF_SECONDS)

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or len(cookie) > 64:
            return False
        return hmac.compare_digest(token, self._mac("csrf", cookie))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
