"""Filter sets for core lists."""
from __future__ import annotations

import django_filters
from django.core.validators import validate_ipv46_address
from django.db.models import Q

from .models import AuditEvent, Environment, Project, Severity


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
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

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
