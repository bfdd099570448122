"""Errors of the embedded issuer.

Two kinds, kept apart:

- ``IssuerError`` (an ``InterlockError``, code `issuer_error`) is raised to Python callers:
  the issuer cannot start (a client secret is missing), or ``mint_dev_token`` refused.
- OAuth protocol errors are authlib's ``OAuth2Error`` subclasses (RFC 6749 §5.2 and §4.1.2.1),
  plus ``InvalidTargetError`` from RFC 8707; they become JSON error responses or redirects.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error

from executor.errors import InterlockError


class IssuerError(InterlockError):
    code = "issuer_error"


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]  # authlib is untyped
    """RFC 8707 §2: "The requested resource is invalid, missing, unknown, or malformed.\""""

    error = "invalid_target"


def printable(text: str, limit: int = 200) -> str:
    """``text`` made safe for an OAuth ``error_description``: RFC 6749 §5.2 allows only printable
    ASCII without `"` and `\\` (authlib raises on anything else)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)[:limit]
