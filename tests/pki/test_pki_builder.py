"""Tests for certificates.pki.builder: serials, CA hierarchy, leaf profile, external verification."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certificates.pki.builder import (
    CAProfile,
    LeafProfile,
    random_serial,
    sign_ca,
    sign_leaf,
    verify_issued_by,
)
from certificates.pki.errors import PKIError
from certificates.pki.formats import cert_to_pem
from certificates.pki.keys import PrivateKey, PublicKey, generate_private_key
from certificates.pki.names import build_general_names, build_name, certificate_sans

CRL_URL = "http://crl.mazevault.test/issuing.crl"
OCSP_URL = "http://ocsp.mazevault.test/"
CA_ISSUERS_URL = "http://pki.mazevault.test/issuing.cer"
HOSTNAME = "api.example.test"

ExtT = TypeVar("ExtT", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, ext_type: type[ExtT]) -> x509.Extension[ExtT]:
    return cert.extensions.get_extension_for_class(ext_type)


def _leaf_profile(public_key: PublicKey, now: datetime, **overrides: Any) -> LeafProfile:
    profile = LeafProfile(
        subject=build_name({"common_name": HOSTNAME, "organization": "Example"}),
        public_key=public_key,
        sans=build_general_names({"dns_names": [HOSTNAME], "ip_addresses": ["192.0.2.1"]}),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=90),
        key_usage=("digitalSignature", "keyEncipherment"),
        extended_key_usage=("serverAuth", "clientAuth"),
        crl_urls=(CRL_URL,),
        ocsp_urls=(OCSP_URL,),
        ca_issuers_urls=(CA_ISSUERS_URL,),
    )
    return replace(profile, **overrides)


@pytest.fixture(scope="module")
def leaf_key() -> PrivateKey:
    return generate_private_key("ec-p256")


@pytest.fixture(scope="module")
def leaf(inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime) -> x509.Certificate:
    return sign_leaf(_leaf_profile(leaf_key.public_key(), now), issuer_cert=inter_cert, issuer_key=inter_key)


# --- serials ---------------------------------------------------------------


def test_random_serial_properties() -> None:
    draws = [random_serial() for _ in range(1000)]
    assert len(set(draws)) == 1000
    for serial in draws:
        assert 0 < serial < 2**159
        # DER INTEGER content octets (sign bit included) must be <= 20.
        assert (serial.bit_length() + 8) // 8 <= 20
    assert max(draws).bit_length() >= 150


def test_explicit_serial_validation(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    cert = sign_leaf(
        _leaf_profile(leaf_key.public_key(), now, serial=12345),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    assert cert.serial_number == 12345
    for bad in (0, -1, 2**159):
        with pytest.raises(PKIError) as excinfo:
            sign_leaf(
                _leaf_profile(leaf_key.public_key(), now, serial=bad),
                issuer_cert=inter_cert,
                issuer_key=inter_key,
            )
        assert excinfo.value.field == "serial"


# --- CA certificates -------------------------------------------------------


def test_root_is_self_signed(root_cert: x509.Certificate) -> None:
    root = root_cert
    assert root.issuer == root.subject
    assert root.version == x509.Version.v3
    assert verify_issued_by(root, root)
    bc = _ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ku = _ext(root, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign and ku.value.digital_signature
    assert not ku.value.key_encipherment
    ski = _ext(root, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(root.public_key())
    aki = _ext(root, x509.AuthorityKeyIdentifier)
    assert aki.value.key_identifier == ski.value.digest
    for absent in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            _ext(root, absent)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)


def test_root_ignores_distribution_urls(generated_keys: dict[str, PrivateKey], now: datetime) -> None:
    key = generated_keys["ec-p256"]
    root = sign_ca(
        CAProfile(
            subject=build_name({"common_name": "Root with URLs"}),
            public_key=key.public_key(),
            not_before=now,
            not_after=now + timedelta(days=10),
            crl_urls=(CRL_URL,),
            ocsp_urls=(OCSP_URL,),
        ),
        issuer_cert=None,
        issuer_key=key,
    )
    assert _ext(root, x509.BasicConstraints).value.path_length is None
    with pytest.raises(x509.ExtensionNotFound):
        _ext(root, x509.CRLDistributionPoints)


def test_intermediate_links_to_root(root_cert: x509.Certificate, inter_cert: x509.Certificate) -> None:
    root, inter = root_cert, inter_cert
    assert inter.issuer == root.subject
    assert verify_issued_by(inter, root)
    assert not verify_issued_by(root, inter)
    assert _ext(inter, x509.BasicConstraints).value.path_length == 0
    assert (
        _ext(inter, x509.AuthorityKeyIdentifier).value.key_identifier
        == _ext(root, x509.SubjectKeyIdentifier).value.digest
    )
    cdp = _ext(inter, x509.CRLDistributionPoints)
    assert not cdp.critical
    assert [name.value for name in cdp.value[0].full_name] == ["http://crl.mazevault.test/root.crl"]
    aia = _ext(inter, x509.AuthorityInformationAccess)
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, "http://pki.mazevault.test/root.cer")
    ]
    # The root is signed with RSA-4096 -> SHA-256 regardless of the subject key.
    assert isinstance(inter.signature_hash_algorithm, hashes.SHA256)


def test_intermediate_not_after_is_clipped(root_key: PrivateKey, root_cert: x509.Certificate, now: datetime) -> None:
    key = generate_private_key("ec-p256")
    cert = sign_ca(
        CAProfile(
            subject=build_name({"common_name": "Long-lived sub CA"}),
            public_key=key.public_key(),
            not_before=now,
            not_after=now + timedelta(days=365 * 30),
            path_length=0,
        ),
        issuer_cert=root_cert,
        issuer_key=root_key,
    )
    assert cert.not_valid_after_utc == root_cert.not_valid_after_utc


@pytest.mark.parametrize("path_length", [None, 0, 1])
def test_intermediate_path_length_must_decrease(
    root_key: PrivateKey,
    root_cert: x509.Certificate,
    inter_key: PrivateKey,
    inter_cert: x509.Certificate,
    now: datetime,
    path_length: int | None,
) -> None:
    key = generate_private_key("ec-p256")
    profile = CAProfile(
        subject=build_name({"common_name": "Sub CA"}),
        public_key=key.public_key(),
        not_before=now,
        not_after=now + timedelta(days=30),
        path_length=path_length,
    )
    # The intermediate has pathLen 0: it may not issue any CA certificate.
    with pytest.raises(PKIError) as excinfo:
        sign_ca(profile, issuer_cert=inter_cert, issuer_key=inter_key)
    assert (excinfo.value.code, excinfo.value.field) == ("VALIDATION_ERROR", "path_length")
    # The root has pathLen 1: only 0 is acceptable.
    if path_length == 0:
        assert sign_ca(profile, issuer_cert=root_cert, issuer_key=root_key)
    else:
        with pytest.raises(PKIError) as excinfo:
            sign_ca(profile, issuer_cert=root_cert, issuer_key=root_key)
        assert excinfo.value.field == "path_length"


def test_ca_requires_subject_and_matching_key(inter_key: PrivateKey, now: datetime) -> None:
    key = generate_private_key("ec-p256")
    profile = CAProfile(
        subject=build_name({}), public_key=key.public_key(), not_before=now, not_after=now + timedelta(days=1)
    )
    with pytest.raises(PKIError) as excinfo:
        sign_ca(profile, issuer_cert=None, issuer_key=key)
    assert excinfo.value.field == "subject"
    named = replace(profile, subject=build_name({"common_name": "x"}))
    with pytest.raises(PKIError) as excinfo:
        sign_ca(named, issuer_cert=None, issuer_key=inter_key)
    assert excinfo.value.field == "issuer_key"
    with pytest.raises(PKIError) as excinfo:
        sign_ca(replace(named, path_length=-1), issuer_cert=None, issuer_key=key)
    assert excinfo.value.field == "path_length"


# --- leaf certificates -----------------------------------------------------


def test_leaf_extensions(
    root_cert: x509.Certificate, inter_cert: x509.Certificate, leaf: x509.Certificate, leaf_key: PrivateKey
) -> None:
    inter = inter_cert
    assert leaf.issuer == inter.subject
    assert verify_issued_by(leaf, inter)
    assert not verify_issued_by(leaf, root_cert)
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384)  # issuer is P-384
    bc = _ext(leaf, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = _ext(leaf, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    # keyEncipherment is dropped for an ECDSA subject key (RFC 8813).
    assert not ku.value.key_encipherment
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = _ext(leaf, x509.SubjectAlternativeName)
    assert not san.critical
    assert certificate_sans(leaf)["dns_names"] == [HOSTNAME]
    assert certificate_sans(leaf)["ip_addresses"] == ["192.0.2.1"]
    ski = _ext(leaf, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key())
    aki = _ext(leaf, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == _ext(inter, x509.SubjectKeyIdentifier).value.digest
    cdp = _ext(leaf, x509.CRLDistributionPoints)
    assert [name.value for point in cdp.value for name in point.full_name] == [CRL_URL]
    aia = _ext(leaf, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.OCSP, OCSP_URL),
        (AuthorityInformationAccessOID.CA_ISSUERS, CA_ISSUERS_URL),
    ]


def test_leaf_validity_taken_as_given(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    profile = _leaf_profile(leaf_key.public_key(), now)
    cert = sign_leaf(profile, issuer_cert=inter_cert, issuer_key=inter_key)
    assert cert.not_valid_before_utc == profile.not_before
    assert cert.not_valid_after_utc == profile.not_after
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(
            replace(profile, not_after=profile.not_before),
            issuer_cert=inter_cert,
            issuer_key=inter_key,
        )
    assert excinfo.value.field == "not_after"


def test_rsa_leaf_keeps_key_encipherment(
    inter_key: PrivateKey, inter_cert: x509.Certificate, generated_keys: dict[str, PrivateKey], now: datetime
) -> None:
    cert = sign_leaf(
        _leaf_profile(generated_keys["rsa-2048"].public_key(), now),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment


def test_ed25519_leaf_key_usage(
    inter_key: PrivateKey, inter_cert: x509.Certificate, generated_keys: dict[str, PrivateKey], now: datetime
) -> None:
    cert = sign_leaf(
        _leaf_profile(
            generated_keys["ed25519"].public_key(),
            now,
            key_usage=("digitalSignature", "keyEncipherment", "dataEncipherment", "keyAgreement"),
        ),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature
    assert not (ku.key_encipherment or ku.data_encipherment or ku.key_agreement)
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(
            _leaf_profile(generated_keys["ed25519"].public_key(), now, key_usage=("keyEncipherment",)),
            issuer_cert=inter_cert,
            issuer_key=inter_key,
        )
    assert excinfo.value.field == "key_usage"


def test_leaf_rejects_key_cert_sign(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(
            _leaf_profile(leaf_key.public_key(), now, key_usage=("digitalSignature", "keyCertSign")),
            issuer_cert=inter_cert,
            issuer_key=inter_key,
        )
    assert (excinfo.value.code, excinfo.value.field) == ("VALIDATION_ERROR", "key_usage")


def test_leaf_with_empty_subject_has_critical_san(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    cert = sign_leaf(
        _leaf_profile(
            leaf_key.public_key(),
            now,
            subject=build_name({}),
            sans=build_general_names({"email_addresses": ["alice@example.test"]}),
            extended_key_usage=("emailProtection",),
        ),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    assert len(cert.subject) == 0
    assert _ext(cert, x509.SubjectAlternativeName).critical
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(
            _leaf_profile(leaf_key.public_key(), now, subject=build_name({}), sans=[]),
            issuer_cert=inter_cert,
            issuer_key=inter_key,
        )
    assert excinfo.value.field == "subject"


def test_leaf_optional_extensions_absent(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    cert = sign_leaf(
        _leaf_profile(
            leaf_key.public_key(), now, sans=[], extended_key_usage=(), crl_urls=(), ocsp_urls=(), ca_issuers_urls=()
        ),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    for absent in (
        x509.SubjectAlternativeName,
        x509.ExtendedKeyUsage,
        x509.CRLDistributionPoints,
        x509.AuthorityInformationAccess,
    ):
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, absent)


def test_leaf_rejects_bad_issuer(
    root_key: PrivateKey, inter_cert: x509.Certificate, leaf: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    profile = _leaf_profile(leaf_key.public_key(), now)
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(profile, issuer_cert=inter_cert, issuer_key=root_key)
    assert excinfo.value.field == "issuer_key"
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(profile, issuer_cert=leaf, issuer_key=leaf_key)
    assert excinfo.value.field == "issuer_cert"


def test_leaf_rejects_bad_urls(
    inter_key: PrivateKey, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(
            _leaf_profile(leaf_key.public_key(), now, ocsp_urls=("ocsp.example.test",)),
            issuer_cert=inter_cert,
            issuer_key=inter_key,
        )
    assert (excinfo.value.code, excinfo.value.field) == ("VALIDATION_ERROR", "ocsp_urls[0]")


def test_unsupported_subject_key(inter_key: PrivateKey, inter_cert: x509.Certificate, now: datetime) -> None:
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(PKIError) as excinfo:
        sign_leaf(_leaf_profile(k1.public_key(), now), issuer_cert=inter_cert, issuer_key=inter_key)
    assert excinfo.value.code == "UNSUPPORTED_KEY"


def test_verify_issued_by_detects_forgery(inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime) -> None:
    impostor_key = generate_private_key("ec-p384")
    impostor = sign_ca(
        CAProfile(
            subject=inter_cert.subject,
            public_key=impostor_key.public_key(),
            not_before=now,
            not_after=now + timedelta(days=1),
        ),
        issuer_cert=None,
        issuer_key=impostor_key,
    )
    forged = sign_leaf(_leaf_profile(leaf_key.public_key(), now), issuer_cert=impostor, issuer_key=impostor_key)
    assert forged.issuer == inter_cert.subject
    assert not verify_issued_by(forged, inter_cert)
    assert verify_issued_by(forged, impostor)


# --- external verification -------------------------------------------------


def _openssl_verify(
    tmp_path: Path, root: x509.Certificate, inter: x509.Certificate, leaf: x509.Certificate, *extra: str
) -> subprocess.CompletedProcess[str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not available")
    (tmp_path / "root.pem").write_text(cert_to_pem(root))
    (tmp_path / "inter.pem").write_text(cert_to_pem(inter))
    (tmp_path / "leaf.pem").write_text(cert_to_pem(leaf))
    return subprocess.run(
        [openssl, "verify", *extra, "-CAfile", "root.pem", "-untrusted", "inter.pem", "leaf.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("leaf_type", ["ec-p256", "rsa-2048", "ed25519"])
@pytest.mark.parametrize("strict", [False, True], ids=["default", "x509_strict"])
def test_openssl_verifies_chain(
    tmp_path: Path,
    root_cert: x509.Certificate,
    inter_key: PrivateKey,
    inter_cert: x509.Certificate,
    generated_keys: dict[str, PrivateKey],
    now: datetime,
    leaf_type: str,
    strict: bool,
) -> None:
    leaf = sign_leaf(
        _leaf_profile(generated_keys[leaf_type].public_key(), now),
        issuer_cert=inter_cert,
        issuer_key=inter_key,
    )
    extra = ("-x509_strict", "-purpose", "sslserver", "-verify_hostname", HOSTNAME) if strict else ()
    result = _openssl_verify(tmp_path, root_cert, inter_cert, leaf, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "leaf.pem: OK"


def test_openssl_rejects_leaf_from_other_ca(
    tmp_path: Path, root_cert: x509.Certificate, inter_cert: x509.Certificate, leaf_key: PrivateKey, now: datetime
) -> None:
    other_key = ed25519.Ed25519PrivateKey.generate()
    other = sign_ca(
        CAProfile(
            subject=inter_cert.subject,
            public_key=other_key.public_key(),
            not_before=now,
            not_after=now + timedelta(days=1),
        ),
        issuer_cert=None,
        issuer_key=other_key,
    )
    forged = sign_leaf(_leaf_profile(leaf_key.public_key(), now), issuer_cert=other, issuer_key=other_key)
    result = _openssl_verify(tmp_path, root_cert, inter_cert, forged)
    assert result.returncode != 0


def test_cryptography_server_verifier(
    root_cert: x509.Certificate, inter_cert: x509.Certificate, leaf: x509.Certificate, now: datetime
) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([root_cert]))
        .time(now + timedelta(minutes=1))
        .build_server_verifier(x509.DNSName(HOSTNAME))
    )
    chain = verifier.verify(leaf, [inter_cert])
    assert chain == [leaf, inter_cert, root_cert]

    wrong_host = (
        PolicyBuilder()
        .store(Store([root_cert]))
        .time(now + timedelta(minutes=1))
        .build_server_verifier(x509.DNSName("other.example.test"))
    )
    with pytest.raises(VerificationError):
        wrong_host.verify(leaf, [inter_cert])
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [])
