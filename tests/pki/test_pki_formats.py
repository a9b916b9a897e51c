"""Tests for certificates.pki.formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certificates.pki.errors import PKIError
from certificates.pki.formats import (
    cert_to_pem,
    certs_to_pem,
    fingerprint_sha256,
    format_serial,
    load_certificate,
    load_pem_certificates,
    parse_serial,
    utc,
)


@pytest.mark.parametrize(
    ("serial", "text"),
    [(0x1ABCD, "01:AB:CD"), (1, "01"), (0, "00"), (0xFF, "FF"), (0x100, "01:00"), (2**159 - 1, "7F" + ":FF" * 19)],
)
def test_format_serial(serial: int, text: str) -> None:
    assert format_serial(serial) == text
    assert parse_serial(text) == serial


@pytest.mark.parametrize("text", ["01:AB:CD", "01abcd", "0x01abcd", "0X1ABCD", "1abcd", " 01:ab:cd ", "1:AB:CD"])
def test_parse_serial_variants(text: str) -> None:
    assert parse_serial(text) == 0x1ABCD


def test_serial_round_trip_random() -> None:
    from certificates.pki.builder import random_serial

    for _ in range(100):
        serial = random_serial()
        assert parse_serial(format_serial(serial)) == serial


@pytest.mark.parametrize("text", ["", "0x", "xyz", "01::AB", "01:ABC", ":01", "01-AB", "12 34", "f" * 65])
def test_parse_serial_invalid(text: str) -> None:
    with pytest.raises(PKIError) as excinfo:
        parse_serial(text)
    assert excinfo.value.code == "VALIDATION_ERROR"


def test_format_serial_negative() -> None:
    with pytest.raises(PKIError):
        format_serial(-1)


def test_certificate_encodings(root_cert: x509.Certificate, inter_cert: x509.Certificate) -> None:
    root, inter = root_cert, inter_cert
    fingerprint = fingerprint_sha256(root)
    assert fingerprint == ":".join(f"{b:02X}" for b in root.fingerprint(hashes.SHA256()))
    assert len(fingerprint) == 32 * 3 - 1
    pem = cert_to_pem(root)
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and pem.endswith("-----END CERTIFICATE-----\n")
    assert load_certificate(pem) == root
    assert load_certificate(pem.encode()) == root
    assert load_certificate("\r\n" + pem.replace("\n", "\r\n")) == root
    assert load_certificate(root.public_bytes(serialization.Encoding.DER)) == root
    bundle = certs_to_pem([inter, root])
    assert bundle == cert_to_pem(inter) + cert_to_pem(root)
    assert load_pem_certificates(bundle) == [inter, root]
    assert load_pem_certificates("junk before\n" + bundle) == [inter, root]


@pytest.mark.parametrize(
    "data",
    ["", "garbage", b"\x30\x00", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ünïcode"],
)
def test_load_certificate_invalid(data: str | bytes) -> None:
    with pytest.raises(PKIError) as excinfo:
        load_certificate(data)
    assert (excinfo.value.code, excinfo.value.field) == ("INVALID_FORMAT", "certificate_pem")


@pytest.mark.parametrize(
    "data", ["", "no certificates here", "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----"]
)
def test_load_pem_certificates_invalid(data: str) -> None:
    with pytest.raises(PKIError) as excinfo:
        load_pem_certificates(data)
    assert (excinfo.value.code, excinfo.value.field) == ("INVALID_FORMAT", "certificate_pem")


def test_utc() -> None:
    naive = datetime(2030, 1, 2, 3, 4, 5)
    assert utc(naive) == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    plus_two = datetime(2030, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    converted = utc(plus_two)
    assert converted.tzinfo == UTC
    assert converted == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert converted.hour == 3
