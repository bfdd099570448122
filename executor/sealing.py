"""Encryption at rest for third-party tokens: AES-256-GCM with key rotation.

The first key seals; every key opens, so rotating means putting a new key first and
keeping the old ones until every connection has been re-sealed (each refresh re-seals).
The associated data binds a ciphertext to its (agent, user, provider) row, so a sealed
token copied into another row does not open.

Sealed form: ``v1.<kid>.<urlsafe-b64(nonce || ciphertext || tag)>``.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from executor.errors import InterlockError

log = logging.getLogger(__name__)


class VaultKeyError(InterlockError):
    code = "vault_key_error"


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(text: str, source: str) -> list[tuple[str, bytes]]:
    """`kid:base64key` entries separated by commas or newlines; keys must be 32 bytes (AES-256)."""
    keys: list[tuple[str, bytes]] = []
    for entry in text.replace(",", "\n").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        kid, sep, encoded = entry.partition(":")
        try:
            key = _b64d(encoded.strip()) if sep else b""
        except ValueError:
            key = b""
        if not kid.strip() or "." in kid or len(key) != 32:
            raise VaultKeyError(f"{source}: each vault key must be `kid:base64` of 32 bytes (a kid without dots)")
        keys.append((kid.strip(), key))
    if not keys:
        raise VaultKeyError(f"{source}: no vault key found")
    return keys


def new_key_line(kid: str | None = None) -> str:
    return f"{kid or secrets.token_hex(4)}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def load_keys(
    env: Mapping[str, str], key_env: str, key_file: str | None, generated_path: Path, *, generate: bool = True
) -> list[tuple[str, bytes]]:
    """Keys from the environment, else the key file, else a key file generated for development."""
    if env.get(key_env):
        return parse_keys(env[key_env], f"environment variable `{key_env}`")
    path = Path(key_file) if key_file else generated_path
    if not path.exists():
        if key_file or not generate:
            raise VaultKeyError(f"vault key file `{key_file}` does not exist; create it with a line `kid:base64key`")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key_line() + "\n")
        log.warning("generated a vault key at %s (development only: set %s or vault.key_file)", path, key_env)
    return parse_keys(path.read_text(), f"vault key file `{path}`")


class Sealer:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise VaultKeyError("no vault key")
        self.active_kid = keys[0][0]
        self._keys = {kid: AESGCM(key) for kid, key in keys}

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.active_kid].encrypt(nonce, plaintext, aad)
        return f"v1.{self.active_kid}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, sealed: str, aad: bytes) -> bytes:
        version, _, rest = sealed.partition(".")
        kid, _, body = rest.partition(".")
        key = self._keys.get(kid)
        if version != "v1" or key is None:
            raise VaultKeyError(f"a connection is sealed with key `{kid}`, which is not configured; add it back "
                                "to the vault keys (keep old keys until every connection is re-sealed)")
        raw = _b64d(body)
        try:
            return key.decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise VaultKeyError("a connection did not decrypt: it was altered or moved to another row") from None
