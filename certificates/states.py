"""The certificate state machine: every status change goes through ``transition()``.

``transition`` is a compare-and-set (``UPDATE … WHERE id = %s AND status = old [AND guard]``): if
another request changed the status (or the guarded field) first, zero rows match and the caller gets
a 409 carrying the current state. It works the same on PostgreSQL and SQLite.

Some transitions are guarded: a predicate over the row that must hold for the move, checked on the
loaded object (for a clear message) and again inside the same UPDATE (so a concurrent change cannot
slip between the check and the write).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from mazevault.errors import Conflict

from .models import Certificate, CertificateStatus as S, RevocationReason


@dataclass(frozen=True)
class Guard:
    """``fields`` must equal these values for the transition; ``description`` explains a refusal."""

    description: str
    fields: dict[str, Any] = field(default_factory=dict)

    def holds(self, cert: Certificate) -> bool:
        return all(getattr(cert, name) == value for name, value in self.fields.items())


# RFC 5280 5.3.1: "certificateHold ... indicates that the certificate is temporarily suspended" -
# the only reason that may be undone (unrevoke), or made final by revoking again with another reason.
ON_HOLD = Guard("only a certificate on certificateHold can be released or revoked again",
                {"revocation_reason": RevocationReason.CERTIFICATE_HOLD})


def _restores_to(status: str) -> Guard:
    return Guard(f"an archived certificate is restored to the state it had ({status} only if it was {status})",
                 {"status_before_archive": status})


ALLOWED: dict[str, dict[str, Guard | None]] = {
    S.PENDING_APPROVAL: {S.ACTIVE: None, S.REJECTED: None},
    S.ACTIVE: {S.REVOKED: None, S.EXPIRED: None, S.ARCHIVED: None},
    S.REVOKED: {S.ACTIVE: ON_HOLD, S.REVOKED: ON_HOLD, S.ARCHIVED: None},
    S.EXPIRED: {S.ARCHIVED: None},
    S.REJECTED: {S.ARCHIVED: None},
    S.ARCHIVED: {s: _restores_to(s) for s in (S.ACTIVE, S.REVOKED, S.EXPIRED, S.REJECTED)},
}


# The statuses a row may be created in: a request waiting for approval, or a certificate issued at
# once (its row is INSERTed issued, services.issue_certificate). Every later move goes through ALLOWED.
INITIAL: frozenset[str] = frozenset({S.PENDING_APPROVAL, S.ACTIVE})


class InvalidTransition(Conflict):
    def __init__(self, current: str, target: str, reason: str = "") -> None:
        message = f"Cannot move a certificate from {current} to {target}"
        super().__init__(f"{message}: {reason}." if reason else f"{message}.",
                         details={"current_status": current, "target_status": target,
                                  **({"reason": reason} if reason else {})})


def initial(status: str) -> str:
    """``status`` if a new certificate row may be created in it (``INITIAL``), else a 409."""
    if status not in INITIAL:
        raise InvalidTransition("new", status, "a certificate is created pending_approval or active")
    return status


def allowed(cert: Certificate, target: str) -> bool:
    """Whether ``transition(cert, target)`` would pass its checks on the loaded values."""
    if target not in ALLOWED.get(cert.status, {}):
        return False
    guard = ALLOWED[cert.status][target]
    return guard is None or guard.holds(cert)


def transition(cert: Certificate, target: str, **fields: Any) -> Certificate:
    """Move ``cert`` from its loaded status to ``target`` atomically; raise 409 if it is not allowed or
    if the row moved meanwhile."""
    current = cert.status
    targets = ALLOWED.get(current, {})
    if target not in targets:
        raise InvalidTransition(current, target)
    guard = targets[target]
    conditions: dict[str, Any] = {"pk": cert.pk, "status": current}
    if guard is not None:
        if not guard.holds(cert):
            raise InvalidTransition(current, target, guard.description)
        conditions.update(guard.fields)
    fields["updated_at"] = timezone.now()
    updated = Certificate.objects.filter(**conditions).update(status=target, **fields)
    if not updated:
        fresh = Certificate.objects.filter(pk=cert.pk).values_list("status", flat=True).first()
        raise InvalidTransition(fresh or "deleted", target, guard.description if guard and fresh == current else "")
    cert.status = target
    for name, value in fields.items():
        setattr(cert, name, value)
    return cert
