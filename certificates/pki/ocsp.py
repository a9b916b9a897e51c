"""OCSP (RFC 6960) wire format: parse requests, sign responses, build responder certificates.

Pure: ``cryptography`` and the standard library only, no Django, no storage. The service
(``crl/ocsp.py``) decides *what* to answer; this module decides *how it is encoded*.

Invariants:

* :func:`parse_request` either returns an :class:`OCSPQuery` whose fields are all usable (a
  supported CertID hash algorithm, a positive serial, a nonce of an allowed length or none) or
  raises :class:`PKIError`; it never lets a ``ValueError`` from the DER parser escape.
* Every response built here echoes the request's CertID exactly (same hash algorithm and hashes,
  same serial), as RFC 6960 section 4.2.2.3 requires a client to match them.
* Error responses (:func:`error_response`) carry no ``responseBytes`` and are never signed
  (RFC 6960 section 2.3: "Response messages of this type are not signed").
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .builder import random_serial
from .errors import PKIError
from .formats import utc
from .keys import PrivateKey, signature_hash_for

__all__ = [
    "CERT_ID_HASHES",
    "MAX_REQUEST_BYTES",
    "CertStatus",
    "OCSPQuery",
    "ResponseStatus",
    "error_response",
    "issuer_hashes",
    "parse_request",
    "responder_certificate",
    "sign_response",
]

# An OCSPRequest for one certificate is ~100 bytes (with a nonce and a signature far below 4 KiB);
# anything bigger is refused unparsed, so a client cannot make us parse large DER for free.
MAX_REQUEST_BYTES = 8 * 1024

# CertID hash algorithms we can match (RFC 6960 section 4.1.1 CertID.hashAlgorithm). SHA-1 is what
# RFC 5019 clients and ``openssl ocsp`` send by default; the SHA-2 family is what newer clients
# send. The name is cryptography's ``HashAlgorithm.name``.
CERT_ID_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

# RFC 8954 section 2.1: "If the Nonce extension is present, then the length of the nonce MUST be
# at least 1 octet and can be up to 32 octets. A server MUST reject any OCSP request that has a
# nonce in the Nonce extension with a length of either 0 octets or more than 32 octets with the
# malformedRequest OCSPResponseStatus".
MIN_NONCE_BYTES = 1
MAX_NONCE_BYTES = 32

# RFC 5280 section 5.3.1 CRLReason codes (the values RevocationReason stores) -> cryptography's flags.
_REASONS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
}


class ResponseStatus(Enum):
    """RFC 6960 section 4.2.1 OCSPResponseStatus values other than successful."""

    MALFORMED_REQUEST = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    INTERNAL_ERROR = ocsp.OCSPResponseStatus.INTERNAL_ERROR
    TRY_LATER = ocsp.OCSPResponseStatus.TRY_LATER
    UNAUTHORIZED = ocsp.OCSPResponseStatus.UNAUTHORIZED


class CertStatus(Enum):
    """RFC 6960 section 2.2 certificate status values."""

    GOOD = ocsp.OCSPCertStatus.GOOD
    REVOKED = ocsp.OCSPCertStatus.REVOKED
    UNKNOWN = ocsp.OCSPCertStatus.UNKNOWN


@dataclass(frozen=True)
class OCSPQuery:
    """One parsed single-certificate request: the CertID and the nonce (None: no nonce).

    Invariant: ``hash_algorithm`` is a key of :data:`CERT_ID_HASHES`, ``serial_number`` > 0 and
    ``nonce`` is None or 1-32 octets.
    """

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int
    nonce: bytes | None


def _malformed(message: str) -> PKIError:
    return PKIError(message, code="INVALID_FORMAT", field="ocsp_request")


def parse_request(der: bytes) -> OCSPQuery:
    """Parse a DER OCSPRequest (RFC 6960 section 4.1.1) for exactly one certificate.

    Raises ``INVALID_FORMAT`` for anything that is not such a request (empty, truncated, garbage,
    trailing data, more than one Request, a serial that is not positive, an unacceptable nonce)
    and ``UNSUPPORTED_ALGORITHM`` for a CertID hash algorithm outside :data:`CERT_ID_HASHES`.
    More than one Request per OCSPRequest is refused as RFC 5019 section 2.1.1 profiles it:
    "clients MUST include only one Request in the OCSPRequest.requestList structure".
    """
    if not isinstance(der, bytes | bytearray | memoryview):
        raise _malformed("The OCSP request must be bytes")
    der = bytes(der)
    if not der:
        raise _malformed("The OCSP request is empty")
    if len(der) > MAX_REQUEST_BYTES:
        raise _malformed(f"The OCSP request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = ocsp.load_der_ocsp_request(der)
        serial = request.serial_number
        name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
        extensions = request.extensions
    except UnsupportedAlgorithm:
        raise _malformed("The OCSP request uses an unsupported algorithm") from None
    except (ValueError, TypeError, NotImplementedError):
        # cryptography raises NotImplementedError for a requestList of more than one Request.
        raise _malformed("The OCSP request is not a valid DER OCSPRequest for one certificate") from None
    try:
        algorithm = request.hash_algorithm
    except UnsupportedAlgorithm:
        raise PKIError("The CertID hash algorithm is not supported", code="UNSUPPORTED_ALGORITHM",
                       field="ocsp_request", details={"supported": sorted(CERT_ID_HASHES)}) from None
    if algorithm.name not in CERT_ID_HASHES:
        raise PKIError(f"The CertID hash algorithm {algorithm.name} is not supported", code="UNSUPPORTED_ALGORITHM",
                       field="ocsp_request", details={"supported": sorted(CERT_ID_HASHES)})
    if len(name_hash) != algorithm.digest_size or len(key_hash) != algorithm.digest_size:
        raise _malformed("The CertID hashes do not have the length of their algorithm")
    if serial <= 0:
        # RFC 5280 section 4.1.2.2: "The serial number MUST be a positive integer"; such a CertID
        # identifies no certificate, and cryptography cannot even encode an answer for it.
        raise _malformed("The CertID serial number is not positive")
    nonce: bytes | None = None
    try:
        nonce_ext = extensions.get_extension_for_class(x509.OCSPNonce)
    except x509.ExtensionNotFound:
        nonce_ext = None
    if nonce_ext is not None:
        nonce = nonce_ext.value.nonce
        if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
            raise _malformed(f"The nonce must be {MIN_NONCE_BYTES}-{MAX_NONCE_BYTES} octets (RFC 8954)")
    for ext in extensions:
        # RFC 6960 section 4.4: a critical extension we do not understand cannot be ignored.
        if ext.critical and not isinstance(ext.value, x509.OCSPNonce):
            raise _malformed("The OCSP request carries an unsupported critical extension")
    return OCSPQuery(hash_algorithm=algorithm.name, issuer_name_hash=name_hash, issuer_key_hash=key_hash,
                     serial_number=serial, nonce=nonce)


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (without tag, length and the unused-bits octet)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    bits = asn1_keys.PublicKeyInfo.load(spki)["public_key"]
    return bits.contents[1:]  # contents[0] is the number of unused bits, always 0 for keys


def issuer_hashes(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer`` under ``algorithm`` (a key of CERT_ID_HASHES).

    RFC 6960 section 4.1.1: "issuerNameHash is the hash of the issuer's distinguished name (DN).
    The hash shall be calculated over the DER encoding of the issuer's name field in the
    certificate being checked. issuerKeyHash is the hash of the issuer's public key. The hash
    shall be calculated over the value (excluding tag and length) of the subject public key field
    in the issuer's certificate." The issuer's name in the certificate being checked is the
    issuer certificate's subject, byte for byte (our builder copies it).
    """
    if algorithm not in CERT_ID_HASHES:
        raise PKIError(f"Unsupported CertID hash algorithm {algorithm}", code="UNSUPPORTED_ALGORITHM",
                       field="hash_algorithm", details={"supported": sorted(CERT_ID_HASHES)})
    name_der = issuer.subject.public_bytes()
    key_bits = _public_key_bits(issuer)
    return hashlib.new(algorithm, name_der).digest(), hashlib.new(algorithm, key_bits).digest()


def error_response(status: ResponseStatus) -> bytes:
    """The DER of an unsigned OCSPResponse with ``status`` and no responseBytes."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status.value).public_bytes(serialization.Encoding.DER)


def sign_response(query: OCSPQuery, *, status: CertStatus, this_update: datetime, next_update: datetime,
                  signer_cert: x509.Certificate, signer_key: PrivateKey,
                  include_signer: bool, revocation_time: datetime | None = None,
                  revocation_reason: int | None = None, nonce: bytes | None = None) -> bytes:
    """A signed BasicOCSPResponse for ``query`` (DER of the whole OCSPResponse).

    * the SingleResponse echoes the query's CertID (algorithm, both hashes, serial);
    * ``revoked`` carries revocationTime and, unless the reason is unspecified (0), the
      revocationReason; RFC 5280 section 5.3.1 says of CRL entries "the reason code
      unspecified (0) SHOULD be absent" and RFC 6960 section 4.2.1 reuses CRLReason, so we
      treat both alike;
    * the ResponderID is byKey (RFC 6960 section 4.2.2.3: the SHA-1 hash of the responder's
      public key), which keeps responses small;
    * ``include_signer`` puts ``signer_cert`` into ``certs`` — required for a delegated responder,
      whose certificate the client cannot otherwise know (RFC 6960 section 4.2.2.2);
    * ``nonce`` (the request's) is echoed as a response extension (RFC 6960 section 4.4.1).

    Raises ``VALIDATION_ERROR`` for an inconsistent call (revoked without a time, times out of
    order).
    """
    this_update, next_update = utc(this_update), utc(next_update)
    if next_update <= this_update:
        raise PKIError("nextUpdate must be later than thisUpdate", code="VALIDATION_ERROR", field="next_update")
    reason_flag: x509.ReasonFlags | None = None
    time: datetime | None = None
    if status is CertStatus.REVOKED:
        if revocation_time is None:
            raise PKIError("A revoked status needs a revocation time", code="VALIDATION_ERROR",
                           field="revocation_time")
        time = utc(revocation_time)
        if revocation_reason is not None and revocation_reason != 0:
            if revocation_reason not in _REASONS:
                raise PKIError(f"Unknown revocation reason {revocation_reason}", code="VALIDATION_ERROR",
                               field="revocation_reason")
            reason_flag = _REASONS[revocation_reason]
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=query.issuer_name_hash, issuer_key_hash=query.issuer_key_hash,
        serial_number=query.serial_number, algorithm=CERT_ID_HASHES[query.hash_algorithm](),
        cert_status=status.value, this_update=this_update, next_update=next_update,
        revocation_time=time, revocation_reason=reason_flag,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
    if include_signer:
        builder = builder.certificates([signer_cert])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    algorithm = signature_hash_for(signer_key)
    return builder.sign(signer_key, algorithm).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


def responder_certificate(*, issuer_cert: x509.Certificate, issuer_key: PrivateKey,
                          responder_public_key: object, not_before: datetime,
                          lifetime: timedelta) -> x509.Certificate:
    """A delegated OCSP signing certificate for ``issuer_cert`` (RFC 6960 section 4.2.2.2).

    * issued directly by the CA whose certificates it answers for: "the responder's certificate
      MUST be issued directly by the CA that is identified in the request";
    * extendedKeyUsage id-kp-OCSPSigning: "by the inclusion of a value of id-kp-OCSPSigning ...
      in an extended key usage extension in the OCSP responder's certificate";
    * id-pkix-ocsp-nocheck (section 4.2.2.2.1): a client need not check this certificate's own
      revocation status, so "CAs issuing such a certificate should realize that a compromise of
      the responder's key is as serious as the compromise of a CA key ... SHOULD issue this type
      of certificate with a short lifetime and renew it frequently" - hence ``lifetime`` is the
      caller's short period, clipped to the issuer's notAfter;
    * basicConstraints cA=FALSE and keyUsage digitalSignature (both critical), SKI, and AKI = the
      issuer's SKI; no CRL distribution point or AIA, which nocheck makes pointless.
    """
    start = utc(not_before)
    end = min(start + lifetime, issuer_cert.not_valid_after_utc)
    if end <= start:
        raise PKIError("The issuing CA expires before the responder certificate could be valid",
                       code="VALIDATION_ERROR", field="not_after")
    cn = issuer_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(cn[0].value) if cn else "CA"
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, f"{base} OCSP Responder"[:64])]
    org = issuer_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if org:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org[0].value)))
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(issuer_cert.subject)
        .public_key(responder_public_key)  # type: ignore[arg-type]
        .serial_number(random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(responder_public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(aki, critical=False)
    )
    return builder.sign(issuer_key, signature_hash_for(issuer_key))  # type: ignore[arg-type]
