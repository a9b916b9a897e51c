"""Chainable reads over certificates: ``Certificate.objects.visible_to(access).active().expiring(30)``."""
from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


class CertificateQuerySet(models.QuerySet):
    def visible_to(self, access, permission: str = "certificate:read") -> "CertificateQuerySet":
        q = access.scope_q(permission)
        return self if q is None else self.filter(q)

    def pending(self) -> "CertificateQuerySet":
        return self.filter(status="pending_approval")

    def active(self) -> "CertificateQuerySet":
        return self.filter(status="active")

    def expiring(self, days: int) -> "CertificateQuerySet":
        now = timezone.now()
        return self.filter(status="active", not_after__gte=now, not_after__lte=now + timedelta(days=days))

    def past_expiry(self) -> "CertificateQuerySet":
        return self.filter(status="active", not_after__lt=timezone.now())
