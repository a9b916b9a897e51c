"""Translate template vocabulary (X.509 usage names) into extension values.

Invariant: only the names listed in :data:`KEY_USAGES` and
:data:`EXTENDED_KEY_USAGES` are accepted; anything else is a
``VALIDATION_ERROR`` so that a typo in a template can never silently widen
or narrow what a certificate may be used for.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .errors import PKIError

__all__ = ["EXTENDED_KEY_USAGES", "KEY_USAGES", "extended_key_usage", "key_usage"]

# RFC 5280 section 4.2.1.3 KeyUsage bit names, in bit order.
KEY_USAGES: tuple[str, ...] = (
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

# RFC 5280 section 4.2.1.12 key purposes.
EXTENDED_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}

_KU_ARGUMENTS: dict[str, str] = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}


def _as_names(names: Iterable[str], field: str) -> list[str]:
    if isinstance(names, str | bytes):
        raise PKIError("Expected a list of usage names", code="VALIDATION_ERROR", field=field)
    result: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise PKIError("Usage names must be strings", code="VALIDATION_ERROR", field=field)
        if name not in result:
            result.append(name)
    return result


def key_usage(names: Iterable[str]) -> x509.KeyUsage:
    """Build a KeyUsage value with exactly the named bits set.

    RFC 5280 section 4.2.1.3: "When the keyUsage extension appears in a
    certificate, at least one of the bits MUST be set to 1", so an empty
    selection is rejected; encipherOnly/decipherOnly are only meaningful
    together with keyAgreement ("The meaning of the encipherOnly bit is
    undefined in the absence of the keyAgreement bit").  Unknown names raise
    ``VALIDATION_ERROR`` with ``field="key_usage"``.
    """
    selected = _as_names(names, "key_usage")
    unknown = [name for name in selected if name not in _KU_ARGUMENTS]
    if unknown:
        raise PKIError(
            f"Unknown key usage {unknown[0]!r}",
            code="VALIDATION_ERROR",
            field="key_usage",
            details={"unknown": unknown, "allowed": list(KEY_USAGES)},
        )
    if not selected:
        raise PKIError("At least one key usage must be selected", code="VALIDATION_ERROR", field="key_usage")
    if ("encipherOnly" in selected or "decipherOnly" in selected) and "keyAgreement" not in selected:
        raise PKIError(
            "encipherOnly and decipherOnly require keyAgreement",
            code="VALIDATION_ERROR",
            field="key_usage",
        )
    flags = {argument: name in selected for name, argument in _KU_ARGUMENTS.items()}
    return x509.KeyUsage(**flags)


def extended_key_usage(names: Iterable[str]) -> x509.ExtendedKeyUsage | None:
    """Build an ExtendedKeyUsage value (order preserved, duplicates dropped); ``None`` when empty.

    Unknown names raise ``VALIDATION_ERROR`` with ``field="extended_key_usage"``.
    """
    selected = _as_names(names, "extended_key_usage")
    unknown = [name for name in selected if name not in EXTENDED_KEY_USAGES]
    if unknown:
        raise PKIError(
            f"Unknown extended key usage {unknown[0]!r}",
            code="VALIDATION_ERROR",
            field="extended_key_usage",
            details={"unknown": unknown, "allowed": list(EXTENDED_KEY_USAGES)},
        )
    if not selected:
        return None
    return x509.ExtendedKeyUsage([EXTENDED_KEY_USAGES[name] for name in selected])
