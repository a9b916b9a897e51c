"""Serial numbers, fingerprints, certificate encoding and time helpers.

Invariants: serials and fingerprints are rendered as colon-separated,
upper-case, two-digits-per-octet hex; every datetime handed out by
:func:`utc` is timezone-aware UTC; loaders raise ``INVALID_FORMAT`` (never a
bare ``ValueError``) for input they cannot parse.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .errors import PKIError

__all__ = [
    "cert_to_pem",
    "certs_to_pem",
    "fingerprint_sha256",
    "format_serial",
    "load_certificate",
    "load_pem_certificates",
    "parse_serial",
    "utc",
]

# Generous cap on PEM/DER input to bound parsing work (a chain of a few
# certificates is a handful of KiB).
MAX_CERTIFICATE_INPUT = 1024 * 1024
# Serials up to 32 octets are accepted when parsing so that non-conforming
# legacy certificates can still be looked up (RFC 5280 4.1.2.2 caps
# conforming serials at 20 octets).
_MAX_SERIAL_HEX_DIGITS = 64
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{octet:02X}" for octet in data)


def format_serial(serial: int) -> str:
    """Render a non-negative serial as colon-separated upper-case hex octets (``0x1abcd`` -> ``01:AB:CD``)."""
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise PKIError("Serial number must be a non-negative integer", code="VALIDATION_ERROR", field="serial")
    length = max(1, (serial.bit_length() + 7) // 8)
    return _colon_hex(serial.to_bytes(length, "big"))


def parse_serial(text: str) -> int:
    """Parse ``01:AB:CD``, ``01abcd`` or ``0x01abcd`` (case-insensitive) into an int.

    With colons, every group must hold one or two hex digits.  Anything else
    raises ``VALIDATION_ERROR`` with ``field="serial"``.
    """
    if not isinstance(text, str):
        raise PKIError("Serial number must be a string", code="VALIDATION_ERROR", field="serial")
    value = text.strip()
    if value[:2].lower() == "0x":
        value = value[2:]
    if ":" in value:
        groups = value.split(":")
        if any(not 1 <= len(group) <= 2 for group in groups):
            raise PKIError("Malformed colon-separated serial number", code="VALIDATION_ERROR", field="serial")
        value = "".join(group.zfill(2) for group in groups)
    if not value or not _HEX_RE.match(value) or len(value) > _MAX_SERIAL_HEX_DIGITS:
        raise PKIError("Serial number must be hexadecimal", code="VALIDATION_ERROR", field="serial")
    return int(value, 16)


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 over the certificate's DER encoding, as colon-separated upper-case hex."""
    return _colon_hex(cert.fingerprint(hashes.SHA256()))


def cert_to_pem(cert: x509.Certificate) -> str:
    """PEM text of one certificate (ends with a newline)."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certs_to_pem(certs: Iterable[x509.Certificate]) -> str:
    """Concatenated PEM of ``certs`` in the given order."""
    return "".join(cert_to_pem(cert) for cert in certs)


def _to_bytes(data: str | bytes, field: str) -> bytes:
    if isinstance(data, str):
        try:
            raw = data.encode("ascii")
        except UnicodeEncodeError:
            raise PKIError("Certificate data is not valid PEM", code="INVALID_FORMAT", field=field) from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise PKIError("Certificate data must be str or bytes", code="INVALID_FORMAT", field=field)
    if len(raw) > MAX_CERTIFICATE_INPUT:
        raise PKIError("Certificate data is too large", code="INVALID_FORMAT", field=field)
    if b"-----BEGIN" in raw:
        raw = raw.replace(b"\r\n", b"\n").strip() + b"\n"
    return raw


def load_certificate(data: str | bytes) -> x509.Certificate:
    """Load one certificate from PEM (the first CERTIFICATE block) or DER.

    Unparseable input raises ``INVALID_FORMAT`` with ``field="certificate_pem"``.
    """
    raw = _to_bytes(data, "certificate_pem")
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise PKIError("Certificate is not valid PEM or DER", code="INVALID_FORMAT", field="certificate_pem") from None


def load_pem_certificates(data: str | bytes) -> list[x509.Certificate]:
    """Load every CERTIFICATE block of a PEM bundle, in order.

    No certificate (or any malformed block) raises ``INVALID_FORMAT`` with
    ``field="certificate_pem"``.
    """
    raw = _to_bytes(data, "certificate_pem")
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise PKIError("No valid PEM certificates found", code="INVALID_FORMAT", field="certificate_pem") from None
    if not certs:
        raise PKIError("No valid PEM certificates found", code="INVALID_FORMAT", field="certificate_pem")
    return certs


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive values are taken to already be UTC."""
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
