"""The certificate console: pending-first queue, approve/reject through the API's services,
tenant scoping, and the decoded certificate on read-only pages."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.urls import reverse
from django.utils import timezone

from certificates.models import Certificate, CertificateStatus
from mazevault.models import ApprovalPolicy, AuditEvent

from .conftest import CHANGELIST, change_url, login, messages_of, operator, run_action, submit

pytestmark = pytest.mark.django_db


def events(cert: Certificate, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(entity_type="certificate", entity_id=str(cert.pk), action=action))


# --- The queue ----------------------------------------------------------------------------------
def test_changelist_puts_pending_requests_first_then_newest(tenant, root_client, requester):
    old_pending = submit(tenant, requester, "old.example.com")
    rejected = submit(tenant, requester, "rejected.example.com")
    rejected.status = CertificateStatus.REJECTED
    Certificate.objects.filter(pk=rejected.pk).update(status=CertificateStatus.REJECTED)
    new_pending = submit(tenant, requester, "new.example.com")
    issued = submit(tenant, requester, "client-1", template="client-auth")  # auto-approved: active, newest
    now = timezone.now()
    for cert, age in ((old_pending, timedelta(hours=3, minutes=5)), (rejected, timedelta(hours=2)),
                      (new_pending, timedelta(minutes=30)), (issued, timedelta(minutes=1))):
        Certificate.objects.filter(pk=cert.pk).update(requested_at=now - age)

    response = root_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    order = [c.pk for c in response.context["cl"].result_list]
    assert order == [new_pending.pk, old_pending.pk, issued.pk, rejected.pk]
    html = response.content.decode()
    assert "3 h" in html and "30 min" in html  # humanised age
    assert "old.example.com" in html and "alice" in html and "web-server" in html
    assert "Approve selected requests" in html and "Reject selected requests" in html


def test_changelist_filters_and_serial_search(tenant, root_client, requester):
    pending = submit(tenant, requester, "pending.example.com")
    issued = submit(tenant, requester, "client-2", template="client-auth")
    url = reverse(CHANGELIST)

    by_status = root_client.get(url, {"status__exact": "pending_approval"})
    assert [c.pk for c in by_status.context["cl"].result_list] == [pending.pk]

    # A serial typed without colons and in lower case still finds the certificate.
    bare = issued.serial_number.replace(":", "").lower()
    by_serial = root_client.get(url, {"q": bare})
    assert [c.pk for c in by_serial.context["cl"].result_list] == [issued.pk]

    by_template = root_client.get(url, {"template__id__exact": str(tenant.templates["client-auth"].pk)})
    assert [c.pk for c in by_template.context["cl"].result_list] == [issued.pk]


# --- Approve ------------------------------------------------------------------------------------
def test_approve_action_issues_through_the_service(tenant, superuser, root_client, requester):
    cert = submit(tenant, requester, "www.example.com", dns=["www.example.com", "example.com"])

    response = run_action(root_client, "approve_selected", [cert])

    assert response.status_code == 302
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.ACTIVE
    assert cert.serial_number and cert.certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    issued = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    assert issued.issuer.rfc4514_string().startswith("CN=Acme Issuing CA")
    assert list(cert.approvals.values_list("approver__username", flat=True)) == ["root"]
    approved, = events(cert, "cert.approved")
    assert approved.actor_id == superuser.pk
    assert events(cert, "cert.issued")
    assert any("approved and issued" in m and cert.serial_number in m for m in messages_of(response))


def test_approving_an_issued_certificate_reports_409_and_changes_nothing(tenant, root_client, requester):
    cert = submit(tenant, requester, "twice.example.com")
    run_action(root_client, "approve_selected", [cert])
    cert.refresh_from_db()
    serial = cert.serial_number

    response = run_action(root_client, "approve_selected", [cert])

    assert any("already issued (409)" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.serial_number == serial
    assert len(events(cert, "cert.issued")) == 1
    assert cert.approvals.count() == 1


def test_self_approval_is_refused_and_audited(tenant):
    manager, client = operator(tenant, "certificate_manager", "maria")
    cert = submit(tenant, manager, "own.example.com")

    response = run_action(client, "approve_selected", [cert])

    assert any("you cannot approve your own request" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL
    assert not cert.approvals.exists() and not events(cert, "cert.issued")
    denied, = events(cert, "rbac.permission.denied")
    assert denied.actor_id == manager.pk
    assert denied.details["permission"] == "certificate:approve"
    assert "own request" in denied.details["reason"]


def test_operator_without_approve_permission_is_refused_and_audited(tenant, requester):
    viewer, client = operator(tenant, "user", "victor")  # certificate:read and :request, no :approve
    cert = submit(tenant, requester, "guarded.example.com")

    page = client.get(change_url(cert))
    assert page.status_code == 200
    assert "Approve and issue" not in page.content.decode()
    assert "You do not hold certificate:approve" in page.content.decode()

    response = client.post(reverse("admin:certificates_certificate_approve", args=[cert.pk]))

    assert response.status_code == 302
    assert any("permission denied" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL and not cert.approvals.exists()
    denied, = events(cert, "rbac.permission.denied")
    assert denied.actor_id == viewer.pk and denied.details["permission"] == "certificate:approve"

    # The bulk actions are not even offered to this operator.
    listing = client.get(reverse(CHANGELIST))
    assert "Approve selected requests" not in listing.content.decode()
    run_action(client, "approve_selected", [cert])
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL


def test_approver_role_from_the_policy_is_enforced_like_the_api(tenant, requester):
    ApprovalPolicy.objects.filter(project=tenant.project).update(approver_role="admin")
    manager, client = operator(tenant, "certificate_manager", "carl")
    cert = submit(tenant, requester, "strict.example.com")
    assert cert.approver_role == "admin"

    response = run_action(client, "approve_selected", [cert])

    assert any("permission denied" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL
    assert events(cert, "rbac.permission.denied")[0].details["reason"].startswith("Approval needs the admin role")


def test_two_approvals_needed_issue_only_on_the_second(tenant, requester):
    ApprovalPolicy.objects.filter(project=tenant.project).update(required_approvals=2)
    first, first_client = operator(tenant, "certificate_manager", "first")
    second, second_client = operator(tenant, "certificate_manager", "second")
    cert = submit(tenant, requester, "dual.example.com")

    response = first_client.post(reverse("admin:certificates_certificate_approve", args=[cert.pk]),
                                 {"comment": "checked the ticket"})
    assert any("1 of 2 approvals" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL

    again = first_client.get(change_url(cert)).content.decode()
    assert "You already approved this request" in again and "checked the ticket" in again

    second_client.post(reverse("admin:certificates_certificate_approve", args=[cert.pk]))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.ACTIVE
    assert set(cert.approvals.values_list("approver__username", flat=True)) == {"first", "second"}


def test_change_page_approve_button_issues(tenant, root_client, requester):
    cert = submit(tenant, requester, "button.example.com", dns=["button.example.com", "api.example.com"])

    page = root_client.get(change_url(cert)).content.decode()
    assert "Approve and issue" in page and "Reject…" in page
    assert "DNS:api.example.com" in page  # requested SANs
    assert "ECDSA-P256" in page and "Uploaded CSR" in page  # CSR key type and mode
    assert "0 of 1 required" in page

    assert root_client.get(reverse("admin:certificates_certificate_approve", args=[cert.pk])).status_code == 405
    response = root_client.post(reverse("admin:certificates_certificate_approve", args=[cert.pk]),
                                {"comment": "ok"})

    assert response.status_code == 302 and response.url == change_url(cert)
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.ACTIVE
    assert events(cert, "cert.approved")[0].details["comment"] == "ok"


# --- Reject -------------------------------------------------------------------------------------
def test_reject_action_asks_for_a_reason_and_records_it(tenant, superuser, root_client, requester):
    cert = submit(tenant, requester, "reject.example.com")

    confirm = run_action(root_client, "reject_selected", [cert])
    assert confirm.status_code == 200
    assert "admin/certificates/certificate/reject_confirmation.html" in [t.name for t in confirm.templates]
    assert "reject.example.com" in confirm.content.decode()

    missing = run_action(root_client, "reject_selected", [cert], mv_confirm="1", reason="   ")
    assert missing.status_code == 200
    assert missing.context["form"].errors["reason"]
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL and not events(cert, "cert.rejected")

    done = root_client.post(reverse(CHANGELIST), {"action": "reject_selected", "_selected_action": [str(cert.pk)],
                                                  "mv_confirm": "1", "reason": "Hostname not owned by us"})
    assert done.status_code == 302
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.REJECTED
    assert cert.rejection_reason == "Hostname not owned by us" and cert.rejected_by_id == superuser.pk
    rejected, = events(cert, "cert.rejected")
    assert rejected.details["reason"] == "Hostname not owned by us"
    assert any("rejected" in m for m in messages_of(done))


def test_reject_button_page_and_a_second_reject_is_a_409(tenant, root_client, requester):
    cert = submit(tenant, requester, "again.example.com")
    url = reverse("admin:certificates_certificate_reject", args=[cert.pk])

    assert "Reason" in root_client.get(url).content.decode()
    assert root_client.post(url, {"reason": ""}).status_code == 200
    response = root_client.post(url, {"reason": "duplicate request"})
    assert response.status_code == 302
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.REJECTED

    second = root_client.post(url, {"reason": "again"})
    assert any("not pending approval (409)" in m for m in messages_of(second))
    cert.refresh_from_db()
    assert cert.rejection_reason == "duplicate request"
    page = root_client.get(change_url(cert)).content.decode()
    assert "duplicate request" in page and "Approve and issue" not in page


def test_reject_needs_the_approve_permission(tenant, requester):
    viewer, client = operator(tenant, "user", "rita")
    cert = submit(tenant, requester, "keep.example.com")

    response = client.post(reverse("admin:certificates_certificate_reject", args=[cert.pk]), {"reason": "no"})

    assert any("permission denied" in m for m in messages_of(response))
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.PENDING_APPROVAL
    assert events(cert, "rbac.permission.denied")


# --- Tenancy ------------------------------------------------------------------------------------
def test_non_superusers_see_only_their_tenants(tenant, other_tenant, superuser, requester):
    mine = submit(tenant, requester, "mine.example.com")
    outsider, _, _ = other_tenant.user("user", username="olga")
    theirs = submit(other_tenant, outsider, "theirs.example.com")
    manager, client = operator(tenant, "certificate_manager", "mike")

    listing = client.get(reverse(CHANGELIST))
    assert [c.pk for c in listing.context["cl"].result_list] == [mine.pk]
    html = listing.content.decode()
    assert "theirs.example.com" not in html and "Globex" not in html  # filters do not leak names either

    # Another tenant's certificate does not exist for this operator: no page, no approval.
    assert client.get(change_url(theirs)).status_code == 302
    client.post(reverse("admin:certificates_certificate_approve", args=[theirs.pk]))
    run_action(client, "approve_selected", [theirs])
    theirs.refresh_from_db()
    assert theirs.status == CertificateStatus.PENDING_APPROVAL

    everything = login(superuser).get(reverse(CHANGELIST))
    assert {c.pk for c in everything.context["cl"].result_list} == {mine.pk, theirs.pk}


def test_staff_without_any_role_sees_no_certificates(tenant, requester):
    from django.contrib.auth import get_user_model

    nobody = get_user_model().objects.create_user(username="nobody")
    client = login(nobody)
    assert client.get(reverse(CHANGELIST)).status_code == 403
    apps = client.get(reverse("admin:index")).context["app_list"]
    assert [a["app_label"] for a in apps] == ["mazevault"]  # only their own API tokens
    assert [m["object_name"] for m in apps[0]["models"]] == ["ApiToken"]


# --- Decoded certificate, read-only properties --------------------------------------------------
def test_change_page_shows_the_decoded_certificate(tenant, root_client, requester):
    cert = submit(tenant, requester, "decoded.example.com", dns=["decoded.example.com", "alt.example.com"])
    run_action(root_client, "approve_selected", [cert])
    cert.refresh_from_db()
    parsed = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    fingerprint = ":".join(f"{b:02X}" for b in parsed.fingerprint(hashes.SHA256()))
    ski = parsed.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    page = root_client.get(change_url(cert))

    html = page.content.decode()
    assert page.status_code == 200
    assert fingerprint in html
    assert "DNS:alt.example.com" in html
    assert cert.serial_number in html
    assert "CN=decoded.example.com" in html
    assert ":".join(f"{b:02X}" for b in ski) in html
    assert "serverAuth" in html and "digitalSignature" in html and "CA: no" in html
    assert "URI:http://" in html and f"/api/v1/ca/{tenant.issuing.pk}/crl" in html
    assert f"/api/v1/ca/{tenant.issuing.pk}/ocsp" in html
    assert "BEGIN CERTIFICATE" in html and "CN=Acme Root CA" in html  # PEM and chain
    assert 'name="certificate_pem"' not in html and 'name="common_name"' not in html


def test_only_mutable_properties_change_and_the_change_is_audited(tenant, root_client, requester):
    cert = submit(tenant, requester, "props.example.com")
    pem_before = cert.certificate_pem

    response = root_client.post(change_url(cert), {
        "name": "edge", "description": "payments edge", "labels": '{"team": "payments"}',
        "owner_contacts": "ops@example.com\nsec@example.com", "auto_renew": "on",
        "certificate_pem": "forged", "common_name": "evil.example.com", "status": "active",
    })

    assert response.status_code == 302, response.context["adminform"].form.errors
    cert.refresh_from_db()
    assert (cert.name, cert.labels, cert.owner_contacts, cert.auto_renew) == (
        "edge", {"team": "payments"}, ["ops@example.com", "sec@example.com"], True)
    assert cert.common_name == "props.example.com" and cert.certificate_pem == pem_before
    assert cert.status == CertificateStatus.PENDING_APPROVAL
    updated, = events(cert, "cert.updated")
    assert set(updated.details["changes"]) == {"name", "description", "labels", "owner_contacts", "auto_renew"}

    bad = root_client.post(change_url(cert), {"name": "edge", "labels": "[1]", "owner_contacts": "not-an-email"})
    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"labels", "owner_contacts"}


def test_read_only_operators_cannot_edit_properties(tenant, requester):
    viewer, client = operator(tenant, "viewer", "vera")
    cert = submit(tenant, requester, "ro.example.com")

    assert client.get(change_url(cert)).status_code == 200
    assert client.post(change_url(cert), {"name": "x"}).status_code == 403
    cert.refresh_from_db()
    assert cert.name == "" and not events(cert, "cert.updated")
    denied, = events(cert, "rbac.permission.denied")
    assert denied.actor_id == viewer.pk and denied.details["permission"] == "certificate:write"


def test_certificates_cannot_be_added_or_deleted(tenant, root_client, requester):
    cert = submit(tenant, requester, "stay.example.com")
    assert root_client.get(reverse("admin:certificates_certificate_add")).status_code == 403
    assert root_client.post(reverse("admin:certificates_certificate_delete", args=[cert.pk]),
                            {"post": "yes"}).status_code == 403
    assert Certificate.objects.filter(pk=cert.pk).exists()


def test_names_from_requests_are_escaped_and_generated_keys_never_shown(tenant, root_client, requester):
    from certificates import services

    data = services.RequestInput(mode="mazevault_generated", requested_cn="<b>bold</b> client",
                                 requested_key_algorithm="ECDSA")
    cert = services.submit_request(data, actor=requester, project=tenant.project,
                                   template=tenant.templates["client-auth"])
    assert cert.status == CertificateStatus.ACTIVE and cert.private_key is not None

    html = root_client.get(change_url(cert)).content.decode()

    assert "&lt;b&gt;bold&lt;/b&gt; client" in html and "<b>bold</b>" not in html
    assert "stored by MazeVault: ec-p256" in html
    assert "PRIVATE KEY" not in html and bytes(cert.private_key.sealed).hex() not in html
