"""A real OAuth authorization server for tests: metadata, JWKS and a test-only signing API.

Run it as a process (tests do this through ``TestIssuer``)::

    python tests/support/issuer.py --port 8123 --issuer-path ""          # issuer http://127.0.0.1:8123
    python tests/support/issuer.py --port 8123 --issuer-path /tenant-a   # issuer http://127.0.0.1:8123/tenant-a

It serves, for issuer ``I = http://127.0.0.1:P{path}``:

``GET /.well-known/oauth-authorization-server{path}``  RFC 8414 metadata (path inserted after the host)
``GET {path}/.well-known/openid-configuration``        OpenID Connect discovery (appended)
``GET {path}/jwks``                                    the public JWK set (RS256 and ES256 keys)

and a control API that only a test issuer would have:

``POST /_sign``       ``{"claims": {...}, "alg": "RS256", "header": {...}, "kid": "..."}``
                      → ``{"token": ...}``; header values of ``null`` remove that header parameter;
                      ``kid`` picks any key the issuer ever had (even one no longer published)
``POST /_rotate``     ``{"keep_old": true}``: new RS256 and ES256 signing keys; the old ones stay
                      published (``keep_old``) or are withdrawn → ``{"RS256": kid, "ES256": kid}``
``POST /_configure``  ``{"discovery": ["rfc8414", "oidc"], "metadata_issuer": null}``: which metadata
                      documents are served (others answer 404), and an ``issuer`` value to put in
                      them instead of the real one (to test mix-up defence)
``GET /_stats``       how often each document was fetched
``GET /_kids``        the kid of the current signing key per algorithm
``GET /_public.pem``  ``?alg=RS256``: the current public key as PEM (for key-confusion tests)

Keys live in the server process only; tests mint tokens through ``/_sign``.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from joserfc.jws import JWSRegistry

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SIGNING_ALGS = ("RS256", "ES256")


def _generate(alg: str) -> RSAKey | ECKey:
    key: RSAKey | ECKey
    if alg == "RS256":
        key = RSAKey.generate_key(2048, {"alg": alg, "use": "sig"})
    else:
        key = ECKey.generate_key("P-256", {"alg": alg, "use": "sig"})
    key.ensure_kid()
    return key


class IssuerApp:
    """The ASGI app. One issuer per process; all state is in memory."""

    def __init__(self, origin: str, issuer_path: str) -> None:
        self.path = "/" + issuer_path.strip("/") if issuer_path.strip("/") else ""
        self.issuer = origin + self.path
        self.all_keys: dict[str, Key] = {}
        self.current: dict[str, RSAKey | ECKey] = {}
        self.published: list[RSAKey | ECKey] = []
        self.discovery = {"rfc8414", "oidc"}
        self.metadata_issuer: str | None = None
        self.stats: Counter[str] = Counter()
        self.rotate(keep_old=False)

    # -- state -----------------------------------------------------------------------------

    def rotate(self, *, keep_old: bool) -> dict[str, str]:
        fresh = {alg: _generate(alg) for alg in SIGNING_ALGS}
        self.all_keys.update({str(k.kid): k for k in fresh.values()})
        self.published = [*(self.published if keep_old else []), *fresh.values()]
        self.current = fresh
        return {alg: str(k.kid) for alg, k in fresh.items()}

    def metadata(self, oidc: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.metadata_issuer or self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
        }
        if oidc:
            doc["subject_types_supported"] = ["public"]
            doc["id_token_signing_alg_values_supported"] = list(SIGNING_ALGS)
        return doc

    def sign(self, body: Mapping[str, Any]) -> str:
        alg = body.get("alg") or "RS256"
        key = self.all_keys[body["kid"]] if body.get("kid") else self.current[alg]
        header: dict[str, Any] = {"typ": "at+jwt", "alg": alg, "kid": key.kid}
        header.update(body.get("header") or {})
        header = {k: v for k, v in header.items() if v is not None}
        registry = JWSRegistry(algorithms=[header["alg"]], strict_check_header=False)
        return jwt.encode(header, dict(body.get("claims") or {}), key, registry=registry, default_type=None)

    def public_pem(self, alg: str) -> str:
        return self.current[alg].as_pem(private=False).decode()

    # -- HTTP ------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
        p = self.path
        if method == "GET":
            if path == f"/.well-known/oauth-authorization-server{p}" and "rfc8414" in self.discovery:
                self.stats["rfc8414"] += 1
                return 200, self.metadata(oidc=False)
            if path == f"{p}/.well-known/openid-configuration" and "oidc" in self.discovery:
                self.stats["oidc"] += 1
                return 200, self.metadata(oidc=True)
            if path == f"{p}/jwks":
                self.stats["jwks"] += 1
                return 200, {"keys": [k.as_dict(private=False) for k in self.published]}
            if path == "/_kids":
                return 200, {alg: k.kid for alg, k in self.current.items()}
            if path == "/_stats":
                return 200, dict(self.stats)
            if path == "/_public.pem":
                alg = query.removeprefix("alg=") or "RS256"
                return 200, {"pem": self.public_pem(alg)}
        if method == "POST":
            if path == "/_sign":
                return 200, {"token": self.sign(body)}
            if path == "/_rotate":
                return 200, self.rotate(keep_old=bool(body.get("keep_old", True)))
            if path == "/_configure":
                if "discovery" in body:
                    self.discovery = set(body["discovery"])
                if "metadata_issuer" in body:
                    self.metadata_issuer = body["metadata_issuer"]
                return 200, {"ok": True}
        self.stats["404"] += 1
        return 404, {"error": "not_found"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw) if raw else {}
            status, doc = self.route(scope["method"], scope["path"], scope["query_string"].decode(), body)
        except Exception as exc:  # a test helper: report, don't hide
            status, doc = 500, {"error": f"{type(exc).__name__}: {exc}"}
        payload = json.dumps(doc).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        })
        await send({"type": "http.response.body", "body": payload})


# -- the pytest-side helper ----------------------------------------------------------------


class TestIssuer:
    """Run a test issuer in a subprocess for the duration of a ``with`` block.

    >>> with TestIssuer() as issuer:                        # or TestIssuer(path="/tenant-a")
    ...     token = issuer.mint(sub="alice", aud=resource, client_id="cursor", scope="mail.read")
    ...     issuer.rotate()                                  # new keys; old ones stay published
    ...     issuer.config()                                  # an IssuerConfig trusting it

    ``mint`` fills ``iss``, ``iat``, ``exp`` (+5 min) and ``jti`` unless given; a claim given
    as ``None`` is left out. ``alg`` is ``"RS256"`` or ``"ES256"``.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, *, path: str = "", port: int | None = None) -> None:
        from tests.support.procs import free_port

        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.url = self.origin + self.path
        """The issuer identifier (``iss``)."""
        self.jwks_uri = f"{self.url}/jwks"
        self._stack: Any = None
        self._http: Any = None

    def __enter__(self) -> TestIssuer:
        import contextlib
        import sys

        import httpx2

        from tests.support.procs import running

        argv = [sys.executable, __file__, "--port", str(self.port), "--issuer-path", self.path]
        with contextlib.ExitStack() as stack:
            stack.enter_context(running(argv, self.port))
            self._http = stack.enter_context(httpx2.Client(base_url=self.origin, timeout=10.0))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"test issuer {method} {path}: HTTP {response.status_code} {response.text}")
        return response.json()

    def mint(
        self, claims: Mapping[str, Any] | None = None, /, *, alg: str = "RS256",
        header: Mapping[str, Any] | None = None, kid: str | None = None, lifetime: int = 300,
        **more_claims: Any,
    ) -> str:
        """Sign an access token with the issuer's current ``alg`` key (or the key ``kid``).

        Claims come from ``claims`` and/or keywords: ``mint(sub="alice", aud=resource)`` or
        ``mint({"sub": "alice", "aud": resource})``. ``iss``, ``iat``, ``exp`` (now + ``lifetime``)
        and ``jti`` are filled in unless given; a claim given as ``None`` is left out.
        ``header`` overrides header parameters (``None`` removes one, e.g. ``{"typ": None}``).
        """
        now = int(time.time())
        full: dict[str, Any] = {"iss": self.url, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        full.update(claims or {})
        full.update(more_claims)
        full = {k: v for k, v in full.items() if v is not None}
        body = {"claims": full, "alg": alg, "header": dict(header or {}), "kid": kid}
        return str(self._call("POST", "/_sign", body)["token"])

    def rotate(self, *, keep_old: bool = True) -> dict[str, str]:
        """New RS256 and ES256 keys; returns their kids. ``keep_old=False`` withdraws the old keys."""
        return dict(self._call("POST", "/_rotate", {"keep_old": keep_old}))

    def configure(
        self, *, discovery: tuple[str, ...] | None = None, metadata_issuer: str | None = None
    ) -> None:
        """Choose which metadata documents are served (``"rfc8414"``, ``"oidc"``) and/or make
        them claim a different ``issuer``."""
        body: dict[str, Any] = {"metadata_issuer": metadata_issuer}
        if discovery is not None:
            body["discovery"] = list(discovery)
        self._call("POST", "/_configure", body)

    def jwks(self) -> dict[str, Any]:
        """The published JWK set (counted in ``stats`` like any other fetch)."""
        return dict(self._call("GET", f"{self.path}/jwks"))

    def kids(self) -> dict[str, str]:
        """The kid of the current signing key per algorithm (not counted in ``stats``)."""
        return dict(self._call("GET", "/_kids"))

    def public_key_pem(self, alg: str = "RS256") -> str:
        return str(self._call("GET", f"/_public.pem?alg={alg}")["pem"])

    def stats(self) -> dict[str, int]:
        """How often each document was served: ``rfc8414``, ``oidc``, ``jwks``, ``404``."""
        return {k: int(v) for k, v in self._call("GET", "/_stats").items()}

    def config(self, **overrides: Any) -> Any:
        """A ``registry.config.IssuerConfig`` trusting this issuer."""
        from registry.config import IssuerConfig

        return IssuerConfig(issuer=self.url, **overrides)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--issuer-path", default="", help='e.g. "/tenant-a"; "" for a host-only issuer')
    args = parser.parse_args()
    app = IssuerApp(f"http://{args.host}:{args.port}", args.issuer_path)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
