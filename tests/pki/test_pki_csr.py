"""Tests for certificates.pki.csr."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certificates.pki.csr import MAX_CSR_BYTES, build_csr, csr_to_pem, load_csr
from certificates.pki.errors import PKIError
from certificates.pki.keys import KEY_TYPES, PrivateKey, public_keys_match
from certificates.pki.names import certificate_sans, name_to_dict

SUBJECT = {"common_name": "api.example.com", "organization": "Example", "country": "CZ"}
SANS = {"dns_names": ["api.example.com", "www.example.com"], "ip_addresses": ["192.0.2.10"]}


def _error(data: str | bytes) -> PKIError:
    with pytest.raises(PKIError) as excinfo:
        load_csr(data)
    return excinfo.value


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_build_and_load_round_trip(generated_keys: dict[str, PrivateKey], key_type: str) -> None:
    key = generated_keys[key_type]
    csr = build_csr(key, SUBJECT, SANS)
    pem = csr_to_pem(csr)
    assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    loaded = load_csr(pem)
    assert public_keys_match(key, loaded.public_key())
    assert name_to_dict(loaded.subject) == SUBJECT
    assert certificate_sans(loaded) == {
        "dns_names": ["api.example.com", "www.example.com"],
        "ip_addresses": ["192.0.2.10"],
        "email_addresses": [],
        "uris": [],
    }
    assert load_csr(csr.public_bytes(serialization.Encoding.DER)) == loaded


def test_load_tolerates_whitespace_crlf_and_bytes(generated_keys: dict[str, PrivateKey]) -> None:
    pem = csr_to_pem(build_csr(generated_keys["ec-p256"], SUBJECT, SANS))
    crlf = "\r\n\r\n   " + pem.replace("\n", "\r\n") + "\r\n\t \r\n"
    assert load_csr(crlf) == load_csr(pem)
    assert load_csr(crlf.encode("ascii")) == load_csr(pem)


def test_san_extension_only_when_sans(generated_keys: dict[str, PrivateKey]) -> None:
    csr = build_csr(generated_keys["ec-p256"], SUBJECT, {})
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    extension = build_csr(generated_keys["ec-p256"], SUBJECT, SANS).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert not extension.critical
    san_only = build_csr(generated_keys["ec-p256"], {}, SANS)
    assert san_only.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_signature_hash_follows_key(generated_keys: dict[str, PrivateKey]) -> None:
    assert isinstance(build_csr(generated_keys["ec-p384"], SUBJECT, {}).signature_hash_algorithm, hashes.SHA384)
    assert build_csr(generated_keys["ed25519"], SUBJECT, {}).signature_hash_algorithm is None


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ed25519"])
def test_tampered_subject_is_invalid_csr(generated_keys: dict[str, PrivateKey], key_type: str) -> None:
    der = build_csr(generated_keys[key_type], SUBJECT, SANS).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"api.example.com", b"evil.example.co", 1)
    assert tampered != der
    error = _error(tampered)
    assert (error.code, error.field, error.message) == ("INVALID_CSR", "csr_pem", "CSR signature does not verify")


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ed25519"])
def test_tampered_signature_is_invalid_csr(generated_keys: dict[str, PrivateKey], key_type: str) -> None:
    der = bytearray(build_csr(generated_keys[key_type], SUBJECT, SANS).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    error = _error(bytes(der))
    assert (error.code, error.field) == ("INVALID_CSR", "csr_pem")


@pytest.mark.parametrize(
    "data",
    [
        "",
        "garbage",
        b"\x00\x01\x02garbage",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIBÄ\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_garbage_is_invalid_format(data: str | bytes) -> None:
    error = _error(data)
    assert (error.code, error.field) == ("INVALID_FORMAT", "csr_pem")


def test_oversized_input_rejected(generated_keys: dict[str, PrivateKey]) -> None:
    pem = csr_to_pem(build_csr(generated_keys["ec-p256"], SUBJECT, SANS))
    padded = pem + " " * (MAX_CSR_BYTES + 1 - len(pem))
    error = _error(padded)
    assert (error.code, error.field) == ("INVALID_FORMAT", "csr_pem")
    assert load_csr(pem + " " * (MAX_CSR_BYTES - len(pem)))


def test_unsupported_key_type() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "k1")]))
        .sign(key, hashes.SHA256())
    )
    error = _error(csr.public_bytes(serialization.Encoding.PEM))
    assert (error.code, error.field) == ("UNSUPPORTED_KEY", "csr_pem")
