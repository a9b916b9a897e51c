"""Filter sets for core lists."""
from __future__ import annotations

from datetime import timezone as dt_timezone

import django_filters
from django.core.validators import validate_ipv46_address
from django.db.models import Q
from rest_framework.exceptions import ValidationError

from .models import AuditEvent, Environment, Project, Severity


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An RFC 3339 timestamp compared in UTC. ISO 8601 admits offsets up to ±23:59, PostgreSQL only
    ±15:59, so the value is converted before it reaches the database; one that leaves the
    representable range is a 400, never a 500."""

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(dt_timezone.utc)
            except OverflowError:
                raise ValidationError({self.field_name: "Out of the representable date range."}) from None
        return super().filter(qs, value)


class AuditEventFilter(django_filters.FilterSet):
    entity_type = django_filters.CharFilter()
    entity_id = django_filters.CharFilter()
    actor = django_filters.CharFilter(method="filter_actor", help_text="Username or user id.")
    action = django_filters.CharFilter(method="filter_action",
                                       help_text="Exact action, or a prefix ending in '*' (cert.*). "
                                                 "certificate.* is accepted for cert.*.")
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    ip_address = django_filters.CharFilter(field_name="ip_address", validators=[validate_ipv46_address])
    organization_id = django_filters.UUIDFilter()
    project_id = django_filters.UUIDFilter()
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ()

    def filter_actor(self, queryset, name, value):
        q = Q(actor_name=value)
        if value.isdigit():
            q |= Q(actor_id=int(value))
        return queryset.filter(q)

    def filter_action(self, queryset, name, value):
        if value.startswith("certificate."):
            value = "cert." + value[len("certificate."):]
        if value.endswith("*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)


class ProjectFilter(django_filters.FilterSet):
    organization_id = django_filters.UUIDFilter()
    environment = django_filters.ChoiceFilter(choices=Environment.choices)

    class Meta:
        model = Project
        fields = ()
