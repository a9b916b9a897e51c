"""Tests for certificates.pki.names."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from certificates.pki.errors import PKIError
from certificates.pki.keys import PrivateKey
from certificates.pki.names import (
    SAN_KEYS,
    SUBJECT_FIELDS,
    build_general_names,
    build_name,
    certificate_sans,
    common_name,
    name_to_dict,
    name_to_string,
    sans_flat,
    sans_to_dict,
)


def _error(func: Callable[..., object], *args: object) -> PKIError:
    with pytest.raises(PKIError) as excinfo:
        func(*args)
    return excinfo.value


def test_subject_fields() -> None:
    assert set(SUBJECT_FIELDS) == {
        "common_name",
        "organization",
        "organizational_unit",
        "locality",
        "state",
        "country",
        "email_address",
    }
    assert SUBJECT_FIELDS["common_name"] == NameOID.COMMON_NAME


def test_build_name_order_and_skips_empty() -> None:
    name = build_name(
        {
            "email_address": "pki@example.com",
            "common_name": " api.example.com ",
            "organizational_unit": "",
            "organization": "Example",
            "locality": "Prague",
            "state": "Praha",
            "country": "cz",
        }
    )
    oids = [attribute.oid for attribute in name]
    assert oids == [
        NameOID.COUNTRY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.COMMON_NAME,
        NameOID.EMAIL_ADDRESS,
    ]
    assert name_to_dict(name) == {
        "common_name": "api.example.com",
        "organization": "Example",
        "locality": "Prague",
        "state": "Praha",
        "country": "CZ",
        "email_address": "pki@example.com",
    }
    assert common_name(name) == "api.example.com"
    assert name_to_string(name) == (
        "1.2.840.113549.1.9.1=pki@example.com,CN=api.example.com,O=Example,L=Prague,ST=Praha,C=CZ"
    )


def test_empty_subject() -> None:
    name = build_name({})
    assert len(name) == 0
    assert common_name(name) is None
    assert name_to_dict(name) == {}


def test_name_to_dict_ignores_unknown_and_takes_first() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.COMMON_NAME, "second"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
        ]
    )
    assert name_to_dict(name) == {"common_name": "first"}


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        ({"cn": "x"}, "requested_subject.cn"),
        ({"country": "CZE"}, "requested_subject.country"),
        ({"country": "C1"}, "requested_subject.country"),
        ({"country": "ČR"}, "requested_subject.country"),
        ({"common_name": "a" * 65}, "requested_subject.common_name"),
        ({"organization": "o" * 65}, "requested_subject.organization"),
        ({"organizational_unit": "u" * 65}, "requested_subject.organizational_unit"),
        ({"locality": "l" * 129}, "requested_subject.locality"),
        ({"state": "s" * 129}, "requested_subject.state"),
        ({"email_address": "x" * 250 + "@a.com"}, "requested_subject.email_address"),
        ({"email_address": "no-at-sign"}, "requested_subject.email_address"),
        ({"common_name": "bad\x00name"}, "requested_subject.common_name"),
        ({"common_name": 42}, "requested_subject.common_name"),
    ],
)
def test_build_name_validation(subject: dict[str, Any], field: str) -> None:
    error = _error(build_name, subject)
    assert error.code == "VALIDATION_ERROR"
    assert error.field == field


def test_build_name_upper_bounds_inclusive() -> None:
    name = build_name({"common_name": "a" * 64, "locality": "l" * 128, "state": "s" * 128})
    assert len(name) == 3


def test_build_general_names_all_kinds() -> None:
    names = build_general_names(
        {
            "uris": ["https://svc.example.com/path", "spiffe://example.org/ns/default/sa/api"],
            "dns_names": ["API.Example.com", "*.example.com", "api.example.com"],
            "ip_addresses": ["10.0.0.1", "2001:db8::1", " 10.0.0.1 "],
            "email_addresses": ["Admin@Example.COM"],
        }
    )
    assert names == [
        x509.DNSName("api.example.com"),
        x509.DNSName("*.example.com"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
        x509.RFC822Name("Admin@example.com"),
        x509.UniformResourceIdentifier("https://svc.example.com/path"),
        x509.UniformResourceIdentifier("spiffe://example.org/ns/default/sa/api"),
    ]
    as_dict = sans_to_dict(names)
    assert list(as_dict) == list(SAN_KEYS)
    assert as_dict["ip_addresses"] == ["10.0.0.1", "2001:db8::1"]
    assert sans_flat(as_dict) == [
        "api.example.com",
        "*.example.com",
        "10.0.0.1",
        "2001:db8::1",
        "Admin@example.com",
        "https://svc.example.com/path",
        "spiffe://example.org/ns/default/sa/api",
    ]


def test_idna_unicode_dns_name_becomes_a_label() -> None:
    names = build_general_names(
        {"dns_names": ["Bücher.example", "*.bücher.example"], "email_addresses": ["a@bücher.example"]}
    )
    assert names == [
        x509.DNSName("xn--bcher-kva.example"),
        x509.DNSName("*.xn--bcher-kva.example"),
        x509.RFC822Name("a@xn--bcher-kva.example"),
    ]


def test_empty_and_missing_sans() -> None:
    assert build_general_names({}) == []
    assert build_general_names({"dns_names": [], "uris": None}) == []
    assert sans_to_dict([]) == {key: [] for key in SAN_KEYS}


@pytest.mark.parametrize(
    ("sans", "field"),
    [
        ({"dns": ["a.example"]}, "requested_san.dns"),
        ({"dns_names": "a.example"}, "requested_san.dns_names"),
        ({"dns_names": ["ok.example", ""]}, "requested_san.dns_names[1]"),
        ({"dns_names": ["has space.example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["a..example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["example.com."]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["a" * 64 + ".example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": [".".join(["a" * 63] * 4)]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["ok.example", "foo.*.example"]}, "requested_san.dns_names[1]"),
        ({"dns_names": ["f*.example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["*"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["*.*.example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["-lead.example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["bad/char.example"]}, "requested_san.dns_names[0]"),
        ({"dns_names": ["10.0.0.1"]}, "requested_san.dns_names[0]"),
        ({"ip_addresses": ["10.0.0.0/8"]}, "requested_san.ip_addresses[0]"),
        ({"ip_addresses": ["10.0.0.1", "999.1.1.1"]}, "requested_san.ip_addresses[1]"),
        ({"ip_addresses": ["fe80::1%eth0"]}, "requested_san.ip_addresses[0]"),
        ({"email_addresses": ["no-at.example"]}, "requested_san.email_addresses[0]"),
        ({"email_addresses": ["a@b@c.example"]}, "requested_san.email_addresses[0]"),
        ({"email_addresses": ["@example.com"]}, "requested_san.email_addresses[0]"),
        ({"uris": ["example.com/path"]}, "requested_san.uris[0]"),
        ({"uris": ["https://"]}, "requested_san.uris[0]"),
        ({"uris": ["https://exa mple.com"]}, "requested_san.uris[0]"),
    ],
)
def test_build_general_names_validation(sans: dict[str, Any], field: str) -> None:
    error = _error(build_general_names, sans)
    assert error.code == "VALIDATION_ERROR"
    assert error.field == field


def test_dns_length_limits_inclusive() -> None:
    longest_label = "a" * 63 + ".example"
    name_253 = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(name_253) == 253
    assert build_general_names({"dns_names": [longest_label, name_253]}) == [
        x509.DNSName(longest_label),
        x509.DNSName(name_253),
    ]


def test_certificate_sans_reads_csr(generated_keys: dict[str, PrivateKey]) -> None:
    key = generated_keys["ec-p256"]
    builder = x509.CertificateSigningRequestBuilder().subject_name(build_name({"common_name": "x"}))
    assert certificate_sans(builder.sign(key, hashes.SHA256())) == {k: [] for k in SAN_KEYS}
    general_names = build_general_names({"dns_names": ["x.example"], "ip_addresses": ["192.0.2.1"]})
    with_sans = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False).sign(
        key, hashes.SHA256()
    )
    assert certificate_sans(with_sans) == {
        "dns_names": ["x.example"],
        "ip_addresses": ["192.0.2.1"],
        "email_addresses": [],
        "uris": [],
    }
