"""Certificate signing request parsing and construction.

Invariant: a CSR returned by :func:`load_csr` has been fully parsed, carries
a supported public key and a self-signature that verifies (proof of
possession of the private key, RFC 2986 section 3).  It is *not* checked
against key-strength policy; callers apply
:func:`certificates.pki.keys.check_key_strength` separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .errors import PKIError
from .keys import PrivateKey, describe_public_key, signature_hash_for
from .names import build_general_names, build_name

__all__ = ["MAX_CSR_BYTES", "build_csr", "csr_to_pem", "load_csr"]

MAX_CSR_BYTES = 64 * 1024
_FIELD = "csr_pem"


def _csr_bytes(data: str | bytes) -> bytes:
    if isinstance(data, str):
        if len(data) > MAX_CSR_BYTES:
            raise PKIError("CSR exceeds the 64 KiB size limit", code="INVALID_FORMAT", field=_FIELD)
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError:
            raise PKIError("CSR is not valid PEM", code="INVALID_FORMAT", field=_FIELD) from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise PKIError("CSR must be str or bytes", code="INVALID_FORMAT", field=_FIELD)
    if len(raw) > MAX_CSR_BYTES:
        raise PKIError("CSR exceeds the 64 KiB size limit", code="INVALID_FORMAT", field=_FIELD)
    if not raw.strip():
        raise PKIError("CSR is empty", code="INVALID_FORMAT", field=_FIELD)
    return raw


def load_csr(data: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM (str or bytes; CRLF and surrounding whitespace tolerated) or DER CSR.

    Errors, all with ``field="csr_pem"``: unparseable or > 64 KiB ->
    ``INVALID_FORMAT``; unsupported key type -> ``UNSUPPORTED_KEY``;
    signature does not verify -> ``INVALID_CSR``.
    """
    raw = _csr_bytes(data)
    try:
        if b"-----BEGIN" in raw:
            csr = x509.load_pem_x509_csr(raw.replace(b"\r\n", b"\n").strip() + b"\n")
        else:
            csr = x509.load_der_x509_csr(raw)
        # Force parsing of lazily-decoded parts so malformed content fails here.
        csr.subject  # noqa: B018
        csr.extensions  # noqa: B018
    except (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise PKIError("CSR is not valid PEM or DER", code="INVALID_FORMAT", field=_FIELD) from None

    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise PKIError("CSR public key type is not supported", code="UNSUPPORTED_KEY", field=_FIELD) from None
    try:
        describe_public_key(public_key)
    except PKIError as exc:
        raise PKIError(exc.message, code="UNSUPPORTED_KEY", field=_FIELD, details=exc.details) from None

    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise PKIError("CSR signature does not verify", code="INVALID_CSR", field=_FIELD)
    return csr


def build_csr(
    private_key: PrivateKey,
    subject: Mapping[str, str],
    sans: Mapping[str, Iterable[str]],
) -> x509.CertificateSigningRequest:
    """Build and sign a CSR for ``private_key``.

    The subjectAltName extension is requested only when at least one SAN is
    given, and is marked critical when the subject is empty, mirroring RFC
    5280 section 4.2.1.6 ("If the subject field contains an empty sequence,
    then the issuing CA MUST include a subjectAltName extension that is
    marked as critical").
    """
    name = build_name(subject)
    general_names = build_general_names(sans)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=len(name) == 0)
    return builder.sign(private_key, signature_hash_for(private_key))  # type: ignore[arg-type]


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    """PEM text of ``csr``."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
