"""Certificate revocation lists (RFC 5280 section 5), built for very large CAs.

A CRL is a signed ``TBSCertList`` whose bulk is the ``revokedCertificates`` SEQUENCE OF entries.
Each entry's DER is encoded once, when the certificate is revoked (``encode_entry``), and stored;
a CRL is then assembled by concatenating the stored entries (``build_crl``): the DER encoder
(asn1crypto) writes the envelope around the concatenation without decoding or re-encoding a single
entry, and the TBS is signed once. Time and memory are linear in the number of entries.

Invariants of every CRL produced here:

* version 2 (``v2``), because every CRL carries extensions (RFC 5280 5.1.2.1);
* the ``signature`` algorithm inside the TBS equals the outer ``signatureAlgorithm`` (5.1.1.2);
* thisUpdate/nextUpdate and revocation dates are UTCTime through 2049 and GeneralizedTime from
  2050 on, in whole seconds (5.1.2.4-5.1.2.6);
* ``revokedCertificates`` is absent, not empty, when nothing is revoked (5.1.2.6);
* extensions: Authority Key Identifier (the issuer's SKI, 5.2.1), CRL Number (5.2.3), and as asked
  Delta CRL Indicator (critical, 5.2.4), Issuing Distribution Point (critical, 5.2.5) and Freshest
  CRL (non-critical, 5.2.6);
* an entry with reason ``unspecified`` carries no reasonCode (5.3.1: "the reason code CRL entry
  extension SHOULD be absent instead of using the unspecified (0) reasonCode value").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from asn1crypto import algos as a_algos
from asn1crypto import core as a_core
from asn1crypto import crl as a_crl
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import PKIError
from .keys import PrivateKey, signature_hash_for

__all__ = ["REMOVE_FROM_CRL", "CRLSpec", "build_crl", "encode_entry", "der_time"]

REMOVE_FROM_CRL = 8  # RFC 5280 5.3.1 CRLReason removeFromCRL: a delta CRL's "no longer on hold"
_VALID_REASONS = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})
_UTC_TIME_LIMIT = datetime(2050, 1, 1, tzinfo=timezone.utc)
_HASH_NAMES = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def _whole_seconds(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise PKIError("CRL times must be timezone-aware", code="VALIDATION_ERROR", field="time")
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def der_time(moment: datetime) -> a_x509.Time:
    """RFC 5280 5.1.2.4: "CRL issuers MUST encode thisUpdate as UTCTime for dates through the year
    2049. CRL issuers MUST encode thisUpdate as GeneralizedTime for dates in the year 2050 or later."
    """
    moment = _whole_seconds(moment)
    if moment < _UTC_TIME_LIMIT:
        return a_x509.Time({"utc_time": moment})
    return a_x509.Time({"general_time": moment})


@functools.lru_cache(maxsize=16)
def _reason_extension(reason: int) -> bytes:
    return a_crl.CRLEntryExtension({"extn_id": "crl_reason", "critical": False,
                                    "extn_value": a_crl.CRLReason(reason)}).dump()


def encode_entry(serial: int, revoked_at: datetime, reason: int | None = None,
                 invalidity_date: datetime | None = None) -> bytes:
    """The DER of one ``revokedCertificates`` element (RFC 5280 5.1.2.6, entry extensions 5.3):
    ``SEQUENCE { userCertificate INTEGER, revocationDate Time, crlEntryExtensions OPTIONAL }``.

    ``reason`` is a CRLReason code; 0 (unspecified) and None both omit the reasonCode extension.
    The invalidity date is a GeneralizedTime (5.3.2), in whole seconds. The fields are encoded by
    asn1crypto and framed by its SEQUENCE encoder (the reason extension is encoded once per code):
    the same bytes as ``a_crl.RevokedCertificate({...}).dump()``, several times faster.
    """
    if isinstance(serial, bool) or not isinstance(serial, int) or serial <= 0:
        raise PKIError("A revoked serial number must be a positive integer", code="VALIDATION_ERROR",
                       field="serial")
    extensions = b""
    if reason not in (None, 0):
        if reason not in _VALID_REASONS:
            raise PKIError(f"Unknown CRL reason code {reason}", code="VALIDATION_ERROR", field="reason")
        extensions += _reason_extension(reason)
    if invalidity_date is not None:
        extensions += a_crl.CRLEntryExtension({"extn_id": "invalidity_date", "critical": False,
                                               "extn_value": _whole_seconds(invalidity_date)}).dump()
    parts = [a_core.Integer(serial).dump(), der_time(revoked_at).dump()]
    if extensions:
        parts.append(a_crl.CRLEntryExtensions(contents=extensions).dump())
    return a_core.Sequence(contents=b"".join(parts)).dump()


@dataclass(frozen=True)
class CRLSpec:
    """What goes around the entries. ``idp_*`` describe the Issuing Distribution Point; with none of
    them set the extension is left out (RFC 5280 5.2.5 forbids an empty one)."""

    issuer: x509.Certificate
    number: int
    this_update: datetime
    next_update: datetime
    delta_base: int | None = None  # set: a delta CRL whose base CRL has this number
    idp_urls: tuple[str, ...] = ()
    idp_only_ca_certs: bool = False
    idp_only_user_certs: bool = False
    freshest_urls: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _signature_algorithm(key: PrivateKey) -> tuple[a_algos.SignedDigestAlgorithm, hashes.HashAlgorithm]:
    digest = signature_hash_for(key)
    if digest is None or digest.name not in _HASH_NAMES:
        raise PKIError("CRLs are signed with RSA or ECDSA keys", code="UNSUPPORTED_KEY", field="issuer_key")
    if isinstance(key, rsa.RSAPrivateKey):
        return a_algos.SignedDigestAlgorithm({"algorithm": f"{digest.name}_rsa"}), digest
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return a_algos.SignedDigestAlgorithm({"algorithm": f"{digest.name}_ecdsa"}), digest
    raise PKIError("CRLs are signed with RSA or ECDSA keys", code="UNSUPPORTED_KEY", field="issuer_key")


def _sign(key: PrivateKey, data: bytes, digest: hashes.HashAlgorithm) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), digest)
    return key.sign(data, ec.ECDSA(digest))  # type: ignore[union-attr]


def _issuer_key_identifier(issuer: x509.Certificate) -> bytes:
    try:
        return issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest  # type: ignore[arg-type]


def _uris(urls: Iterable[str]) -> list[a_x509.GeneralName]:
    return [a_x509.GeneralName(name="uniform_resource_identifier", value=url) for url in urls]


def _extensions(spec: CRLSpec) -> list[dict]:
    extensions: list[dict] = [
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": _issuer_key_identifier(spec.issuer)}},
        {"extn_id": "crl_number", "critical": False, "extn_value": spec.number},
    ]
    if spec.delta_base is not None:
        # 5.2.4: "The delta CRL indicator is a critical CRL extension"; its value is the base's number.
        extensions.append({"extn_id": "delta_crl_indicator", "critical": True, "extn_value": spec.delta_base})
    idp: dict = {}
    if spec.idp_urls:
        idp["distribution_point"] = {"full_name": _uris(spec.idp_urls)}
    if spec.idp_only_ca_certs:
        idp["only_contains_ca_certs"] = True
    if spec.idp_only_user_certs:
        idp["only_contains_user_certs"] = True
    if idp:
        # 5.2.5: "Although the extension is critical, conforming implementations are not required to
        # support this extension."
        extensions.append({"extn_id": "issuing_distribution_point", "critical": True, "extn_value": idp})
    if spec.freshest_urls and spec.delta_base is None:
        # 5.2.6: Freshest CRL "MUST be marked as non-critical"; it "MUST NOT appear in delta CRLs".
        extensions.append({"extn_id": "freshest_crl", "critical": False,
                           "extn_value": [{"distribution_point": {"full_name": _uris(spec.freshest_urls)}}]})
    return extensions


def build_crl(spec: CRLSpec, entries_der: bytes, issuer_key: PrivateKey) -> bytes:
    """Sign a CRL whose revokedCertificates are ``entries_der``: the concatenated DER of entries from
    ``encode_entry`` (empty bytes: no entries). Returns the DER ``CertificateList``.

    The entries are framed, never parsed: the result's size and build time are linear in their length.
    """
    if spec.number < 0 or (spec.delta_base is not None and not 0 <= spec.delta_base < spec.number):
        raise PKIError("CRL numbers are non-negative and a delta's base is older", code="VALIDATION_ERROR",
                       field="number")
    this_update, next_update = _whole_seconds(spec.this_update), _whole_seconds(spec.next_update)
    if next_update <= this_update:
        raise PKIError("nextUpdate must be later than thisUpdate", code="VALIDATION_ERROR", field="next_update")
    algorithm, digest = _signature_algorithm(issuer_key)
    tbs_fields: dict = {
        "version": "v2",
        "signature": algorithm,
        "issuer": a_x509.Name.load(spec.issuer.subject.public_bytes()),
        "this_update": der_time(this_update),
        "next_update": der_time(next_update),
        "crl_extensions": _extensions(spec),
    }
    if entries_der:
        tbs_fields["revoked_certificates"] = a_crl.RevokedCertificates(contents=bytes(entries_der))
    tbs_der = a_crl.TbsCertList(tbs_fields).dump()
    signature = _sign(issuer_key, tbs_der, digest)
    # The TBS goes in as its DER (parsed lazily, so it is framed, not re-encoded).
    certificate_list = a_crl.CertificateList({
        "tbs_cert_list": a_crl.TbsCertList.load(tbs_der),
        "signature_algorithm": algorithm,
        "signature": signature,
    })
    return certificate_list.dump()
