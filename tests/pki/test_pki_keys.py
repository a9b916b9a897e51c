"""Tests for certificates.pki.keys."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certificates.pki.errors import PKIError
from certificates.pki.keys import (
    KEY_TYPES,
    KeyInfo,
    PrivateKey,
    check_key_strength,
    describe_public_key,
    generate_private_key,
    key_type_for,
    load_private_key,
    private_key_to_der,
    private_key_to_pem,
    public_keys_match,
    signature_hash_for,
)


@pytest.fixture(scope="module")
def rsa_1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - deliberately weak


def _dsa_key() -> dsa.DSAPrivateKey:
    """A DSA key: a key class the PKI layer must refuse."""
    return dsa.generate_private_key(key_size=1024)  # noqa: S505 - only used to test rejection


def test_key_types_are_the_generation_choices() -> None:
    assert KEY_TYPES == ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519")


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_generate_every_key_type(generated_keys: dict[str, PrivateKey], key_type: str) -> None:
    key = generated_keys[key_type]
    info = describe_public_key(key.public_key())
    assert info.key_type == key_type
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.public_key().public_numbers().e == 65537
    check_key_strength(key.public_key())


def test_generate_unknown_type() -> None:
    with pytest.raises(PKIError) as excinfo:
        generate_private_key("dsa-2048")
    assert excinfo.value.code == "UNSUPPORTED_KEY"


@pytest.mark.parametrize(
    ("algorithm", "size", "expected"),
    [
        ("RSA", 2048, "rsa-2048"),
        ("rsa", 3072, "rsa-3072"),
        ("Rsa", 4096, "rsa-4096"),
        ("RSA", None, "rsa-2048"),
        ("ECDSA", 256, "ec-p256"),
        ("ecdsa", 384, "ec-p384"),
        ("EC", None, "ec-p256"),
        ("ec", 384, "ec-p384"),
        ("Ed25519", None, "ed25519"),
        ("ED25519", 256, "ed25519"),
    ],
)
def test_key_type_for(algorithm: str, size: int | None, expected: str) -> None:
    assert key_type_for(algorithm, size) == expected


@pytest.mark.parametrize(
    ("algorithm", "size", "field"),
    [
        (None, 2048, "requested_key_algorithm"),
        ("", None, "requested_key_algorithm"),
        ("DSA", 2048, "requested_key_algorithm"),
        ("RSA", 1024, "requested_key_size"),
        ("RSA", 8192, "requested_key_size"),
        ("ECDSA", 521, "requested_key_size"),
        ("EC", 2048, "requested_key_size"),
        ("Ed25519", 448, "requested_key_size"),
    ],
)
def test_key_type_for_invalid(algorithm: str | None, size: int | None, field: str) -> None:
    with pytest.raises(PKIError) as excinfo:
        key_type_for(algorithm, size)
    assert excinfo.value.code == "UNSUPPORTED_KEY"
    assert excinfo.value.field == field


def test_describe_public_key(generated_keys: dict[str, PrivateKey]) -> None:
    assert describe_public_key(generated_keys["rsa-2048"].public_key()) == KeyInfo(
        algorithm="RSA", size=2048, curve=None, key_type="rsa-2048", display="RSA-2048"
    )
    assert describe_public_key(generated_keys["ec-p256"].public_key()) == KeyInfo(
        algorithm="ECDSA", size=256, curve="P-256", key_type="ec-p256", display="ECDSA-P256"
    )
    assert describe_public_key(generated_keys["ec-p384"].public_key()).display == "ECDSA-P384"
    assert describe_public_key(generated_keys["ed25519"].public_key()) == KeyInfo(
        algorithm="Ed25519", size=256, curve=None, key_type="ed25519", display="Ed25519"
    )
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    assert describe_public_key(p521) == KeyInfo(
        algorithm="ECDSA", size=521, curve="P-521", key_type="ec-p521", display="ECDSA-P521"
    )
    ed448_info = describe_public_key(ed448.Ed448PrivateKey.generate().public_key())
    assert (ed448_info.algorithm, ed448_info.size, ed448_info.key_type) == ("Ed448", 456, "ed448")


def test_describe_any_rsa_size(rsa_1024: rsa.RSAPrivateKey) -> None:
    info = describe_public_key(rsa_1024.public_key())
    assert (info.key_type, info.display, info.size) == ("rsa-1024", "RSA-1024", 1024)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: _dsa_key().public_key(),
        lambda: ec.generate_private_key(ec.SECP256K1()).public_key(),
        lambda: x25519.X25519PrivateKey.generate().public_key(),
    ],
    ids=["dsa", "secp256k1", "x25519"],
)
def test_describe_unsupported(make_key: Callable[[], PublicKeyTypes]) -> None:
    with pytest.raises(PKIError) as excinfo:
        describe_public_key(make_key())
    assert excinfo.value.code == "UNSUPPORTED_KEY"


def test_weak_rsa_1024(rsa_1024: rsa.RSAPrivateKey) -> None:
    with pytest.raises(PKIError) as excinfo:
        check_key_strength(rsa_1024.public_key())
    assert excinfo.value.code == "WEAK_KEY"
    check_key_strength(rsa_1024.public_key(), min_rsa_bits=1024)


@pytest.mark.parametrize("exponent", [3, 17, 257, 65535])
def test_weak_rsa_exponent(generated_keys: dict[str, PrivateKey], exponent: int) -> None:
    modulus = generated_keys["rsa-2048"].public_key().public_numbers().n  # type: ignore[union-attr]
    public = rsa.RSAPublicNumbers(e=exponent, n=modulus).public_key()
    with pytest.raises(PKIError) as excinfo:
        check_key_strength(public)
    assert excinfo.value.code == "WEAK_KEY"


def test_large_odd_rsa_exponent_accepted(generated_keys: dict[str, PrivateKey]) -> None:
    modulus = generated_keys["rsa-2048"].public_key().public_numbers().n  # type: ignore[union-attr]
    check_key_strength(rsa.RSAPublicNumbers(e=65539, n=modulus).public_key())


def test_weak_curve() -> None:
    with pytest.raises(PKIError) as excinfo:
        check_key_strength(ec.generate_private_key(ec.SECP256K1()).public_key())
    assert excinfo.value.code == "WEAK_KEY"
    check_key_strength(ec.generate_private_key(ec.SECP521R1()).public_key())
    check_key_strength(ed448.Ed448PrivateKey.generate().public_key())


def test_signature_hash_for(generated_keys: dict[str, PrivateKey]) -> None:
    assert isinstance(signature_hash_for(generated_keys["rsa-2048"]), hashes.SHA256)
    assert isinstance(signature_hash_for(generated_keys["rsa-4096"]), hashes.SHA256)
    assert isinstance(signature_hash_for(generated_keys["ec-p256"]), hashes.SHA256)
    assert isinstance(signature_hash_for(generated_keys["ec-p384"].public_key()), hashes.SHA384)
    assert isinstance(signature_hash_for(ec.generate_private_key(ec.SECP521R1())), hashes.SHA512)
    assert signature_hash_for(generated_keys["ed25519"]) is None
    assert signature_hash_for(ed448.Ed448PrivateKey.generate()) is None


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ec-p384", "ed25519"])
def test_pem_round_trip(generated_keys: dict[str, PrivateKey], key_type: str) -> None:
    key = generated_keys[key_type]
    pem = private_key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_keys_match(load_private_key(pem), key.public_key())
    encrypted = private_key_to_pem(key, password=b"s3cret")
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_keys_match(load_private_key(encrypted, password=b"s3cret"), key.public_key())
    der = private_key_to_der(key)
    assert public_keys_match(load_private_key(der), key.public_key())
    assert public_keys_match(load_private_key(b"\r\n  " + pem + b"\n\n"), key.public_key())


def test_load_traditional_formats(generated_keys: dict[str, PrivateKey]) -> None:
    for key_type in ("rsa-2048", "ec-p256"):
        key = generated_keys[key_type]
        for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
            data = key.private_bytes(
                encoding, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
            assert public_keys_match(load_private_key(data), key)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"pw"),
        )
        assert public_keys_match(load_private_key(encrypted, password=b"pw"), key)


def test_wrong_or_missing_password(generated_keys: dict[str, PrivateKey]) -> None:
    key = generated_keys["ec-p256"]
    encrypted_pem = private_key_to_pem(key, password=b"right")
    encrypted_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"right")
    )
    for data in (encrypted_pem, encrypted_der):
        for password in (b"wrong", None):
            with pytest.raises(PKIError) as excinfo:
                load_private_key(data, password=password)
            assert excinfo.value.code == "WRONG_PASSWORD"
            assert b"right" not in excinfo.value.message.encode()
    with pytest.raises(PKIError) as excinfo:
        load_private_key(private_key_to_pem(key), password=b"unexpected")
    assert excinfo.value.code == "WRONG_PASSWORD"


@pytest.mark.parametrize(
    "data",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"\x30\x03\x02\x01\x00",
        b"",
    ],
)
@pytest.mark.parametrize("password", [None, b"pw"])
def test_load_garbage(data: bytes, password: bytes | None) -> None:
    with pytest.raises(PKIError) as excinfo:
        load_private_key(data, password=password)
    assert excinfo.value.code == "INVALID_FORMAT"


def test_load_unsupported_private_key() -> None:
    for key in (_dsa_key(), x25519.X25519PrivateKey.generate()):
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(PKIError) as excinfo:
            load_private_key(pem)
        assert excinfo.value.code == "UNSUPPORTED_KEY"


def test_empty_password_rejected(generated_keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(PKIError):
        private_key_to_pem(generated_keys["ec-p256"], password=b"")


def test_public_keys_match(generated_keys: dict[str, PrivateKey]) -> None:
    ec_key = generated_keys["ec-p256"]
    assert public_keys_match(ec_key, ec_key.public_key())
    assert not public_keys_match(ec_key, generated_keys["ec-p384"].public_key())
    assert not public_keys_match(ec_key, generated_keys["rsa-2048"].public_key())
    other = ed25519.Ed25519PrivateKey.generate()
    assert not public_keys_match(generated_keys["ed25519"], other.public_key())
