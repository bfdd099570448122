"""The key that signs the audit trail's checkpoints: an Ed25519 key in a PEM (PKCS#8) file.

By default the file sits beside the audit database (`interlock-audit.db` -> `interlock-audit.key`).
It is generated, with mode 0600, only for a trail that has no checkpoint yet: a trail whose
checkpoints were signed by a key that has gone missing must not silently get a new one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from executor.errors import StoreError

log = logging.getLogger(__name__)


def default_key_file(database: str | Path) -> Path:
    return Path(database).with_suffix(".key")


def load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """Read the Ed25519 signing key (PEM); when absent and ``create``, generate it with mode 0600."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise StoreError(f"the audit signing key `{path}` is missing; restore it (checkpoints already signed "
                             "with it must stay verifiable), or verify with `--public-key`") from None
        return _create_key(path)
    except OSError as exc:
        raise StoreError(f"cannot read the audit signing key `{path}`: {exc.strerror or exc}") from exc
    if path.stat().st_mode & 0o077:
        log.warning("the audit signing key %s is readable by others; chmod 600 it", path)
    try:
        key = load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise StoreError(f"`{path}` is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"`{path}` is not an Ed25519 key; checkpoints are signed with Ed25519")
    return key


def _create_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_signing_key(path, create=False)
    except OSError as exc:
        raise StoreError(f"cannot create the audit signing key `{path}`: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key
