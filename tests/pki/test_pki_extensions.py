"""Tests for certificates.pki.extensions."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certificates.pki.errors import PKIError
from certificates.pki.extensions import EXTENDED_KEY_USAGES, KEY_USAGES, extended_key_usage, key_usage


def test_vocabulary() -> None:
    assert KEY_USAGES == (
        "digitalSignature",
        "nonRepudiation",
        "keyEncipherment",
        "dataEncipherment",
        "keyAgreement",
        "keyCertSign",
        "cRLSign",
        "encipherOnly",
        "decipherOnly",
    )
    assert EXTENDED_KEY_USAGES["serverAuth"] == ExtendedKeyUsageOID.SERVER_AUTH
    assert EXTENDED_KEY_USAGES["OCSPSigning"] == ExtendedKeyUsageOID.OCSP_SIGNING
    assert set(EXTENDED_KEY_USAGES) == {
        "serverAuth",
        "clientAuth",
        "codeSigning",
        "emailProtection",
        "timeStamping",
        "OCSPSigning",
    }


def test_key_usage_bits() -> None:
    value = key_usage(["digitalSignature", "keyEncipherment", "digitalSignature"])
    assert value == x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    assert key_usage(["nonRepudiation"]).content_commitment
    agreement = key_usage(["keyAgreement", "encipherOnly"])
    assert agreement.key_agreement and agreement.encipher_only and not agreement.decipher_only


@pytest.mark.parametrize(
    "names",
    [["digitalSignature", "digital_signature"], [], ["encipherOnly"], ["decipherOnly", "digitalSignature"]],
)
def test_key_usage_invalid(names: list[str]) -> None:
    with pytest.raises(PKIError) as excinfo:
        key_usage(names)
    assert (excinfo.value.code, excinfo.value.field) == ("VALIDATION_ERROR", "key_usage")


def test_extended_key_usage() -> None:
    assert extended_key_usage([]) is None
    value = extended_key_usage(["clientAuth", "serverAuth", "clientAuth"])
    assert value is not None
    assert list(value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(PKIError) as excinfo:
        extended_key_usage(["serverAuth", "anyExtendedKeyUsage"])
    assert (excinfo.value.code, excinfo.value.field) == ("VALIDATION_ERROR", "extended_key_usage")
