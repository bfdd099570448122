"""The embedded issuer's keys: JWT signing keys (RFC 7517 JWK, published at ``/idp/jwks``) and
the HMAC key of login sessions and CSRF tokens. All live in the store.

On first start a P-256 key (ES256, RFC 7518 §3.4) is generated and stored; when several
replicas start at once only one key wins (``ensure_idp_key``). Restarts keep the key, so
tokens stay valid.

Rotation: ``rotate_signing_key`` adds a new key. New tokens are signed with the newest key;
the previous one stays published, so tokens it signed verify until they expire. Only the
``KEEP_SIGNING_KEYS`` newest keys are kept: rotate at most once per access-token lifetime.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from joserfc.jwk import ECKey, KeySet, OctKey, import_key

from executor.idp.records import KeyRecord
from registry.store import IssuerStore

SIGNING_ALG = "ES256"
KEEP_SIGNING_KEYS = 2


def new_signing_key(now: int) -> KeyRecord:
    key = ECKey.generate_key("P-256", {"alg": SIGNING_ALG, "use": "sig"}, private=True)
    key.ensure_kid()  # the RFC 7638 thumbprint
    return KeyRecord(kid=str(key.kid), use="sig", alg=SIGNING_ALG, jwk=json.dumps(key.as_dict(private=True)),
                     created_at=now)


def new_session_key(now: int) -> KeyRecord:
    key = OctKey.generate_key(256, private=True)
    key.ensure_kid()
    return KeyRecord(kid=str(key.kid), use="session", alg="HS256", jwk=json.dumps(key.as_dict(private=True)),
                     created_at=now)


def rotate_signing_key(store: IssuerStore, *, now: int | None = None) -> str:
    """Add a new signing key (the newest signs from now on) and return its kid."""
    record = new_signing_key(int(time.time()) if now is None else now)
    store.add_idp_key(record, keep=KEEP_SIGNING_KEYS)
    return record.kid


class KeyRing:
    """The keys as read from the store. Reads are one SELECT; keys are parsed only when the set of
    kids changed (a rotation by another process or replica shows up on the next read)."""

    def __init__(self, store: IssuerStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._signing: list[ECKey] = []
        self._kids: tuple[str, ...] = ()
        self._verification = KeySet([])
        now = int(clock())
        self._store.ensure_idp_key(new_signing_key(now))
        session = self._store.ensure_idp_key(new_session_key(now))
        self.session_secret: bytes = _oct(session[0]).raw_value
        self.refresh()

    def refresh(self) -> None:
        """Re-read the signing keys from the store."""
        records = self._store.idp_keys("sig")
        kids = tuple(r.kid for r in records)
        with self._lock:
            if kids == self._kids:
                return
            keys = [_ec(r) for r in records]
            self._signing, self._kids = keys, kids
            self._verification = KeySet([import_key(k.as_dict(private=False)) for k in keys])

    def signing_key(self) -> ECKey:
        """The newest key, after re-reading the store (a new key from another process is used at once)."""
        self.refresh()
        if not self._signing:
            raise RuntimeError("the embedded issuer has no signing key")
        return self._signing[0]

    def verification_keys(self, *, refresh: bool = False) -> KeySet:
        """Public keys that verify our tokens; ``refresh`` re-reads the store first (unknown kid)."""
        if refresh:
            self.refresh()
        return self._verification

    def jwks(self) -> dict[str, list[dict[str, object]]]:
        """The public JWK set, as served at ``/idp/jwks``."""
        self.refresh()
        return {"keys": [dict(k.as_dict(private=False)) for k in self._signing]}


def _ec(record: KeyRecord) -> ECKey:
    key = import_key(json.loads(record.jwk), "EC")
    assert isinstance(key, ECKey)
    return key


def _oct(record: KeyRecord) -> OctKey:
    key = import_key(json.loads(record.jwk), "oct")
    assert isinstance(key, OctKey)
    return key
