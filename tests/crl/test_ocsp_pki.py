"""certificates/pki/ocsp.py: request parsing, CertID hashes, signed and error responses, responder
certificates - pure, checked against cryptography's own OCSP parser and builder."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import algos as asn1_algos, core as asn1_core, ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certificates.pki import ocsp as pki_ocsp
from certificates.pki.builder import CAProfile, LeafProfile, sign_ca, sign_leaf
from certificates.pki.errors import PKIError
from certificates.pki.keys import generate_private_key
from certificates.pki.names import build_name

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def hierarchy():
    """A P-256 CA and an RSA-2048 CA, each with one leaf."""
    out = {}
    for key_type in ("ec-p256", "rsa-2048"):
        ca_key = generate_private_key(key_type)
        ca = sign_ca(CAProfile(subject=build_name({"common_name": f"Test {key_type} CA", "organization": "Acme"}),
                               public_key=ca_key.public_key(), not_before=NOW - timedelta(days=1),
                               not_after=NOW + timedelta(days=30), path_length=0),
                     issuer_cert=None, issuer_key=ca_key)
        leaf_key = generate_private_key("ec-p256")
        leaf = sign_leaf(LeafProfile(subject=build_name({"common_name": "leaf"}), public_key=leaf_key.public_key(),
                                     sans=[], not_before=NOW - timedelta(hours=1), not_after=NOW + timedelta(days=3),
                                     key_usage=("digitalSignature",), extended_key_usage=("clientAuth",)),
                         issuer_cert=ca, issuer_key=ca_key)
        out[key_type] = (ca_key, ca, leaf)
    return out


def _request(leaf, ca, algorithm=None, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _raw_request(requests: list[tuple[str, bytes, bytes, int]], extensions=None) -> bytes:
    """An OCSPRequest encoded by asn1crypto, for shapes cryptography's builder refuses to make."""
    request_list = [{"req_cert": {"hash_algorithm": {"algorithm": alg}, "issuer_name_hash": name_hash,
                                  "issuer_key_hash": key_hash, "serial_number": serial}}
                    for alg, name_hash, key_hash, serial in requests]
    tbs = {"request_list": request_list}
    if extensions:
        tbs["request_extensions"] = extensions
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_parse_request_and_issuer_hashes_match_cryptography(hierarchy, algorithm, key_type):
    _, ca, leaf = hierarchy[key_type]
    nonce = os.urandom(16)
    der = _request(leaf, ca, algorithm, nonce)
    query = pki_ocsp.parse_request(der)
    reference = ocsp.load_der_ocsp_request(der)
    assert query.hash_algorithm == algorithm.name
    assert query.serial_number == leaf.serial_number
    assert query.nonce == nonce
    assert (query.issuer_name_hash, query.issuer_key_hash) == (reference.issuer_name_hash, reference.issuer_key_hash)
    # Our own computation of the CA's hashes finds the same CertID (how the service looks CAs up).
    assert pki_ocsp.issuer_hashes(ca, algorithm.name) == (query.issuer_name_hash, query.issuer_key_hash)


def test_request_without_nonce(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    assert pki_ocsp.parse_request(_request(leaf, ca)).nonce is None


@pytest.mark.parametrize("der", [b"", b"\x30", b"\x30\x03\x02\x01", os.urandom(64), b"not DER at all"])
def test_garbage_is_invalid_format(der):
    with pytest.raises(PKIError) as info:
        pki_ocsp.parse_request(der)
    assert info.value.code == "INVALID_FORMAT"


def test_truncated_and_trailing_data_are_invalid(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    der = _request(leaf, ca, nonce=os.urandom(16))
    for bad in (der[:-1], der[: len(der) // 2], der + b"\x00"):
        with pytest.raises(PKIError) as info:
            pki_ocsp.parse_request(bad)
        assert info.value.code == "INVALID_FORMAT"


def test_oversized_request_is_refused_unparsed():
    with pytest.raises(PKIError) as info:
        pki_ocsp.parse_request(b"\x30" + b"\x00" * pki_ocsp.MAX_REQUEST_BYTES)
    assert info.value.code == "INVALID_FORMAT"


def test_unsupported_hash_algorithm(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    der = _raw_request([("md5", b"\x01" * 16, b"\x02" * 16, leaf.serial_number)])
    with pytest.raises(PKIError) as info:
        pki_ocsp.parse_request(der)
    assert info.value.code == "UNSUPPORTED_ALGORITHM"


def test_hash_of_the_wrong_length_is_invalid(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    der = _raw_request([("sha256", b"\x01" * 20, b"\x02" * 20, leaf.serial_number)])
    with pytest.raises(PKIError):
        pki_ocsp.parse_request(der)


def test_several_requests_are_refused(hierarchy):
    """RFC 5019 section 2.1.1: one Request per OCSPRequest."""
    _, ca, leaf = hierarchy["ec-p256"]
    name_hash, key_hash = pki_ocsp.issuer_hashes(ca, "sha1")
    der = _raw_request([("sha1", name_hash, key_hash, leaf.serial_number), ("sha1", name_hash, key_hash, 5)])
    with pytest.raises(PKIError) as info:
        pki_ocsp.parse_request(der)
    assert info.value.code == "INVALID_FORMAT"


@pytest.mark.parametrize("serial", [0, -5])
def test_non_positive_serial_is_invalid(hierarchy, serial):
    _, ca, _ = hierarchy["ec-p256"]
    name_hash, key_hash = pki_ocsp.issuer_hashes(ca, "sha1")
    with pytest.raises(PKIError):
        pki_ocsp.parse_request(_raw_request([("sha1", name_hash, key_hash, serial)]))


@pytest.mark.parametrize("length", [0, 33, 64])
def test_nonce_length_outside_rfc8954_is_invalid(hierarchy, length):
    _, ca, leaf = hierarchy["ec-p256"]
    name_hash, key_hash = pki_ocsp.issuer_hashes(ca, "sha1")
    nonce_ext = {"extn_id": "nonce", "critical": False, "extn_value": asn1_core.OctetString(os.urandom(length))}
    der = _raw_request([("sha1", name_hash, key_hash, leaf.serial_number)], extensions=[nonce_ext])
    with pytest.raises(PKIError) as info:
        pki_ocsp.parse_request(der)
    assert info.value.code == "INVALID_FORMAT"


@pytest.mark.parametrize("length", [1, 16, 32])
def test_nonce_lengths_within_rfc8954_are_accepted(hierarchy, length):
    _, ca, leaf = hierarchy["ec-p256"]
    nonce = os.urandom(length)
    assert pki_ocsp.parse_request(_request(leaf, ca, nonce=nonce)).nonce == nonce


def test_unknown_critical_extension_is_refused(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    name_hash, key_hash = pki_ocsp.issuer_hashes(ca, "sha1")
    ext = {"extn_id": "preferred_signature_algorithms", "critical": True,
           "extn_value": [{"sig_identifier": {"algorithm": "sha256_ecdsa"}}]}
    with pytest.raises(PKIError):
        pki_ocsp.parse_request(_raw_request([("sha1", name_hash, key_hash, leaf.serial_number)], extensions=[ext]))


def test_error_responses_are_unsigned_with_their_status():
    for status in pki_ocsp.ResponseStatus:
        parsed = ocsp.load_der_ocsp_response(pki_ocsp.error_response(status))
        assert parsed.response_status == status.value
        with pytest.raises(ValueError):
            parsed.certificate_status  # noqa: B018 - no responseBytes to read


def _responder(hierarchy, key_type="ec-p256", lifetime=timedelta(days=7)):
    ca_key, ca, leaf = hierarchy[key_type]
    key = generate_private_key("ec-p256")
    cert = pki_ocsp.responder_certificate(issuer_cert=ca, issuer_key=ca_key, responder_public_key=key.public_key(),
                                          not_before=NOW - timedelta(minutes=5), lifetime=lifetime)
    return key, cert


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_responder_certificate_profile(hierarchy, key_type):
    _, ca, _ = hierarchy[key_type]
    key, cert = _responder(hierarchy, key_type)
    cert.verify_directly_issued_by(ca)
    assert cert.issuer == ca.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.OCSPNoCheck) is not None
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=7)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.endswith("OCSP Responder")


def test_responder_lifetime_is_clipped_to_the_ca(hierarchy):
    _, ca, _ = hierarchy["ec-p256"]
    _, cert = _responder(hierarchy, lifetime=timedelta(days=365))
    assert cert.not_valid_after_utc == ca.not_valid_after_utc


def _sign(hierarchy, query, **kwargs):
    key, cert = _responder(hierarchy)
    der = pki_ocsp.sign_response(query, this_update=NOW, next_update=NOW + timedelta(hours=12), signer_cert=cert,
                                 signer_key=key, include_signer=True, **kwargs)
    return ocsp.load_der_ocsp_response(der), cert


def _verify(parsed: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    signer.public_key().verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(parsed.signature_hash_algorithm))


def test_good_response_echoes_certid_and_nonce(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    nonce = os.urandom(16)
    query = pki_ocsp.parse_request(_request(leaf, ca, hashes.SHA256(), nonce))
    parsed, signer = _sign(hierarchy, query, status=pki_ocsp.CertStatus.GOOD, nonce=query.nonce)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == leaf.serial_number
    assert isinstance(parsed.hash_algorithm, hashes.SHA256)
    assert (parsed.issuer_name_hash, parsed.issuer_key_hash) == (query.issuer_name_hash, query.issuer_key_hash)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert parsed.certificates == [signer]
    assert parsed.responder_key_hash == signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert parsed.this_update_utc == NOW and parsed.next_update_utc == NOW + timedelta(hours=12)
    _verify(parsed, signer)


def test_revoked_response_carries_time_and_reason(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    query = pki_ocsp.parse_request(_request(leaf, ca))
    when = NOW - timedelta(hours=2)
    parsed, signer = _sign(hierarchy, query, status=pki_ocsp.CertStatus.REVOKED, revocation_time=when,
                           revocation_reason=1)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_time_utc == when
    assert parsed.revocation_reason == x509.ReasonFlags.key_compromise
    assert len(parsed.extensions) == 0  # no nonce asked, none given
    _verify(parsed, signer)


def test_unspecified_reason_is_omitted(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    query = pki_ocsp.parse_request(_request(leaf, ca))
    parsed, _ = _sign(hierarchy, query, status=pki_ocsp.CertStatus.REVOKED, revocation_time=NOW, revocation_reason=0)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is None


def test_unknown_response(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    query = pki_ocsp.parse_request(_request(leaf, ca))
    parsed, _ = _sign(hierarchy, query, status=pki_ocsp.CertStatus.UNKNOWN)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_sign_response_refuses_inconsistent_calls(hierarchy):
    _, ca, leaf = hierarchy["ec-p256"]
    query = pki_ocsp.parse_request(_request(leaf, ca))
    key, cert = _responder(hierarchy)
    with pytest.raises(PKIError):
        pki_ocsp.sign_response(query, status=pki_ocsp.CertStatus.REVOKED, this_update=NOW,
                               next_update=NOW + timedelta(hours=1), signer_cert=cert, signer_key=key,
                               include_signer=True)
    with pytest.raises(PKIError):
        pki_ocsp.sign_response(query, status=pki_ocsp.CertStatus.GOOD, this_update=NOW, next_update=NOW,
                               signer_cert=cert, signer_key=key, include_signer=True)
    with pytest.raises(PKIError):
        pki_ocsp.issuer_hashes(ca, "md5")


def test_asn1_helpers_are_what_we_think(hierarchy):
    """Guard for the test helper itself: a well-formed raw request parses like a built one."""
    _, ca, leaf = hierarchy["ec-p256"]
    name_hash, key_hash = pki_ocsp.issuer_hashes(ca, "sha256")
    query = pki_ocsp.parse_request(_raw_request([("sha256", name_hash, key_hash, leaf.serial_number)]))
    assert query.serial_number == leaf.serial_number and query.hash_algorithm == "sha256"
    assert asn1_algos.DigestAlgorithmId("sha256").dotted == "2.16.840.1.101.3.4.2.1"
