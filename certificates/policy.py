"""Template policy: what a request may ask for. Pure checks, every violation collected.

The template is the source of truth (seed: "Use the selected template as the source of truth for
allowed subject fields, SAN types, key algorithm, key size, and approval behavior"). A request
that breaks it is answered 422 with the full list, so a client can fix everything at once.

Each violation is ``{"field", "code", "message"}``: ``code`` is a stable lower_snake sub-code
(docs/errors.md lists them), ``message`` is for people and may change. Patterns are matched by
RE2 (``certificates/patterns.py``), in time linear in the value.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from certificates.pki import keys, names
from certificates.pki.errors import PKIError

from .patterns import fullmatch as _fullmatch

from .models import CertificateTemplate

SAN_TYPE_LABEL = {"dns_names": "dns", "ip_addresses": "ip", "email_addresses": "email", "uris": "uri"}


@dataclass
class Violations:
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, field_name: str, code: str, message: str) -> None:
        self.items.append({"field": field_name, "code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)


def effective_subject(template: CertificateTemplate, subject: dict[str, str]) -> dict[str, str]:
    """The request's subject with the template's defaults filled in for fields it left out."""
    result = {k: v for k, v in subject.items() if v not in (None, "")}
    for name, rule in (template.subject_policy or {}).items():
        default = (rule or {}).get("default")
        if default and name not in result:
            result[name] = default
    return result


def looks_like_dns_name(value: str) -> bool:
    if not value or " " in value or "@" in value:
        return False
    try:
        ipaddress.ip_address(value)
        return False
    except ValueError:
        pass
    return re.fullmatch(r"(\*\.)?([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}\.?", value) is not None


def with_cn_in_san(template: CertificateTemplate, subject: dict[str, str],
                   sans: dict[str, list[str]]) -> dict[str, list[str]]:
    """RFC 6125 clients ignore the CN: put a DNS-like CN into the SANs when the template says so."""
    cn = subject.get("common_name", "")
    result = {key: list(sans.get(key, [])) for key in names.SAN_KEYS}
    if (template.copy_cn_to_san and "dns_names" in template.san_types and looks_like_dns_name(cn)
            and cn.lower() not in {d.lower() for d in result["dns_names"]}):
        result["dns_names"].insert(0, cn.lower())
    return result


def check_subject(template: CertificateTemplate, subject: dict[str, str], violations: Violations) -> None:
    policy = template.subject_policy or {}
    for name, value in subject.items():
        if name not in policy:
            violations.add(f"requested_subject.{name}", "subject_field_not_allowed",
                           f"the template does not allow subject field {name}")
            continue
        pattern = (policy[name] or {}).get("pattern")
        if pattern and not _fullmatch(pattern, value):
            violations.add(f"requested_subject.{name}", "subject_pattern_mismatch",
                           f"{value!r} does not match the template pattern {pattern!r}")
    for name, rule in policy.items():
        if (rule or {}).get("required") and not subject.get(name):
            violations.add(f"requested_subject.{name}", "subject_field_required",
                           f"the template requires subject field {name}")


def check_sans(template: CertificateTemplate, sans: dict[str, list[str]], violations: Violations) -> None:
    allowed = set(template.san_types or [])
    total = 0
    for key in names.SAN_KEYS:
        values = sans.get(key) or []
        total += len(values)
        if values and key not in allowed:
            violations.add(f"requested_san.{key}", "san_type_not_allowed",
                           f"the template does not allow {SAN_TYPE_LABEL[key]} subject alternative names")
            continue
        patterns = (template.san_patterns or {}).get(key) or []
        for index, value in enumerate(values):
            if key == "dns_names" and value.startswith("*.") and not template.allow_wildcards:
                violations.add(f"requested_san.{key}[{index}]", "wildcard_not_allowed",
                               f"wildcard name {value!r} is not allowed")
                continue
            if patterns and not any(_fullmatch(p, value) for p in patterns):
                violations.add(f"requested_san.{key}[{index}]", "san_pattern_mismatch",
                               f"{value!r} does not match any allowed pattern {patterns!r}")
    if total > template.max_sans:
        violations.add("requested_san", "too_many_sans",
                       f"at most {template.max_sans} subject alternative names are allowed")
    if template.require_san and total == 0:
        violations.add("requested_san", "san_required", "the template requires at least one subject alternative name")


def check_key(template: CertificateTemplate, public_key, violations: Violations, field_name: str) -> keys.KeyInfo | None:
    try:
        info = keys.describe_public_key(public_key)
    except PKIError as exc:
        violations.add(field_name, "unsupported_key", exc.message)
        return None
    allowed = set(template.key_algorithms or [])
    rsa_allowed = any(t.startswith("rsa-") for t in allowed)
    if info.algorithm == "RSA":
        if not rsa_allowed:
            violations.add(field_name, "key_type_not_allowed", f"key type {info.display} is not allowed by the template")
        elif info.size < template.min_rsa_key_size:
            violations.add(field_name, "key_too_small", f"RSA keys must have at least {template.min_rsa_key_size} bits")
        elif info.size > 8192:
            violations.add(field_name, "key_too_large", "RSA keys larger than 8192 bits are not accepted")
    elif info.key_type not in allowed:
        violations.add(field_name, "key_type_not_allowed", f"key type {info.display} is not allowed by the template")
    try:
        keys.check_key_strength(public_key, min_rsa_bits=max(2048, template.min_rsa_key_size))
    except PKIError as exc:
        if not any(v["field"] == field_name for v in violations.items):
            violations.add(field_name, "weak_key", exc.message)
    return info


def check_generated_key_type(template: CertificateTemplate, key_type: str, violations: Violations) -> None:
    """A key MazeVault would generate: RSA of any allowed size at or above the template minimum,
    otherwise exactly one of the template's key types."""
    allowed = set(template.key_algorithms or [])
    if key_type.startswith("rsa-"):
        if not any(t.startswith("rsa-") for t in allowed):
            violations.add("requested_key_algorithm", "key_type_not_allowed", "RSA keys are not allowed by the template")
        elif int(key_type.split("-")[1]) < template.min_rsa_key_size:
            violations.add("requested_key_size", "key_too_small",
                           f"RSA keys must have at least {template.min_rsa_key_size} bits")
    elif key_type not in allowed:
        violations.add("requested_key_algorithm", "key_type_not_allowed",
                       f"key type {key_type} is not allowed by the template")
