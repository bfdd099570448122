"""Redirect URI rules (OAuth 2.1 §2.3, RFC 8252 native apps, RFC 9700 §4.1.3).

- A redirect URI is absolute and has no fragment (RFC 6749 §3.1.2).
- ``https`` anywhere; ``http`` only for loopback (RFC 8252 §7.3, OAuth 2.1 §2.3.1: "http" is
  allowed for loopback interface redirect URIs only); or a private-use scheme of a native app
  (RFC 8252 §7.1, e.g. ``cursor://``), never one a browser would run (``javascript:``, ``data:``).
- Matching is exact string comparison, except that the port of a loopback IP redirect URI may
  differ (RFC 8252 §7.3: the server "MUST allow any port to be specified at the time of the
  request for loopback IP redirect URIs").

Standard library only: ``registry.config`` validates the config with these rules.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about", "filesystem"})


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI; None when it can."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return f"`{uri}` is not a valid URL"
    if not parts.scheme:
        return f"`{uri}` is not an absolute URI"
    if parts.fragment or uri.endswith("#"):
        return f"`{uri}` must not have a fragment"
    scheme = parts.scheme.lower()
    if scheme in FORBIDDEN_SCHEMES:
        return f"`{uri}` uses the `{scheme}:` scheme, which is never a redirect target"
    if scheme in ("http", "https") and not host:
        return f"`{uri}` has no host"
    if scheme == "http" and not is_loopback_host(host):
        return f"`{uri}` must use https (http is allowed only for loopback redirect URIs such as `http://127.0.0.1`)"
    if parts.username is not None or parts.password is not None:
        return f"`{uri}` must not contain a user name or password"
    return None


def same_redirect_uri(requested: str, registered: str) -> bool:
    if requested == registered:
        return True
    try:
        a, b = urlsplit(requested), urlsplit(registered)
        _ = (a.port, b.port)
    except ValueError:
        return False
    return (
        a.scheme == b.scheme == "http"
        and a.hostname is not None
        and a.hostname == b.hostname
        and a.hostname != "localhost"  # RFC 8252 §8.3: loopback IP literals, not `localhost`
        and is_loopback_host(a.hostname)
        and (a.path, a.query, a.fragment) == (b.path, b.query, b.fragment)
        and a.username is None
        and a.password is None
    )
