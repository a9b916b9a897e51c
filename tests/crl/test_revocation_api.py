"""Revoke, unrevoke and revocation status through the REST API: the seed's shapes, the state machine's
guarded transitions, the revocation history, permissions and tenancy, and bad input changing nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from certificates.models import Certificate, Revocation, RevocationKind, RevocationReason
from mazevault.models import AuditEvent
from tests.factories import assert_denied, assert_error, issued, last_seq, pending, unchanged

pytestmark = pytest.mark.django_db


def revoke(client, cert_id, **body):
    return client.post(f"/api/v1/certificates/{cert_id}/revoke", body, format="json")


def test_revoke_answers_exactly_the_seed_shape_and_records_history(tenant):
    client = tenant.client()
    cert = issued(client, tenant)
    response = revoke(client, cert["id"], reason="keyCompromise", comment="Private key exposed")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"id", "status", "revocation_reason", "revoked_at", "revoked_by"}
    assert body["id"] == cert["id"] and body["status"] == "revoked"
    assert body["revocation_reason"] == "keyCompromise" and body["revoked_by"] == tenant.admin.username
    row = Revocation.objects.get(certificate_id=cert["id"])
    assert (row.kind, row.reason, row.current, row.serial_number) == (
        RevocationKind.REVOKE, RevocationReason.KEY_COMPROMISE, True, cert["serial_number"])
    event = AuditEvent.objects.filter(action="cert.revoked", entity_id=cert["id"]).get()
    assert event.severity == "high" and event.details["reason"] == "keyCompromise"


@pytest.mark.parametrize("given, name, severity", [
    (None, "unspecified", "warning"), (0, "unspecified", "warning"), ("4", "superseded", "warning"),
    (2, "caCompromise", "high"), ("cACompromise", "caCompromise", "high"), ("certificateHold", "certificateHold", "warning"),
    (5, "cessationOfOperation", "warning"),
])
def test_reasons_by_name_or_code_answered_by_name(tenant, given, name, severity):
    client = tenant.client()
    cert = issued(client, tenant)
    body = {} if given is None else {"reason": given}
    response = revoke(client, cert["id"], **body)
    assert response.status_code == 200, response.json()
    assert response.json()["revocation_reason"] == name
    assert AuditEvent.objects.get(action="cert.revoked", entity_id=cert["id"]).severity == severity


@pytest.mark.parametrize("body, field", [
    ({"reason": "stolen"}, "reason"), ({"reason": 7}, "reason"), ({"reason": 8}, "reason"), ({"reason": True}, "reason"),
    ({"reason": -1}, "reason"), ({"invalidity_date": "yesterday"}, "invalidity_date"),
    ({"comment": "x" * 2001}, "comment"),
])
def test_bad_revocation_input_is_400_and_changes_nothing(tenant, body, field):
    client = tenant.client()
    cert = Certificate.objects.get(pk=issued(client, tenant)["id"])
    with unchanged(cert):
        assert_error(revoke(client, cert.pk, **body), 400, "VALIDATION_ERROR", field)


def test_invalidity_date_in_the_future_is_refused_and_a_past_one_kept(tenant):
    client = tenant.client()
    cert = Certificate.objects.get(pk=issued(client, tenant)["id"])
    with unchanged(cert):
        assert_error(revoke(client, cert.pk, invalidity_date=(timezone.now() + timedelta(hours=1)).isoformat()),
                     400, "VALIDATION_ERROR", "invalidity_date")
    when = (timezone.now() - timedelta(days=2)).replace(microsecond=0)
    assert revoke(client, cert.pk, reason=1, invalidity_date=when.isoformat()).status_code == 200
    cert.refresh_from_db()
    assert cert.invalidity_date == when
    assert Revocation.objects.get(certificate=cert).invalidity_date == when


def test_revoking_twice_is_409_but_a_hold_can_be_made_final(tenant):
    client = tenant.client()
    cert = issued(client, tenant)
    assert revoke(client, cert["id"], reason="superseded").status_code == 200
    body = assert_error(revoke(client, cert["id"], reason="keyCompromise"), 409, "RESOURCE_CONFLICT")
    assert body["details"]["current_status"] == "revoked"

    held = issued(client, tenant, cn="held")
    first = revoke(client, held["id"], reason="certificateHold").json()
    assert_error(revoke(client, held["id"], reason="certificateHold"), 409, "RESOURCE_CONFLICT")
    final = revoke(client, held["id"], reason="keyCompromise")
    assert final.status_code == 200 and final.json()["revocation_reason"] == "keyCompromise"
    assert final.json()["revoked_at"] == first["revoked_at"]  # revoked since the hold
    rows = list(Revocation.objects.filter(certificate_id=held["id"]).order_by("id"))
    assert [(r.reason, r.current) for r in rows] == [(RevocationReason.CERTIFICATE_HOLD, False),
                                                     (RevocationReason.KEY_COMPROMISE, True)]
    # Final now: no way back.
    assert_error(client.post(f"/api/v1/certificates/{held['id']}/unrevoke", {}, format="json"), 409,
                 "RESOURCE_CONFLICT")


def test_pending_and_rejected_requests_cannot_be_revoked(tenant):
    client = tenant.client()
    request = pending(client, tenant)
    cert = Certificate.objects.get(pk=request["id"])
    with unchanged(cert):
        body = assert_error(revoke(client, cert.pk), 409, "RESOURCE_CONFLICT")
    assert body["details"]["current_status"] == "pending_approval"
    _, _, approver = tenant.user("certificate_manager", username="approver")
    assert approver.post(f"/api/v1/certificates/{cert.pk}/reject", {"reason": "no"}, format="json").status_code == 200
    cert.refresh_from_db()
    with unchanged(cert):
        assert assert_error(revoke(client, cert.pk), 409, "RESOURCE_CONFLICT")["details"]["current_status"] == "rejected"


def test_unrevoke_only_from_hold_back_to_active_with_a_release_row(tenant):
    client = tenant.client()
    cert = issued(client, tenant)
    unrevoke_url = f"/api/v1/certificates/{cert['id']}/unrevoke"
    assert_error(client.post(unrevoke_url, {}, format="json"), 409, "RESOURCE_CONFLICT")  # active
    assert revoke(client, cert["id"], reason="certificateHold").status_code == 200
    response = client.post(unrevoke_url, {"comment": "found the laptop"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "active" and body["revocation_reason"] is None and body["revoked_at"] is None
    rows = list(Revocation.objects.filter(certificate_id=cert["id"]).order_by("id"))
    assert [(r.kind, r.current) for r in rows] == [(RevocationKind.REVOKE, False), (RevocationKind.RELEASE, False)]
    assert AuditEvent.objects.filter(action="cert.unrevoked", entity_id=cert["id"]).count() == 1
    # A second hold and release work the same way: each is its own row.
    assert revoke(client, cert["id"], reason=6).status_code == 200
    assert client.post(unrevoke_url, {}, format="json").status_code == 200
    assert Revocation.objects.filter(certificate_id=cert["id"]).count() == 4


def test_unrevoke_of_a_final_revocation_is_409_and_changes_nothing(tenant):
    client = tenant.client()
    cert_id = issued(client, tenant)["id"]
    revoke(client, cert_id, reason="affiliationChanged")
    cert = Certificate.objects.get(pk=cert_id)
    with unchanged(cert):
        body = assert_error(client.post(f"/api/v1/certificates/{cert_id}/unrevoke", {}, format="json"), 409,
                            "RESOURCE_CONFLICT")
    assert "certificateHold" in body["details"]["reason"]


def test_status_endpoint(tenant):
    client = tenant.client()
    cert = issued(client, tenant)
    url = f"/api/v1/certificates/{cert['id']}/status"
    good = client.get(url).json()
    assert good["revoked"] is False and good["status"] == "active" and good["reason"] is None
    assert good["ocsp_url"].endswith(f"/api/v1/ca/{tenant.issuing.pk}/ocsp")
    assert good["crl_url"].endswith(f"/api/v1/ca/{tenant.issuing.pk}/crl")
    when = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    revoke(client, cert["id"], reason="keyCompromise", invalidity_date=when.isoformat())
    assert client.get(url).json()["crl_number"] is None  # no CRL lists it yet
    from crl import services as crl_services
    crl_services.publish_all(tenant.issuing)
    bad = client.get(url).json()
    assert bad["revoked"] is True and bad["reason"] == "keyCompromise" and bad["revoked_by"] == tenant.admin.username
    assert bad["invalidity_date"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    # The first CRL published after the revocation lists it.
    from crl.models import CRL
    newest = CRL.objects.filter(ca=tenant.issuing, shard=None).order_by("number").filter(
        max_revocation_id__gte=Revocation.objects.get(certificate_id=cert["id"]).id).first()
    assert newest is not None and bad["crl_number"] == newest.number


def test_permissions_and_tenancy(tenant, other_tenant):
    cert_id = issued(tenant.client(), tenant)["id"]
    cert = Certificate.objects.get(pk=cert_id)
    viewer, _, viewer_client = tenant.user("viewer")
    seq = last_seq()
    assert_denied(revoke(viewer_client, cert_id), "certificate:revoke", viewer, seq)
    assert viewer_client.get(f"/api/v1/certificates/{cert_id}/status").status_code == 200
    stranger = other_tenant.client()
    with unchanged(cert):
        assert_error(revoke(stranger, cert_id), 404, "RESOURCE_NOT_FOUND")
        assert_error(stranger.post(f"/api/v1/certificates/{cert_id}/unrevoke", {}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        assert_error(stranger.get(f"/api/v1/certificates/{cert_id}/status"), 404, "RESOURCE_NOT_FOUND")
    from rest_framework.test import APIClient
    assert_error(APIClient().post(f"/api/v1/certificates/{cert_id}/revoke", {}, format="json"), 401, "AUTH_REQUIRED")
    _, _, manager = tenant.user("certificate_manager", username="cm")
    assert revoke(manager, cert_id, reason="superseded").status_code == 200


def test_state_machine_guard_is_checked_in_the_compare_and_set(tenant):
    """A stale object that still says certificateHold cannot be released once the row's reason changed."""
    from certificates import revocation
    from certificates.states import InvalidTransition, transition

    cert = Certificate.objects.get(pk=issued(tenant.client(), tenant)["id"])
    revocation.revoke_certificate(cert, actor=tenant.admin, reason=RevocationReason.CERTIFICATE_HOLD)
    stale = Certificate.objects.get(pk=cert.pk)
    Certificate.objects.filter(pk=cert.pk).update(revocation_reason=RevocationReason.KEY_COMPROMISE)
    with pytest.raises(InvalidTransition):
        transition(stale, "active")
    assert Certificate.objects.get(pk=cert.pk).status == "revoked"


def test_archived_certificates_are_neither_revoked_nor_released(tenant):
    """archived → revoked/active are restore edges of the state machine: revoke and unrevoke never take them."""
    client = tenant.client()
    for reason, field in ((RevocationReason.CERTIFICATE_HOLD, "revoked"), (None, "active")):
        cert_id = issued(client, tenant, cn=f"archived-{field}")["id"]
        if reason is not None:
            assert revoke(client, cert_id, reason=int(reason)).status_code == 200
        cert = Certificate.objects.get(pk=cert_id)
        Certificate.objects.filter(pk=cert_id).update(status="archived", status_before_archive=cert.status)
        cert.refresh_from_db()
        with unchanged(cert):
            assert_error(revoke(client, cert_id, reason="keyCompromise"), 409, "RESOURCE_CONFLICT")
            assert_error(client.post(f"/api/v1/certificates/{cert_id}/unrevoke", {}, format="json"), 409,
                         "RESOURCE_CONFLICT")
