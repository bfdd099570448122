"""Encryption at rest of connections: AES-GCM, bound to its row, with key rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from executor.connections import ConnectionKey
from executor.sealing import Sealer, VaultKeyError, load_keys, new_key_line, parse_keys

ALICE_CURSOR = ConnectionKey("cursor", "https://idp", "alice", "mail")
ALICE_CLAUDE = ConnectionKey("claude", "https://idp", "alice", "mail")


def keys(*lines: str) -> list[tuple[str, bytes]]:
    return parse_keys("\n".join(lines), "test")


def test_a_sealed_token_opens_only_in_its_own_row() -> None:
    sealer = Sealer(keys(new_key_line("k1")))
    sealed = sealer.seal(b"tok-123", ALICE_CURSOR.aad())
    assert b"tok-123" not in sealed.encode() and sealed.startswith("v1.k1.")
    assert sealer.open(sealed, ALICE_CURSOR.aad()) == b"tok-123"
    with pytest.raises(VaultKeyError):
        sealer.open(sealed, ALICE_CLAUDE.aad())  # copied into another agent's row


def test_rotation_old_ciphertexts_stay_readable_new_ones_use_the_new_key() -> None:
    old_line, new_line = new_key_line("old"), new_key_line("new")
    sealed_before = Sealer(keys(old_line)).seal(b"before", ALICE_CURSOR.aad())
    rotated = Sealer(keys(new_line, old_line))
    assert rotated.open(sealed_before, ALICE_CURSOR.aad()) == b"before"
    sealed_after = rotated.seal(b"after", ALICE_CURSOR.aad())
    assert sealed_after.startswith("v1.new.")
    with pytest.raises(VaultKeyError) as err:
        Sealer(keys(new_line)).open(sealed_before, ALICE_CURSOR.aad())  # the old key was dropped too early
    assert "`old`" in err.value.message


def test_tampering_is_detected() -> None:
    sealer = Sealer(keys(new_key_line("k1")))
    sealed = sealer.seal(b"tok", ALICE_CURSOR.aad())
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(VaultKeyError):
        sealer.open(flipped, ALICE_CURSOR.aad())


@pytest.mark.parametrize("text", ["", "nokey", "k1:short", "k.1:" + "A" * 43, "k1:!!!notbase64"])
def test_bad_key_material_is_refused(text: str) -> None:
    with pytest.raises(VaultKeyError):
        parse_keys(text, "test")


def test_environment_beats_the_file_and_a_dev_key_is_generated_private(tmp_path: Path) -> None:
    line = new_key_line("env")
    assert load_keys({"K": line}, "K", None, tmp_path / "gen")[0][0] == "env"
    generated = load_keys({}, "K", None, tmp_path / "gen")
    assert stat.S_IMODE((tmp_path / "gen").stat().st_mode) == 0o600
    assert load_keys({}, "K", None, tmp_path / "gen") == generated  # stable across restarts
    with pytest.raises(VaultKeyError):
        load_keys({}, "K", str(tmp_path / "missing"), tmp_path / "gen")
    with pytest.raises(VaultKeyError):
        load_keys({}, "K", None, tmp_path / "absent", generate=False)
