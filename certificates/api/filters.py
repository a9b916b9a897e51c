"""Certificate list filters (seed: project_id, status, ca_id, common_name, expiring_within_days; issue 6:
serial_number, fingerprint_sha256, san, san_contains, source).

Values people paste are normalised to the stored canonical form before the lookup, so each filter
is one indexed comparison: a serial in colon hex or plain hex (any case, optional ``0x``) becomes
``01:AB:…`` (``formats.format_serial``), a fingerprint becomes 32 colon-separated upper-case
octets. SANs are matched case-insensitively against ``Certificate.san_search`` (the SAN list as
lower-case JSON text, indexed with pg_trgm on PostgreSQL): ``san`` equals one of the names,
``san_contains`` is a substring of one.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import django_filters
from django.utils import timezone

from certificates.models import (Certificate, CertificateAuthority, CertificateSource, CertificateStatus,
                                 CertificateTemplate)
from certificates.pki import formats
from certificates.pki.errors import PKIError
from mazevault.errors import ValidationFailed

_HEX = re.compile(r"^[0-9a-f]+$")


def canonical_serial(text: str) -> str:
    """``01:ab:cd``, ``01ABCD``, ``0x1abcd`` -> ``01:AB:CD``; anything else is a 400 naming the parameter."""
    try:
        value = formats.parse_serial(text.strip())
    except PKIError:
        raise ValidationFailed("serial_number must be hexadecimal, with or without colons.",
                               details={"field": "serial_number"}) from None
    return formats.format_serial(value)


def canonical_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint with or without colons/spaces, any case -> ``AB:CD:…`` (32 octets)."""
    digits = re.sub(r"[\s:]", "", text).lower()
    if len(digits) != 64 or not _HEX.match(digits):
        raise ValidationFailed("fingerprint_sha256 must be 64 hexadecimal digits (colons optional).",
                               details={"field": "fingerprint_sha256"})
    return ":".join(digits[i:i + 2] for i in range(0, 64, 2)).upper()


def _json_inner(value: str) -> str:
    """``value`` as it appears inside a JSON string (quotes and backslashes escaped)."""
    return json.dumps(value.strip().lower())[1:-1]


class CertificateFilter(django_filters.FilterSet):
    project_id = django_filters.UUIDFilter()
    organization_id = django_filters.UUIDFilter()
    ca_id = django_filters.UUIDFilter()
    template_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=CertificateStatus.choices)
    common_name = django_filters.CharFilter(lookup_expr="icontains", max_length=255,
                                            help_text="Substring of the common name (case-insensitive).")
    serial_number = django_filters.CharFilter(method="filter_serial", max_length=100,
                                              help_text="Serial number, colon hex (01:AB:…) or plain hex, any case.")
    fingerprint_sha256 = django_filters.CharFilter(method="filter_fingerprint", max_length=100,
                                                   help_text="SHA-256 fingerprint of the certificate, colon "
                                                             "separated or plain hex, any case.")
    san = django_filters.CharFilter(method="filter_san", max_length=255,
                                    help_text="A subject alternative name the certificate carries (exact, "
                                              "case-insensitive): DNS name, IP address, email or URI.")
    san_contains = django_filters.CharFilter(method="filter_san_contains", max_length=255,
                                             help_text="Substring of one of the certificate's subject alternative "
                                                       "names (case-insensitive).")
    source = django_filters.ChoiceFilter(choices=CertificateSource.choices,
                                         help_text="How the certificate came to be: request, import, acme, scep, "
                                                   "renewal.")
    expiring_within_days = django_filters.NumberFilter(method="filter_expiring", min_value=0, max_value=36500,
                                                       help_text="Active certificates expiring within N days.")
    ordering = django_filters.OrderingFilter(fields=("requested_at", "not_after", "not_before", "common_name",
                                                     "status", "issued_at"))

    class Meta:
        model = Certificate
        fields = ()

    def filter_serial(self, queryset, name, value):
        return queryset.filter(serial_number=canonical_serial(value))

    def filter_fingerprint(self, queryset, name, value):
        return queryset.filter(fingerprint_sha256=canonical_fingerprint(value))

    def filter_san(self, queryset, name, value):
        # A whole JSON string element of the list, quotes included: "a.example.com" never matches
        # "www.a.example.com".
        return queryset.filter(san_search__contains=f'"{_json_inner(value)}"')

    def filter_san_contains(self, queryset, name, value):
        return queryset.filter(san_search__contains=_json_inner(value))

    def filter_expiring(self, queryset, name, value):
        now = timezone.now()
        return queryset.filter(status=CertificateStatus.ACTIVE, not_after__gte=now,
                               not_after__lte=now + timedelta(days=int(value)))


class CAFilter(django_filters.FilterSet):
    organization_id = django_filters.UUIDFilter()
    project_id = django_filters.UUIDFilter()
    kind = django_filters.CharFilter()

    class Meta:
        model = CertificateAuthority
        fields = ()


class TemplateFilter(django_filters.FilterSet):
    organization_id = django_filters.UUIDFilter()
    project_id = django_filters.UUIDFilter()
    ca_id = django_filters.UUIDFilter()

    class Meta:
        model = CertificateTemplate
        fields = ()
