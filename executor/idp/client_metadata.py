"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25).

A client with no registration uses an https URL as its ``client_id``; the JSON document at that
URL describes it (``client_id`` equal to the URL, ``client_name``, ``redirect_uris``). Such
clients are public: PKCE, no secret (``token_endpoint_auth_method`` must be ``none``).

Fetching a URL named by whoever sends an authorization request is a server-side request
forgery risk, so the fetch is fenced:

- https only; ``http`` and loopback hosts only with ``server.dev_mode`` (for local testing);
- every address the host resolves to must be public (not private, loopback, link-local,
  multicast or reserved), and the connection goes to the address that was checked (the host
  name is kept for the ``Host`` header and TLS SNI), so DNS rebinding cannot swap it;
- no redirects, a 5 second timeout for the whole fetch, at most 64 KiB;
- documents are cached for a few minutes; failures are not cached.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from executor.idp.clients import Client
from executor.idp.redirects import is_loopback_host, redirect_uri_problem

FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 64 * 1024
CACHE_SECONDS = 300.0
MAX_CACHED = 256
PUBLIC_GRANTS = frozenset({"authorization_code", "refresh_token"})


class MetadataDocumentError(Exception):
    """The document could not be used; the message is safe to show to the user."""


def is_metadata_client_id(client_id: str | None) -> bool:
    return client_id is not None and client_id.startswith(("https://", "http://"))


class ClientMetadataDocuments:
    def __init__(
        self, *, dev_mode: bool, http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dev_mode = dev_mode
        self._owns_http = http is None
        # trust_env=False: no proxy from the environment may see (or reroute) these fetches.
        self._http = http if http is not None else httpx2.AsyncClient(follow_redirects=False, trust_env=False)
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Client, float]] = OrderedDict()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def cached(self, client_id: str) -> Client | None:
        """The client, if its document was fetched recently (authlib's sync ``query_client`` reads this)."""
        entry = self._cache.get(client_id)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def fetch(self, client_id: str) -> Client:
        """The client described by the document at ``client_id``, from the cache or fetched now."""
        hit = self.cached(client_id)
        if hit is not None:
            return hit
        try:
            with anyio.fail_after(FETCH_TIMEOUT_SECONDS):
                doc = await self._get(client_id)
        except TimeoutError:
            raise MetadataDocumentError(
                f"fetching `{client_id}` took longer than {FETCH_TIMEOUT_SECONDS:g} s") from None
        client = parse_document(client_id, doc)
        self._cache[client_id] = (client, self._clock() + CACHE_SECONDS)
        self._cache.move_to_end(client_id)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return client

    async def _get(self, url: str) -> Any:
        target, headers, extensions = await self._pin(url)
        try:
            async with self._http.stream("GET", target, headers=headers, extensions=extensions,
                                         timeout=FETCH_TIMEOUT_SECONDS) as response:
                if response.status_code != 200:
                    raise MetadataDocumentError(f"`{url}` answered HTTP {response.status_code}, not 200")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise MetadataDocumentError(f"`{url}` is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
        except httpx2.HTTPError as exc:
            raise MetadataDocumentError(f"`{url}` could not be fetched ({type(exc).__name__})") from exc
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise MetadataDocumentError(f"`{url}` is not JSON") from None

    async def _pin(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """Check the URL and where it leads; return the URL to connect to, headers and extensions."""
        problem = url_problem(url, dev_mode=self._dev_mode)
        if problem:
            raise MetadataDocumentError(problem)
        parts = urlsplit(url)
        host = parts.hostname or ""
        headers = {"Accept": "application/json"}
        if is_loopback_host(host):
            return url, headers, {}  # dev mode only (url_problem): nothing to pin
        try:
            infos = await anyio.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError:
            raise MetadataDocumentError(f"the host of `{url}` does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses or not all(_public(a) for a in addresses):
            raise MetadataDocumentError(f"`{url}` resolves to a private or reserved address; it must be public")
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        headers["Host"] = parts.netloc
        return parts._replace(netloc=netloc).geturl(), headers, {"sni_hostname": host}


def url_problem(url: str, *, dev_mode: bool) -> str | None:
    """Why ``url`` cannot be a client ID metadata document URL; None when it can."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return f"client_id `{url}` is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return f"client_id `{url}` is not an https URL"
    # draft-ietf-oauth-client-id-metadata-document §3: a path component, no dot segments, no
    # fragment, no user name or password.
    segments = parts.path.split("/")
    if not parts.path.strip("/") or "." in segments or ".." in segments:
        return f"client_id `{url}` must have a path, without `.` or `..` segments"
    if parts.fragment or parts.username is not None or parts.password is not None:
        return f"client_id `{url}` must not have a fragment, user name or password"
    if is_loopback_host(host) and not dev_mode:
        return f"client_id `{url}` is on a loopback host; that is allowed only with `server.dev_mode: true`"
    if parts.scheme == "http" and not (dev_mode and is_loopback_host(host)):
        return f"client_id `{url}` must use https (http only for loopback hosts with `server.dev_mode: true`)"
    return None


def parse_document(url: str, doc: Any) -> Client:
    if not isinstance(doc, dict):
        raise MetadataDocumentError(f"`{url}` is not a JSON object")
    if doc.get("client_id") != url:
        raise MetadataDocumentError(f"the document at `{url}` must have `client_id` equal to its URL")
    name = doc.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise MetadataDocumentError(f"the document at `{url}` has no `client_name`")
    uris = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise MetadataDocumentError(f"the document at `{url}` must list `redirect_uris`")
    for uri in uris:
        problem = redirect_uri_problem(uri)
        if problem:
            raise MetadataDocumentError(f"the document at `{url}`: redirect URI {problem}")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise MetadataDocumentError(
            f"the document at `{url}` asks for `{method}`; clients known by a metadata document are public "
            "(`token_endpoint_auth_method: none`)")
    grants = doc.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or "authorization_code" not in grants:
        raise MetadataDocumentError(f"the document at `{url}` must allow the `authorization_code` grant")
    return Client(
        client_id=url,
        name=name.strip()[:200],
        redirect_uris=tuple(uris),
        grant_types=frozenset(g for g in grants if g in PUBLIC_GRANTS),
        scopes=None,
        metadata_document=True,
    )


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_link_local)
