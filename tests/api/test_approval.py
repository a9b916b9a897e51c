"""POST /api/v1/certificates/{id}/approve and /reject: permissions, self-approval, distinct
approvers, approver role, state conflicts, audit."""
from __future__ import annotations

from mazevault.models import ApprovalPolicy
from certificates.models import Approval, Certificate
from tests.factories import assert_denied, assert_error, events_since, issued, last_seq, pending, unchanged

URL = "/api/v1/certificates"


def approve(client, cert_id, comment=""):
    return client.post(f"{URL}/{cert_id}/approve", {"comment": comment} if comment else {}, format="json")


def reject(client, cert_id, reason="not needed"):
    return client.post(f"{URL}/{cert_id}/reject", {"reason": reason}, format="json")


def test_approve_issues_and_audits(tenant):
    waiting = pending(tenant.client(), tenant)
    approver, _, manager = tenant.user("certificate_manager", username="alice")
    seq = last_seq()
    response = approve(manager, waiting["id"], "looks fine")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "active" and body["serial_number"] and body["certificate_pem"]
    assert body["approvals"][0]["approver"] == "alice"
    events = events_since(seq)
    assert [e.action for e in events] == ["cert.approved", "cert.issued"]
    assert all(e.actor_id == approver.pk and e.entity_id == waiting["id"] for e in events)
    assert events[0].details["comment"] == "looks fine"


def test_approve_denied_without_certificate_approve(tenant):
    waiting = pending(tenant.client(), tenant)
    cert = Certificate.objects.get(pk=waiting["id"])
    for role in ("user", "viewer", "project_admin"):
        user, _, client = tenant.user(role)
        seq = last_seq()
        with unchanged(cert, audit=("rbac.permission.denied",)):
            response = approve(client, cert.pk)
        assert_denied(response, "certificate:approve", user, seq)
        seq = last_seq()
        with unchanged(cert, audit=("rbac.permission.denied",)):
            response = reject(client, cert.pk)
        assert_denied(response, "certificate:approve", user, seq)


def test_nobody_approves_their_own_request(tenant):
    requester, _, manager = tenant.user("certificate_manager")
    waiting = pending(manager, tenant)
    cert = Certificate.objects.get(pk=waiting["id"])
    seq = last_seq()
    with unchanged(cert, audit=("rbac.permission.denied",)):
        response = approve(manager, cert.pk)
    body = assert_error(response, 403, "PERMISSION_DENIED")
    assert body["details"]["reason"] == "self_approval"
    assert events_since(seq)[0].actor_id == requester.pk
    # An org admin is no exception.
    own = pending(tenant.client(), tenant, cn="own.acme.test")
    with unchanged(audit=("rbac.permission.denied",)):
        assert_error(approve(tenant.client(), own["id"]), 403, "PERMISSION_DENIED")


def test_two_distinct_approvers_when_the_policy_says_two(tenant):
    ApprovalPolicy.objects.filter(project=tenant.project).update(required_approvals=2)
    waiting = pending(tenant.client(), tenant)
    assert waiting["required_approvals"] == 2
    _, _, first = tenant.user("certificate_manager", username="first")
    _, _, second = tenant.user("certificate_manager", username="second")
    response = approve(first, waiting["id"])
    assert response.status_code == 200
    assert response.json()["status"] == "pending_approval" and response.json()["serial_number"] is None
    cert = Certificate.objects.get(pk=waiting["id"])
    with unchanged(cert):
        body = assert_error(approve(first, waiting["id"]), 409, "RESOURCE_CONFLICT")
    assert body["details"]["reason"] == "already_approved"
    seq = last_seq()
    response = approve(second, waiting["id"])
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert sorted(a["approver"] for a in response.json()["approvals"]) == ["first", "second"]
    assert [e.action for e in events_since(seq)] == ["cert.approved", "cert.issued"]


def test_approver_role_is_honoured(tenant):
    ApprovalPolicy.objects.filter(project=tenant.project).update(approver_role="admin")
    waiting = pending(tenant.client(), tenant)
    cert = Certificate.objects.get(pk=waiting["id"])
    user, _, manager = tenant.user("certificate_manager")
    seq = last_seq()
    with unchanged(cert, audit=("rbac.permission.denied",)):
        response = approve(manager, cert.pk)
    body = assert_error(response, 403, "PERMISSION_DENIED")
    assert body["details"]["approver_role"] == "admin"
    assert events_since(seq)[0].actor_id == user.pk
    _, _, admin = tenant.user("admin", username="project-admin-approver")
    assert approve(admin, cert.pk).json()["status"] == "active"


def test_approve_and_reject_409_when_not_pending(tenant):
    active = issued(tenant.client(), tenant)
    _, _, manager = tenant.user("certificate_manager")
    cert = Certificate.objects.get(pk=active["id"])
    with unchanged(cert):
        body = assert_error(approve(manager, cert.pk), 409, "RESOURCE_CONFLICT")
        assert body["details"]["current_status"] == "active"
        body = assert_error(reject(manager, cert.pk), 409, "RESOURCE_CONFLICT")
        assert body["details"]["current_status"] == "active"
    rejected = pending(tenant.client(), tenant)
    assert reject(manager, rejected["id"]).status_code == 200
    cert = Certificate.objects.get(pk=rejected["id"])
    with unchanged(cert):
        assert_error(approve(manager, cert.pk), 409, "RESOURCE_CONFLICT")
        assert_error(reject(manager, cert.pk), 409, "RESOURCE_CONFLICT")


def test_reject_needs_a_reason_and_records_it(tenant):
    waiting = pending(tenant.client(), tenant)
    cert = Certificate.objects.get(pk=waiting["id"])
    rejecter, _, manager = tenant.user("certificate_manager")
    with unchanged(cert):
        for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": ["a"]}):
            response = manager.post(f"{URL}/{cert.pk}/reject", body, format="json")
            assert_error(response, 400, "VALIDATION_ERROR", "reason")
    seq = last_seq()
    response = reject(manager, cert.pk, "wrong hostname")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["rejection_reason"], body["rejected_by"]) == ("rejected", "wrong hostname",
                                                                               rejecter.username)
    assert body["serial_number"] is None and body["certificate_pem"] == ""
    [event] = events_since(seq)
    assert (event.action, event.actor_id, event.details["reason"]) == ("cert.rejected", rejecter.pk, "wrong hostname")


def test_other_tenant_is_404(tenant, other_tenant):
    theirs = pending(other_tenant.client(), other_tenant)
    cert = Certificate.objects.get(pk=theirs["id"])
    with unchanged(cert):
        assert_error(approve(tenant.client(), cert.pk), 404, "RESOURCE_NOT_FOUND")
        assert_error(reject(tenant.client(), cert.pk), 404, "RESOURCE_NOT_FOUND")
    assert not Approval.objects.filter(certificate=cert).exists()


def test_bad_approve_body(tenant):
    waiting = pending(tenant.client(), tenant)
    cert = Certificate.objects.get(pk=waiting["id"])
    _, _, manager = tenant.user("certificate_manager")
    with unchanged(cert):
        assert_error(manager.post(f"{URL}/{cert.pk}/approve", {"comment": "x" * 2001}, format="json"), 400,
                     "VALIDATION_ERROR", "comment")
        assert_error(manager.post(f"{URL}/{cert.pk}/approve", data="{", content_type="application/json"), 400,
                     "INVALID_FORMAT")
