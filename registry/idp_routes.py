"""The embedded issuer's HTTP routes (Litestar): the only place ``executor.idp`` meets a framework.

    GET  /.well-known/oauth-authorization-server/idp    RFC 8414 metadata (path inserted)
    GET  /.well-known/openid-configuration/idp          the same document, for OIDC-style clients
    GET  /idp/.well-known/openid-configuration          the same document (OIDC discovery, appended)
    GET  /idp/jwks                                      public signing keys (RFC 7517)
    GET  /idp/authorize   POST /idp/authorize           authorization endpoint (POST: consent form)
    GET  /idp/login       POST /idp/login               the login page
    POST /idp/token                                     token endpoint
    POST /idp/revoke                                    RFC 7009 revocation
    POST /idp/introspect                                RFC 7662 introspection

Each request becomes an ``executor.idp.http.HttpRequest`` (its URL built from
``server.public_url``, never from the Host header); the answer is JSON, a redirect, or a
Jinja2 template from ``registry/templates`` (autoescaped; pages forbid framing and scripts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler

from executor.idp.http import HttpRequest, HttpResponse, Page, SetCookie
from executor.idp.issuer import EmbeddedIssuer

MAX_FORM_BYTES = 64 * 1024
MAX_PARAMETERS = 100
TEMPLATES = Path(__file__).parent / "templates"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PUBLIC_JSON = {"Access-Control-Allow-Origin": "*"}
"""Metadata, keys and the token endpoint may be read by browser-based MCP clients."""
NOT_A_FORM = HttpResponse(400, {"error": "invalid_request", "error_description":
                                "send the parameters as `application/x-www-form-urlencoded`"},
                          [("Cache-Control", "no-store")])


def idp_routes(issuer: EmbeddedIssuer, base_url: str) -> list[HTTPRouteHandler]:
    """The route handlers to mount on the app when ``identity.embedded.enabled`` is set."""
    pages = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)

    async def neutral(request: Request[Any, Any, Any]) -> HttpRequest | None:
        """None for a POST whose body is not a form."""
        raw_query = request.scope["query_string"].decode("latin-1")
        form: tuple[tuple[str, str], ...] = ()
        if request.method == "POST":
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/x-www-form-urlencoded":
                return None
            form = _pairs((await request.body()).decode("utf-8", errors="replace"))
        return HttpRequest(
            method=request.method,
            url=f"{base_url}{request.url.path}" + (f"?{raw_query}" if raw_query else ""),
            headers={k.lower(): v for k, v in request.headers.items()},
            query=_pairs(raw_query),
            form=form,
            cookies=dict(request.cookies),
        )

    def respond(result: HttpResponse | Page, extra: dict[str, str] | None = None) -> Response[bytes]:
        if isinstance(result, Page):
            html = pages.get_template(result.template).render(**result.context)
            return Response(html.encode(), status_code=result.status, media_type="text/html",
                            headers=PAGE_HEADERS, cookies=[_cookie(c) for c in result.cookies])
        headers = {k: v for k, v in result.headers if k.lower() != "content-type"}
        body = b"" if result.body is None else msgspec.json.encode(result.body)
        return Response(body, status_code=result.status, media_type="application/json",
                        headers={**headers, **(extra or {})}, cookies=[_cookie(c) for c in result.cookies])

    def document(value: dict[str, Any]) -> Response[bytes]:
        return respond(HttpResponse(200, value, [("Cache-Control", "max-age=300")]), PUBLIC_JSON)

    common: dict[str, Any] = {"include_in_schema": False}

    @get(["/.well-known/oauth-authorization-server/idp", "/.well-known/openid-configuration/idp",
          "/idp/.well-known/openid-configuration"], sync_to_thread=False, **common)
    def metadata() -> Response[bytes]:
        return document(issuer.metadata())

    @get("/idp/jwks", sync_to_thread=False, **common)
    def jwks() -> Response[bytes]:
        return document(issuer.jwks())

    @get("/idp/authorize", **common)
    async def authorize(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        assert http is not None
        return respond(await issuer.authorize(http))

    @post("/idp/authorize", request_max_body_size=MAX_FORM_BYTES, status_code=200, **common)
    async def consent(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        if http is None:
            return respond(Page("error.html", {"error": "invalid_request",
                                               "description": "the form was not sent as a form"}, status=400))
        return respond(await issuer.authorize(http))

    @get("/idp/login", **common)
    async def login_page(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        assert http is not None
        return respond(issuer.login_page(http))

    @post("/idp/login", request_max_body_size=MAX_FORM_BYTES, status_code=200, **common)
    async def login(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        if http is None:
            return respond(Page("error.html", {"error": "invalid_request",
                                               "description": "the form was not sent as a form"}, status=400))
        return respond(await issuer.login(http))

    @post("/idp/token", request_max_body_size=MAX_FORM_BYTES, status_code=200, **common)
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        return respond(NOT_A_FORM if http is None else await issuer.token(http), PUBLIC_JSON)

    @post("/idp/revoke", request_max_body_size=MAX_FORM_BYTES, status_code=200, **common)
    async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        return respond(NOT_A_FORM if http is None else await issuer.revoke(http), PUBLIC_JSON)

    @post("/idp/introspect", request_max_body_size=MAX_FORM_BYTES, status_code=200, **common)
    async def introspect(request: Request[Any, Any, Any]) -> Response[bytes]:
        http = await neutral(request)
        return respond(NOT_A_FORM if http is None else issuer.introspect(http))

    return [metadata, jwks, authorize, consent, login_page, login, token, revoke, introspect]


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return tuple(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS))
    except ValueError:
        raise ClientException(f"more than {MAX_PARAMETERS} parameters") from None


def _cookie(c: SetCookie) -> Cookie:
    return Cookie(key=c.name, value=c.value, max_age=c.max_age, path=c.path, secure=c.secure, httponly=c.http_only,
                  samesite=c.same_site)
