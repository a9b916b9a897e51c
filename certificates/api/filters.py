"""Certificate list filters (seed: project_id, status, ca_id, common_name, expiring_within_days)."""
from __future__ import annotations

from datetime import timedelta

import django_filters
from django.utils import timezone

from certificates.models import Certificate, CertificateAuthority, CertificateStatus, CertificateTemplate


class CertificateFilter(django_filters.FilterSet):
    project_id = django_filters.UUIDFilter()
    organization_id = django_filters.UUIDFilter()
    ca_id = django_filters.UUIDFilter()
    template_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=CertificateStatus.choices)
    common_name = django_filters.CharFilter(lookup_expr="icontains", max_length=255,
                                            help_text="Substring of the common name (case-insensitive).")
    expiring_within_days = django_filters.NumberFilter(method="filter_expiring", min_value=0, max_value=36500,
                                                       help_text="Active certificates expiring within N days.")
    ordering = django_filters.OrderingFilter(fields=("requested_at", "not_after", "not_before", "common_name",
                                                     "status", "issued_at"))

    class Meta:
        model = Certificate
        fields = ()

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
