"""Framework-neutral HTTP values for the embedded issuer.

The Litestar edge (``registry/idp_routes.py``) turns each request into an ``HttpRequest`` and
renders what comes back: an ``HttpResponse`` (JSON or a redirect) or a ``Page`` (an HTML
template with its context). Nothing in ``executor.idp`` imports a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    """The URL as this server names it (``server.public_url`` + path + query), never from the Host header."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    query: Pairs = ()
    form: Pairs = ()
    """``application/x-www-form-urlencoded`` body parameters (empty for other bodies)."""
    cookies: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str, *, form: bool = False) -> str | None:
        """The first value of a query (or form) parameter."""
        return next((v for k, v in (self.form if form else self.query) if k == name), None)


@dataclass(frozen=True, slots=True)
class SetCookie:
    name: str
    value: str
    max_age: int
    path: str = "/idp"
    secure: bool = False
    http_only: bool = True
    same_site: Literal["lax", "strict"] = "lax"


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: Any = None
    """A JSON-able value (dict), or None for an empty body."""
    headers: list[tuple[str, str]] = field(default_factory=list)
    cookies: list[SetCookie] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        """The redirect target (authlib's RFC 9207 extension reads and rewrites it)."""
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML page: ``registry/templates/{template}`` rendered with ``context`` (autoescaped)."""

    template: str
    context: Mapping[str, Any]
    status: int = 200
    cookies: tuple[SetCookie, ...] = ()


def redirect(location: str, *, status: int = 302, cookies: tuple[SetCookie, ...] = ()) -> HttpResponse:
    return HttpResponse(status, None, [("Location", location), ("Cache-Control", "no-store")], list(cookies))
