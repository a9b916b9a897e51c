"""Tests for certificates.pki.envelope."""

from __future__ import annotations

import hashlib
import os

import pytest

from certificates.pki.envelope import kek_id_for, open_sealed, seal
from certificates.pki.errors import PKIError

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))
SECRET = b"-----BEGIN PRIVATE KEY-----\nsecret key bytes\n-----END PRIVATE KEY-----\n"


def _fails(blob: bytes, keks: dict[str, bytes], aad: bytes) -> PKIError:
    with pytest.raises(PKIError) as excinfo:
        open_sealed(blob, keks=keks, aad=aad)
    assert excinfo.value.code == "KEY_DECRYPT_FAILED"
    return excinfo.value


def test_kek_id_for() -> None:
    assert kek_id_for(KEK) == hashlib.sha256(b"mazevault-kek-id" + KEK).hexdigest()[:8]
    assert len(kek_id_for(KEK)) == 8
    assert kek_id_for(KEK) != kek_id_for(OTHER_KEK)


def test_round_trip_and_layout() -> None:
    kek_id = kek_id_for(KEK)
    blob = seal(SECRET, kek=KEK, kek_id=kek_id, aad=b"key:42")
    assert blob[:3] == b"MV1"
    assert blob[3] == len(kek_id)
    assert blob[4 : 4 + len(kek_id)] == kek_id.encode()
    assert len(blob) == 3 + 1 + len(kek_id) + 12 + 48 + 12 + len(SECRET) + 16
    assert SECRET not in blob
    assert open_sealed(blob, keks={kek_id: KEK}, aad=b"key:42") == SECRET
    assert seal(SECRET, kek=KEK, kek_id=kek_id, aad=b"key:42") != blob
    assert open_sealed(seal(b"", kek=KEK, kek_id=kek_id, aad=b""), keks={kek_id: KEK}, aad=b"") == b""


def test_rotation_picks_kek_by_id() -> None:
    old_id, new_id = kek_id_for(KEK), kek_id_for(OTHER_KEK)
    keyring = {old_id: KEK, new_id: OTHER_KEK}
    old_blob = seal(SECRET, kek=KEK, kek_id=old_id, aad=b"a")
    new_blob = seal(SECRET, kek=OTHER_KEK, kek_id=new_id, aad=b"a")
    assert open_sealed(old_blob, keks=keyring, aad=b"a") == SECRET
    assert open_sealed(new_blob, keks=keyring, aad=b"a") == SECRET


def test_wrong_aad_fails() -> None:
    blob = seal(SECRET, kek=KEK, kek_id="k1", aad=b"key:42")
    _fails(blob, {"k1": KEK}, b"key:43")
    _fails(blob, {"k1": KEK}, b"")


def test_wrong_or_unknown_kek_fails() -> None:
    blob = seal(SECRET, kek=KEK, kek_id="k1", aad=b"a")
    _fails(blob, {"k1": OTHER_KEK}, b"a")
    error = _fails(blob, {"k2": KEK}, b"a")
    assert "k1" not in error.message and "k2" not in error.message
    _fails(blob, {}, b"a")


def test_relabelled_kek_id_fails() -> None:
    blob = seal(SECRET, kek=KEK, kek_id="k1", aad=b"a")
    relabelled = blob[:4] + b"k2" + blob[6:]
    _fails(relabelled, {"k1": KEK, "k2": KEK}, b"a")


def test_every_tampered_byte_fails() -> None:
    blob = seal(b"short secret", kek=KEK, kek_id="k1", aad=b"a")
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x80
        _fails(bytes(tampered), {"k1": KEK}, b"a")


@pytest.mark.parametrize("blob", [b"", b"MV1", b"MV2\x02k1" + os.urandom(100), b"MV1\x02k1" + os.urandom(10)])
def test_malformed_blob_fails(blob: bytes) -> None:
    _fails(blob, {"k1": KEK}, b"a")


def test_truncated_blob_fails() -> None:
    blob = seal(SECRET, kek=KEK, kek_id="k1", aad=b"a")
    _fails(blob[:-1], {"k1": KEK}, b"a")
    _fails(blob + b"\x00", {"k1": KEK}, b"a")


@pytest.mark.parametrize(
    ("kek", "kek_id"), [(b"short", "k1"), (KEK + b"x", "k1"), (KEK, ""), (KEK, "ké"), (KEK, "x" * 256)]
)
def test_seal_rejects_bad_parameters(kek: bytes, kek_id: str) -> None:
    with pytest.raises(PKIError) as excinfo:
        seal(SECRET, kek=kek, kek_id=kek_id, aad=b"a")
    assert excinfo.value.code == "VALIDATION_ERROR"
