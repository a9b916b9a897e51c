"""Distinguished names and subjectAltName handling.

Invariants:

* :func:`build_name` only emits the seven attributes in
  :data:`SUBJECT_FIELDS`, in the fixed order C, ST, L, O, OU, CN,
  emailAddress, each within its RFC 5280 Appendix A upper bound.
* :func:`build_general_names` only emits ASCII (IA5String-safe) values:
  DNS names and e-mail domains are converted to IDNA A-labels and
  lower-cased, because RFC 5280 section 4.2.1.6 requires dNSName and
  rfc822Name to be IA5String, and section 7.2 requires internationalized
  domain labels to be encoded as A-labels before being placed in a
  certificate.
* Every validation failure is a ``VALIDATION_ERROR`` whose ``field`` points
  at the offending request value (``requested_subject.<key>``,
  ``requested_san.<key>[<index>]``).
"""

from __future__ import annotations

import functools

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .errors import PKIError

__all__ = [
    "SAN_KEYS",
    "SUBJECT_FIELDS",
    "build_general_names",
    "build_name",
    "certificate_sans",
    "common_name",
    "name_to_dict",
    "name_to_string",
    "sans_flat",
    "sans_to_dict",
    "validate_uri",
]

SUBJECT_FIELDS: dict[str, ObjectIdentifier] = {
    "common_name": NameOID.COMMON_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "country": NameOID.COUNTRY_NAME,
    "email_address": NameOID.EMAIL_ADDRESS,
}

# Emission order for build_name: C, ST, L, O, OU, CN, emailAddress.
_NAME_ORDER: tuple[str, ...] = (
    "country",
    "state",
    "locality",
    "organization",
    "organizational_unit",
    "common_name",
    "email_address",
)

# RFC 5280 Appendix A.1 upper bounds: ub-common-name 64,
# ub-organization-name 64, ub-organizational-unit-name 64,
# ub-locality-name 128, ub-state-name 128, ub-emailaddress-length 255;
# countryName is "PrintableString (SIZE (2))" (ISO 3166 alpha-2).
_UPPER_BOUNDS: dict[str, int] = {
    "common_name": 64,
    "organization": 64,
    "organizational_unit": 64,
    "locality": 128,
    "state": 128,
    "country": 2,
    "email_address": 255,
}

SAN_KEYS: tuple[str, ...] = ("dns_names", "ip_addresses", "email_addresses", "uris")

_MAX_DNS_LENGTH = 253
_MAX_LABEL_LENGTH = 63
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_HOST_SCHEMES = frozenset({"http", "https", "ldap", "ldaps", "ftp"})
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def _invalid(message: str, field: str, **details: object) -> PKIError:
    return PKIError(message, code="VALIDATION_ERROR", field=field, details=dict(details) or None)


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def build_name(subject: Mapping[str, str | None]) -> x509.Name:
    """Build an X.509 Name from request fields.

    Values are stripped of surrounding whitespace and empty values are
    skipped; the country code is upper-cased.  Unknown keys, over-long
    values, control characters, a country that is not two ASCII letters or
    a malformed e-mail address raise ``VALIDATION_ERROR`` with
    ``field="requested_subject.<key>"``.
    """
    if subject is None:
        return x509.Name([])
    if not isinstance(subject, Mapping):
        raise _invalid("Subject must be an object", "requested_subject")
    for key in subject:
        if key not in SUBJECT_FIELDS:
            raise _invalid(
                f"Unknown subject attribute {key!r}",
                f"requested_subject.{key}",
                allowed=list(SUBJECT_FIELDS),
            )
    attributes: list[x509.NameAttribute[str]] = []
    for key in _NAME_ORDER:
        raw = subject.get(key)
        if raw is None:
            continue
        field = f"requested_subject.{key}"
        if not isinstance(raw, str):
            raise _invalid("Subject values must be strings", field)
        value = raw.strip()
        if not value:
            continue
        if _has_control_chars(value):
            raise _invalid("Subject values must not contain control characters", field)
        limit = _UPPER_BOUNDS[key]
        if key == "country":
            if len(value) != 2 or not value.isascii() or not value.isalpha():
                raise _invalid("Country must be a two-letter ISO 3166 code", field)
            value = value.upper()
        elif len(value) > limit:
            raise _invalid(f"Value exceeds the maximum length of {limit} characters", field, max_length=limit)
        if key == "email_address":
            _check_email_syntax(value, field)
        attributes.append(x509.NameAttribute(SUBJECT_FIELDS[key], value))
    return x509.Name(attributes)


def _check_email_syntax(value: str, field: str) -> None:
    # emailAddress is an IA5String (PKCS #9), so it must be ASCII.
    if not value.isascii() or value.count("@") != 1 or any(ch.isspace() for ch in value):
        raise _invalid("Invalid e-mail address", field)
    local, domain = value.split("@")
    if not local or not domain:
        raise _invalid("Invalid e-mail address", field)


def name_to_dict(name: x509.Name) -> dict[str, str]:
    """Inverse of :func:`build_name`: first value of each known attribute; others are ignored."""
    result: dict[str, str] = {}
    for key, oid in SUBJECT_FIELDS.items():
        attrs = name.get_attributes_for_oid(oid)
        if attrs:
            value = attrs[0].value
            result[key] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return result


def name_to_string(name: x509.Name) -> str:
    """RFC 4514 string form of ``name``."""
    return name.rfc4514_string()


def common_name(name: x509.Name) -> str | None:
    """First commonName value of ``name``, or ``None`` when absent."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _normalize_dns(value: str, field: str, *, allow_wildcard: bool) -> str:
    """Return the lower-case A-label form of ``value`` or raise ``VALIDATION_ERROR``.

    A wildcard is only allowed as the complete left-most label (``*.``),
    following RFC 6125 section 6.4.3 matching rules.
    """
    name = value.strip()
    if not name:
        raise _invalid("DNS name must not be empty", field)
    if any(ch.isspace() for ch in name) or _has_control_chars(name):
        raise _invalid("DNS name must not contain whitespace or control characters", field)
    wildcard = False
    if name.startswith("*."):
        if not allow_wildcard:
            raise _invalid("Wildcards are not allowed here", field)
        wildcard = True
        name = name[2:]
    if "*" in name:
        raise _invalid("A wildcard is only allowed as the entire left-most label", field)
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise _invalid("DNS name is not a valid internationalized domain name", field) from None
    name = name.lower()
    labels = name.split(".")
    for label in labels:
        if not label:
            raise _invalid("DNS name must not contain empty labels", field)
        if len(label) > _MAX_LABEL_LENGTH:
            raise _invalid(f"DNS label exceeds {_MAX_LABEL_LENGTH} characters", field)
        if not _LABEL_RE.match(label):
            raise _invalid("DNS label contains invalid characters", field)
    full = f"*.{name}" if wildcard else name
    if _looks_like_ip(name):
        raise _invalid("IP addresses must be requested as ip_addresses, not DNS names", field)
    if len(full) > _MAX_DNS_LENGTH:
        raise _invalid(f"DNS name exceeds {_MAX_DNS_LENGTH} characters", field)
    return full


def _looks_like_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _normalize_ip(value: str, field: str) -> x509.IPAddress:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise _invalid("Invalid IP address", field) from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise _invalid("IPv6 scope identifiers cannot be encoded in a certificate", field)
    return x509.IPAddress(address)


def _normalize_email(value: str, field: str) -> str:
    address = value.strip()
    if address.count("@") != 1 or any(ch.isspace() for ch in address) or _has_control_chars(address):
        raise _invalid("E-mail address must contain exactly one '@'", field)
    local, domain = address.split("@")
    if not local or not local.isascii():
        # RFC 8398 requires SmtpUTF8Mailbox (otherName) for non-ASCII local parts.
        raise _invalid("E-mail local part must be non-empty ASCII", field)
    domain = _normalize_dns(domain, field, allow_wildcard=False)
    return f"{local}@{domain}"


def validate_uri(value: str, field: str) -> str:
    """Validate an absolute URI for subjectAltName / CDP / AIA use and return it stripped.

    Results are memoised (a pure function of its arguments): a CA's CRL/OCSP/caIssuers URLs are
    checked on every signature, and the check costs more than the rest of the extension.
    """
    if not isinstance(value, str):
        raise _invalid("URI must be a string", field)
    return _validate_uri(value, field)


@functools.lru_cache(maxsize=1024)
def _validate_uri(value: str, field: str) -> str:
    """``validate_uri`` proper (``value`` is a str).
    RFC 5280 section 4.2.1.6: "When the subjectAltName extension contains a
    URI, the name MUST NOT be a relative URI, and it MUST follow the URI
    syntax and encoding rules specified in [RFC3986].  The name MUST include
    both a scheme (e.g., "http" or "ftp") and a scheme-specific-part."
    """
    uri = value.strip()
    if not uri or not uri.isascii() or any(ch.isspace() for ch in uri) or _has_control_chars(uri):
        raise _invalid("URI must be a non-empty ASCII string without whitespace", field)
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise _invalid("Invalid URI", field) from None
    if not parts.scheme or not _SCHEME_RE.match(parts.scheme) or not uri[len(parts.scheme) + 1 :]:
        raise _invalid("URI must be absolute (include a scheme and a scheme-specific part)", field)
    if parts.scheme.lower() in _HOST_SCHEMES and not parts.hostname:
        raise _invalid(f"A {parts.scheme} URI must include a host", field)
    return uri


def build_general_names(sans: Mapping[str, Iterable[str] | None]) -> list[x509.GeneralName]:
    """Validate and convert request SANs into GeneralName objects.

    Output order follows :data:`SAN_KEYS`, preserving the request order
    within each kind; duplicates (after normalisation) are dropped.
    """
    if sans is None:
        return []
    if not isinstance(sans, Mapping):
        raise _invalid("Subject alternative names must be an object", "requested_san")
    for key in sans:
        if key not in SAN_KEYS:
            raise _invalid(
                f"Unknown subject alternative name type {key!r}", f"requested_san.{key}", allowed=list(SAN_KEYS)
            )
    result: list[x509.GeneralName] = []
    seen: set[x509.GeneralName] = set()
    for key in SAN_KEYS:
        values = sans.get(key)
        if values is None:
            continue
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise _invalid("Expected a list of strings", f"requested_san.{key}")
        for index, raw in enumerate(values):
            field = f"requested_san.{key}[{index}]"
            if not isinstance(raw, str):
                raise _invalid("Expected a string", field)
            general_name: x509.GeneralName
            if key == "dns_names":
                general_name = x509.DNSName(_normalize_dns(raw, field, allow_wildcard=True))
            elif key == "ip_addresses":
                general_name = _normalize_ip(raw, field)
            elif key == "email_addresses":
                general_name = x509.RFC822Name(_normalize_email(raw, field))
            else:
                general_name = x509.UniformResourceIdentifier(validate_uri(raw, field))
            if general_name not in seen:
                seen.add(general_name)
                result.append(general_name)
    return result


def sans_to_dict(general_names: Iterable[x509.GeneralName]) -> dict[str, list[str]]:
    """Inverse of :func:`build_general_names`; always contains all of :data:`SAN_KEYS`.

    GeneralName kinds outside the four supported ones (otherName,
    directoryName, registeredID) are ignored.
    """
    result: dict[str, list[str]] = {key: [] for key in SAN_KEYS}
    for general_name in general_names:
        if isinstance(general_name, x509.DNSName):
            result["dns_names"].append(general_name.value)
        elif isinstance(general_name, x509.IPAddress):
            result["ip_addresses"].append(str(general_name.value))
        elif isinstance(general_name, x509.RFC822Name):
            result["email_addresses"].append(general_name.value)
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            result["uris"].append(general_name.value)
    return result


def sans_flat(sans: Mapping[str, Iterable[str]]) -> list[str]:
    """Flatten a SAN dict into a display list ordered by :data:`SAN_KEYS`."""
    flat: list[str] = []
    for key in SAN_KEYS:
        flat.extend(str(value) for value in sans.get(key) or ())
    return flat


def certificate_sans(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> dict[str, list[str]]:
    """SANs of a certificate or CSR as a dict (empty lists when the extension is absent).

    Malformed extensions raise ``INVALID_FORMAT``.
    """
    try:
        extension = cert_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return {key: [] for key in SAN_KEYS}
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise PKIError("Certificate extensions are malformed", code="INVALID_FORMAT") from None
    return sans_to_dict(extension.value)
