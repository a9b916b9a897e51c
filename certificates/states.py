"""The certificate state machine: every status change goes through ``transition()``.

``transition`` is a compare-and-set (``UPDATE … WHERE id = %s AND status = old``): if another
request changed the status first, zero rows match and the caller gets a 409 carrying the current
state. It works the same on PostgreSQL and SQLite.
"""
from __future__ import annotations

from typing import Any

from django.utils import timezone

from mazevault.errors import Conflict

from .models import Certificate, CertificateStatus as S

ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING_APPROVAL: frozenset({S.ACTIVE, S.REJECTED}),
    S.ACTIVE: frozenset({S.REVOKED, S.EXPIRED, S.ARCHIVED}),
    S.REVOKED: frozenset({S.ACTIVE, S.ARCHIVED}),  # back to active only from certificateHold
    S.EXPIRED: frozenset({S.ARCHIVED}),
    S.REJECTED: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset({S.ACTIVE, S.REVOKED, S.EXPIRED, S.REJECTED}),
}


class InvalidTransition(Conflict):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"Cannot move a certificate from {current} to {target}.",
                         details={"current_status": current, "target_status": target})


def transition(cert: Certificate, target: str, **fields: Any) -> Certificate:
    """Move ``cert`` from its loaded status to ``target`` atomically; raise 409 if it moved meanwhile."""
    current = cert.status
    if target not in ALLOWED.get(current, frozenset()):
        raise InvalidTransition(current, target)
    fields["updated_at"] = timezone.now()
    updated = Certificate.objects.filter(pk=cert.pk, status=current).update(status=target, **fields)
    if not updated:
        fresh = Certificate.objects.filter(pk=cert.pk).values_list("status", flat=True).first()
        raise InvalidTransition(fresh or "deleted", target)
    cert.status = target
    for name, value in fields.items():
        setattr(cert, name, value)
    return cert
