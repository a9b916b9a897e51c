"""ACME policy: which identifiers an order may name, EAB key material, auto-approval. Pure: no DB.

Identifiers are normalised once here (lower-case DNS names without a trailing dot, canonical IP
text) so that authorizations, the CSR check and the template check all compare the same strings.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable

from certificates import policy as template_policy
from certificates.models import CertificateTemplate

from .messages import Identifier
from .problems import AcmeProblem

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EAB_KEY_BYTES = 32  # 256-bit HMAC keys (issue: "32 random bytes, unpadded base64url")


def normalise(identifier: Identifier) -> Identifier:
    """A canonical identifier, or ``rejectedIdentifier`` / ``unsupportedIdentifier``.

    RFC 8555 7.1.4: a wildcard is "*." followed by a domain name; RFC 8738 3: ip identifiers carry the
    address in its textual form (RFC 5952 for IPv6).
    """
    if identifier.type == "ip":
        try:
            return Identifier("ip", str(ipaddress.ip_address(identifier.value)))
        except ValueError:
            raise AcmeProblem("rejectedIdentifier", f"{identifier.value!r} is not an IP address") from None
    if identifier.type != "dns":
        raise AcmeProblem("unsupportedIdentifier", f"identifier type {identifier.type!r} is not supported (dns, ip)")
    value = identifier.value.strip().lower().rstrip(".")
    base = value[2:] if value.startswith("*.") else value
    labels = base.split(".")
    if (not value or len(value) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise AcmeProblem("rejectedIdentifier", f"{identifier.value!r} is not a fully qualified domain name")
    return Identifier("dns", value)


def normalise_all(identifiers: Iterable[Identifier]) -> list[Identifier]:
    seen: dict[tuple[str, str], Identifier] = {}
    for identifier in identifiers:
        norm = normalise(identifier)
        seen.setdefault((norm.type, norm.value), norm)
    return sorted(seen.values(), key=lambda i: (i.type, i.value))


def as_sans(identifiers: Iterable[Identifier]) -> dict[str, list[str]]:
    return {"dns_names": [i.value for i in identifiers if i.type == "dns"],
            "ip_addresses": [i.value for i in identifiers if i.type == "ip"]}


def check_template(template: CertificateTemplate, identifiers: list[Identifier],
                   allowed_patterns: list[str]) -> None:
    """The template (SAN types, patterns, wildcards, count) and the EAB credential's patterns allow
    every identifier; otherwise ``rejectedIdentifier`` with one subproblem per refused identifier
    (RFC 8555 6.7.1)."""
    violations = template_policy.Violations()
    template_policy.check_sans(template, as_sans(identifiers), violations)
    subproblems = []
    for identifier in identifiers:
        if allowed_patterns and not any(template_policy._fullmatch(p, identifier.value) for p in allowed_patterns):
            subproblems.append(_sub(identifier, "the ACME credential does not allow this identifier"))
    for violation in violations.items:
        subproblems.append({"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                            "detail": violation["message"]})
    if subproblems:
        raise AcmeProblem("rejectedIdentifier", "the order names identifiers its template does not allow",
                          subproblems=subproblems)


def _sub(identifier: Identifier, detail: str) -> dict:
    return {"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": detail,
            "identifier": {"type": identifier.type, "value": identifier.value}}


def all_internal(identifiers: Iterable[Identifier], suffixes: Iterable[str]) -> bool:
    """Every identifier is a DNS name under one of ``suffixes`` (MAZEVAULT_INTERNAL_SUFFIXES)."""
    wanted = [s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes if s]
    items = list(identifiers)
    return bool(items) and bool(wanted) and all(
        i.type == "dns" and any(i.value.endswith(s) for s in wanted) for i in items)


def new_eab_key() -> bytes:
    return secrets.token_bytes(EAB_KEY_BYTES)


def new_eab_key_id() -> str:
    return secrets.token_urlsafe(18)


def new_token() -> str:
    """A challenge token: at least 128 bits of entropy, base64url (RFC 8555 8.3, 8.4)."""
    return secrets.token_urlsafe(32)
