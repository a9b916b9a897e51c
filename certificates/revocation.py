"""Revocation workflows: revoke, release from hold, revoke a CA certificate; revocation status.

Every revocation and every release is its own ``Revocation`` row (the revocation history); the
certificate's own columns mirror the row in effect. While a row is added the issuing CA's row is
share-locked (``FOR SHARE``: revocations do not wait for each other); the CRL generator reads the
highest row id under ``FOR NO KEY UPDATE`` of the same row, so every row at or below that id has
committed, and no slower transaction fills a gap below it later (crl/services.py relies on this).
Signals go out after the commit: the crl app regenerates CRLs, OCSP sees the new status at once
(it reads the same rows).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from certificates.pki import crl as pki_crl, formats
from mazevault import audit
from mazevault.errors import Conflict, ValidationFailed
from mazevault.models import Severity

from . import signals
from .models import (CAKind, CAStatus, Certificate, CertificateAuthority, CertificateStatus, Revocation,
                     RevocationKind, RevocationReason)
from .states import InvalidTransition, allowed, transition

Reason = RevocationReason
# DESIGN.md: cert.revoked is a warning; a compromised key is worse.
_HIGH_REASONS = frozenset({Reason.KEY_COMPROMISE, Reason.CA_COMPROMISE})


def _severity(reason: int) -> str:
    return Severity.HIGH if reason in _HIGH_REASONS else Severity.WARNING


def _actor_fields(actor: Any) -> dict[str, Any]:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return {"actor": user, "actor_name": user.get_username() if user else (actor if isinstance(actor, str) else "system")}


def _check_invalidity_date(invalidity_date: datetime | None, now: datetime) -> None:
    # RFC 5280 5.3.2: the date on which the key was known or suspected to be compromised: not a future one.
    if invalidity_date is not None and invalidity_date > now:
        raise ValidationFailed("invalidity_date may not be in the future.", details={"field": "invalidity_date"})


def lock_issuer(ca_id: Any) -> None:
    """Hold off ``ca_id``'s CRL boundary read until this transaction's revocation row commits (module doc).

    ``FOR SHARE`` does not conflict with other revocations nor with the ``FOR KEY SHARE`` that inserting
    a certificate takes on its CA. SQLite has no row locks: its write lock already serialises writers."""
    if connection.vendor == "postgresql":
        table = CertificateAuthority._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR SHARE', [ca_id])


def _publish(ca_id: Any, serial_number: str, certificate_id: Any, signal) -> None:
    def send() -> None:
        if signal is not None:
            signal.send(sender=Certificate, certificate_id=certificate_id, ca_id=ca_id, serial_number=serial_number)
        signals.revocation_changed.send(sender=Revocation, ca_id=ca_id, serial_number=serial_number)
    transaction.on_commit(send)


def revoke_certificate(cert: Certificate, *, actor: Any, reason: int = Reason.UNSPECIFIED, comment: str = "",
                       invalidity_date: datetime | None = None) -> Certificate:
    """Revoke an issued certificate, or make a certificateHold final with another reason.

    Only ``active`` certificates (and ``revoked`` ones on hold) can be revoked: a pending, rejected,
    expired or archived one is a 409 carrying its status. A hold stays the revocation date: the
    certificate has not been trusted since then; the new row carries the final reason.
    """
    reason = Reason(reason)
    now = timezone.now()
    _check_invalidity_date(invalidity_date, now)
    with transaction.atomic():
        cert = Certificate.objects.select_for_update(of=("self",)).select_related("ca").get(pk=cert.pk)
        if cert.status not in (CertificateStatus.ACTIVE, CertificateStatus.REVOKED):
            # Archived certificates are restored, not revoked (archive → revoked is the restore edge).
            raise InvalidTransition(cert.status, CertificateStatus.REVOKED)
        if cert.status == CertificateStatus.REVOKED and allowed(cert, CertificateStatus.REVOKED) \
                and reason == Reason.CERTIFICATE_HOLD:
            raise Conflict("The certificate is already on certificateHold.",
                           details={"current_status": cert.status, "revocation_reason": Reason(cert.revocation_reason).label})
        revoked_at = cert.revoked_at if cert.status == CertificateStatus.REVOKED else now
        previous_reason = cert.revocation_reason
        transition(cert, CertificateStatus.REVOKED, revoked_at=revoked_at,
                   revoked_by=actor if getattr(actor, "is_authenticated", False) else None,
                   revocation_reason=reason, invalidity_date=invalidity_date, revocation_comment=comment)
        if cert.ca_id is not None and cert.serial_number:
            # External certificates (no CA of ours) are recorded on the row only: nothing to publish.
            lock_issuer(cert.ca_id)
            Revocation.objects.filter(ca_id=cert.ca_id, serial_number=cert.serial_number, current=True) \
                .update(current=False)
            Revocation.objects.create(
                ca_id=cert.ca_id, certificate=cert, serial_number=cert.serial_number, kind=RevocationKind.REVOKE,
                reason=reason, revoked_at=revoked_at, invalidity_date=invalidity_date, not_after=cert.not_after,
                shard=cert.crl_shard, comment=comment, current=True,
                entry_der=pki_crl.encode_entry(formats.parse_serial(cert.serial_number), revoked_at, int(reason),
                                               invalidity_date),
                **_actor_fields(actor))
        audit.record("cert.revoked", actor=actor, entity=cert, severity=_severity(reason),
                     details={"serial_number": cert.serial_number, "reason": reason.label, "comment": comment,
                              "invalidity_date": invalidity_date.isoformat() if invalidity_date else None,
                              "previous_reason": Reason(previous_reason).label if previous_reason is not None else None})
        _publish(cert.ca_id, cert.serial_number, cert.pk, signals.certificate_revoked)
    return cert


def unrevoke_certificate(cert: Certificate, *, actor: Any, comment: str = "") -> Certificate:
    """Release a certificate from certificateHold: active again, listed as removeFromCRL in the next
    delta CRL and absent from the next full CRL. Any other state or reason is a 409 (the guard lives
    in ``states.ALLOWED``)."""
    now = timezone.now()
    with transaction.atomic():
        cert = Certificate.objects.select_for_update(of=("self",)).select_related("ca").get(pk=cert.pk)
        held_since = cert.revoked_at
        if cert.status != CertificateStatus.REVOKED:  # archived → active is a restore, not a release
            raise InvalidTransition(cert.status, CertificateStatus.ACTIVE)
        transition(cert, CertificateStatus.ACTIVE, revoked_at=None, revoked_by=None, revocation_reason=None,
                   invalidity_date=None, revocation_comment="")
        if cert.ca_id is not None and cert.serial_number:
            lock_issuer(cert.ca_id)
            Revocation.objects.filter(ca_id=cert.ca_id, serial_number=cert.serial_number, current=True) \
                .update(current=False)
            Revocation.objects.create(
                ca_id=cert.ca_id, certificate=cert, serial_number=cert.serial_number, kind=RevocationKind.RELEASE,
                reason=None, revoked_at=now, not_after=cert.not_after, shard=cert.crl_shard, comment=comment,
                current=False,
                entry_der=pki_crl.encode_entry(formats.parse_serial(cert.serial_number), now,
                                               pki_crl.REMOVE_FROM_CRL),
                **_actor_fields(actor))
        audit.record("cert.unrevoked", actor=actor, entity=cert, severity=Severity.WARNING,
                     details={"serial_number": cert.serial_number, "comment": comment,
                              "held_since": held_since.isoformat() if held_since else None})
        _publish(cert.ca_id, cert.serial_number, cert.pk, signals.certificate_unrevoked)
    return cert


def revoke_ca(ca: CertificateAuthority, *, actor: Any, reason: int = Reason.UNSPECIFIED, comment: str = "",
              invalidity_date: datetime | None = None) -> CertificateAuthority:
    """Revoke an intermediate CA's certificate: it lands in its parent's CRL (and OCSP), and the CA
    stops issuing (its status is ``revoked``; issuance under its templates is a 409).

    A root has no issuer to publish its revocation: distrust it by removing it from trust stores
    (and disable it here). certificateHold is refused for CAs: there is no way back for a CA here.
    """
    reason = Reason(reason)
    now = timezone.now()
    _check_invalidity_date(invalidity_date, now)
    if reason == Reason.CERTIFICATE_HOLD:
        raise ValidationFailed("A CA certificate cannot be put on hold; revoke it with a final reason.",
                               details={"field": "reason"})
    with transaction.atomic():
        ca = CertificateAuthority.objects.select_for_update(no_key=True).get(pk=ca.pk)
        if ca.kind == CAKind.ROOT or ca.parent_id is None:
            raise Conflict("A root CA is not revoked by a CRL: disable it and remove it from trust stores.",
                           details={"kind": ca.kind})
        if ca.status == CAStatus.REVOKED:
            raise Conflict("The CA is already revoked.", details={"current_status": ca.status})
        updated = CertificateAuthority.objects.filter(pk=ca.pk, status=ca.status).update(
            status=CAStatus.REVOKED, revoked_at=now, revocation_reason=reason, updated_at=now)
        if not updated:
            raise Conflict("The CA changed meanwhile; try again.")
        previous_status, ca.status, ca.revoked_at, ca.revocation_reason = ca.status, CAStatus.REVOKED, now, reason
        lock_issuer(ca.parent_id)
        Revocation.objects.create(
            ca_id=ca.parent_id, revoked_ca=ca, serial_number=ca.serial_number, kind=RevocationKind.REVOKE,
            reason=reason, revoked_at=now, invalidity_date=invalidity_date, not_after=ca.not_after, shard=None,
            comment=comment, current=True,
            entry_der=pki_crl.encode_entry(formats.parse_serial(ca.serial_number), now, int(reason), invalidity_date),
            **_actor_fields(actor))
        audit.record("ca.revoked", actor=actor, entity=ca, severity=Severity.CRITICAL
                     if reason in _HIGH_REASONS else Severity.HIGH,
                     details={"serial_number": ca.serial_number, "reason": reason.label, "comment": comment,
                              "parent_id": str(ca.parent_id), "previous_status": previous_status,
                              "invalidity_date": invalidity_date.isoformat() if invalidity_date else None})
        _publish(ca.parent_id, ca.serial_number, None, None)
    return ca


def current_revocation(ca_id: Any, serial_number: str) -> Revocation | None:
    """The row in effect for a serial of a CA (None: not revoked)."""
    return Revocation.objects.filter(ca_id=ca_id, serial_number=serial_number, current=True).first()
