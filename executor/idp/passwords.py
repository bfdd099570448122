"""Password hashes for the embedded issuer's users: scrypt (RFC 7914) from the standard library.

A hash is one line of text, safe to keep in the config file::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

``n`` (CPU/memory cost, a power of two), ``r`` (block size) and ``p`` (parallelism) are the
RFC 7914 parameters. Verification re-derives the key with the stored parameters and compares
in constant time. Parameters are bounded, so a hostile hash cannot make verification eat the
machine's memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import NamedTuple

SCHEME = "scrypt"
N, R, P = 2**15, 8, 1
"""The cost of new hashes: 32 MiB and about 0.1 s per check (OWASP's scrypt minimum is N=2^17
with r=8 at p=1 for 128 MiB; this is a single-machine default, raise N for exposed installs)."""
SALT_BYTES = 16
KEY_BYTES = 32
MAX_N, MAX_R, MAX_P = 2**20, 32, 16
"""Refuse hashes that would need more than 128 * MAX_N * MAX_R bytes (4 GiB) or long runs."""
MAX_MEMORY = 1024 * 1024 * 1024


class ScryptHash(NamedTuple):
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def hash_password(password: str) -> str:
    """Hash ``password`` with a fresh random salt, in the ``scrypt$...`` format."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, ScryptHash(N, R, P, salt, b""), KEY_BYTES)
    return "$".join([SCHEME, str(N), str(R), str(P), _b64(salt), _b64(key)])


def verify_password(password: str, password_hash: str) -> bool:
    """Does ``password`` match ``password_hash``? False (never an exception) for a malformed hash."""
    parsed = parse_hash(password_hash)
    if parsed is None:
        return False
    return hmac.compare_digest(_derive(password, parsed, len(parsed.key)), parsed.key)


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, so an unknown username answers as slowly as a known one."""
    _derive(password, _DUMMY, KEY_BYTES)


def hash_problem(password_hash: str) -> str | None:
    """Why ``password_hash`` is not a usable hash, for config validation; None when it is."""
    if parse_hash(password_hash) is not None:
        return None
    if not password_hash.startswith(f"{SCHEME}$"):
        return "is not a password hash; store `scrypt$n$r$p$salt$hash` as printed by `hash_password`, never a password"
    return (
        "is not a valid scrypt hash; expected `scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>` with n a power of "
        f"two up to {MAX_N}, r up to {MAX_R}, p up to {MAX_P}"
    )


def parse_hash(password_hash: str) -> ScryptHash | None:
    parts = password_hash.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return None
    if not (1 < n <= MAX_N and n & (n - 1) == 0 and 0 < r <= MAX_R and 0 < p <= MAX_P):
        return None
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        return None
    return ScryptHash(n, r, p, salt, key)


def _derive(password: str, params: ScryptHash, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=params.salt, n=params.n, r=params.r, p=params.p,
        maxmem=MAX_MEMORY, dklen=length,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_ALPHABET for c in text.rstrip("=")):
        raise ValueError("not base64")
    return base64.b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4), validate=True)


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_DUMMY = ScryptHash(N, R, P, b"interlock-dummy!", b"")
