"""The rest of the console: CAs, templates, tenancy, roles, tokens and the read-only audit log.
Every change made here leaves the same audit events as the API."""
from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse

from certificates.models import CertificateAuthority, CertificateTemplate
from mazevault import audit
from mazevault.models import ApiToken, ApprovalPolicy, AuditEvent, Organization, Project, RoleAssignment

from .conftest import change_url, login, messages_of, operator, submit

pytestmark = pytest.mark.django_db


def test_site_header(root_client):
    assert "MazeVault Certificates" in root_client.get(reverse("admin:index")).content.decode()


# --- Audit log ----------------------------------------------------------------------------------
def test_audit_events_cannot_be_added_changed_or_deleted(tenant, root_client):
    audit.seal()  # sealed events show their chain hash
    event = AuditEvent.objects.filter(action="ca.created").first()
    before = (event.action, event.chain_hash, event.details)
    existing = set(AuditEvent.objects.values_list("seq", flat=True))

    assert root_client.get(reverse("admin:mazevault_auditevent_changelist")).status_code == 200
    page = root_client.get(change_url(event))
    assert page.status_code == 200 and event.chain_hash in page.content.decode()
    assert 'name="action"' not in page.content.decode()  # a view, not a form
    assert root_client.post(change_url(event), {"action": "forged"}).status_code == 403
    assert root_client.get(reverse("admin:mazevault_auditevent_add")).status_code == 403
    assert root_client.post(reverse("admin:mazevault_auditevent_add"), {"action": "forged"}).status_code == 403
    assert root_client.post(reverse("admin:mazevault_auditevent_delete", args=[event.pk]),
                            {"post": "yes"}).status_code == 403
    listing = root_client.get(reverse("admin:mazevault_auditevent_changelist"))
    assert "delete_selected" not in listing.content.decode()

    event.refresh_from_db()
    assert (event.action, event.chain_hash, event.details) == before
    assert existing <= set(AuditEvent.objects.values_list("seq", flat=True))  # nothing deleted
    # The attempts themselves are on the record, appended to the chain.
    attempts = AuditEvent.objects.filter(action="rbac.permission.denied").exclude(seq__in=existing)
    assert sorted(e.details["permission"] for e in attempts) == [
        "mazevault.add_auditevent", "mazevault.change_auditevent", "mazevault.delete_auditevent"]


def test_audit_log_filters_and_scoping(tenant, other_tenant, root_client):
    url = reverse("admin:mazevault_auditevent_changelist")
    by_action = root_client.get(url, {"action": "ca.created"}).context["cl"].result_list
    assert {e.action for e in by_action} == {"ca.created"} and len(by_action) == 4  # two CAs per tenant
    by_entity = root_client.get(url, {"q": str(tenant.issuing.pk)}).context["cl"].result_list
    assert {e.entity_id for e in by_entity} == {str(tenant.issuing.pk)}

    auditor, client = operator(tenant, "auditor", "audrey", scope="organization")
    seen = client.get(url).context["cl"].result_list
    assert seen and {e.organization_id for e in seen} == {tenant.org.pk}

    viewer, viewer_client = operator(tenant, "viewer", "vince")  # read-only, but no audit:read
    assert viewer_client.get(url).status_code == 403


# --- Certificate authorities --------------------------------------------------------------------
def test_ca_page_is_decoded_and_read_only_except_settings(tenant, root_client):
    ca = tenant.issuing
    page = root_client.get(change_url(ca))
    html = page.content.decode()
    assert page.status_code == 200
    assert "CA: yes, path length 0" in html and "keyCertSign" in html and "cRLSign" in html
    assert ca.serial_number in html and "CN=Acme Root CA" in html  # issuer chain
    assert f"KEK {ca.key.kek_id}" in html
    assert 'name="certificate_pem"' not in html and 'name="key"' not in html and 'name="subject"' not in html
    assert bytes(ca.key.sealed).hex() not in html

    response = root_client.post(change_url(ca), {
        "name": ca.name, "status": "active", "crl_url": "", "ocsp_url": "https://ocsp.example.com",
        "crl_full_interval_hours": "24", "crl_full_validity_hours": "48", "crl_delta_interval_hours": "1",
        "crl_delta_validity_hours": "24", "crl_shards": "0", "subject": "CN=forged",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    ca.refresh_from_db()
    assert (ca.crl_full_validity_hours, ca.ocsp_url) == (48, "https://ocsp.example.com")
    assert ca.subject.startswith("CN=Acme Issuing CA")
    updated = AuditEvent.objects.get(action="ca.updated", entity_id=str(ca.pk))
    assert set(updated.details["changes"]) == {"crl_full_validity_hours", "ocsp_url"}
    assert updated.severity == "warning"

    bad = root_client.post(change_url(ca), {"name": tenant.root.name, "status": "active", "crl_url": "",
                                            "ocsp_url": "", "crl_full_interval_hours": "24",
                                            "crl_full_validity_hours": "0", "crl_delta_interval_hours": "8",
                                            "crl_delta_validity_hours": "4"})
    assert set(bad.context["adminform"].form.errors) == {"name", "crl_full_validity_hours",
                                                          "crl_delta_interval_hours"}


def test_cas_cannot_be_added_or_deleted_and_keys_are_not_registered(tenant, root_client):
    assert root_client.get(reverse("admin:certificates_certificateauthority_add")).status_code == 403
    assert root_client.post(reverse("admin:certificates_certificateauthority_delete", args=[tenant.root.pk]),
                            {"post": "yes"}).status_code == 403
    assert CertificateAuthority.objects.filter(pk=tenant.root.pk).exists()
    with pytest.raises(NoReverseMatch):
        reverse("admin:certificates_storedkey_changelist")


def test_ca_settings_need_ca_admin(tenant):
    manager, client = operator(tenant, "certificate_manager", "cm")
    ca = tenant.issuing
    assert client.get(change_url(ca)).status_code == 200
    assert client.post(change_url(ca), {"name": "renamed", "status": "disabled", "crl_full_interval_hours": "24",
                                        "crl_full_validity_hours": "168", "crl_delta_interval_hours": "1",
                                        "crl_delta_validity_hours": "24"}).status_code == 403
    ca.refresh_from_db()
    assert ca.status == "active"


# --- Templates ----------------------------------------------------------------------------------
def _template_form(tenant, **overrides):
    data = {
        "organization": str(tenant.org.pk), "project": str(tenant.project.pk), "name": "internal-tls",
        "description": "", "ca": str(tenant.issuing.pk), "key_algorithms": ["ec-p256", "rsa-2048"],
        "default_key_type": "ec-p256", "min_rsa_key_size": "2048", "validity_days": "90",
        "min_validity_days": "1", "max_validity_days": "397",
        "subject_policy": '{"common_name": {"required": true, "pattern": "[a-z0-9.-]+"}}',
        "san_types": ["dns_names"], "san_patterns": '{"dns_names": ["[a-z0-9.-]+\\\\.internal"]}',
        "max_sans": "10", "copy_cn_to_san": "on", "key_usage": ["digitalSignature"],
        "extended_key_usage": ["serverAuth"], "approval_policy": "", "renewal_window_days": "30",
        "acme_profile": "", "is_active": "on",
    }
    data.update(overrides)
    return data


def test_template_create_validates_and_is_audited(tenant, root_client):
    url = reverse("admin:certificates_certificatetemplate_add")
    bad = root_client.post(url, _template_form(tenant, subject_policy='{"common_name": {"pattern": "("}}',
                                               default_key_type="ed25519", validity_days="500"))
    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"subject_policy", "default_key_type", "validity_days"}

    response = root_client.post(url, _template_form(tenant))
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = CertificateTemplate.objects.get(name="internal-tls")
    assert template.key_algorithms == ["ec-p256", "rsa-2048"] and template.extended_key_usage == ["serverAuth"]
    assert template.subject_policy == {"common_name": {"required": True, "pattern": "[a-z0-9.-]+", "default": None}}
    assert AuditEvent.objects.filter(action="template.created", entity_id=str(template.pk)).exists()

    duplicate = root_client.post(url, _template_form(tenant))
    assert "name" in duplicate.context["adminform"].form.errors


def test_template_update_is_audited_and_used_templates_cannot_be_deleted(tenant, root_client, requester):
    template = tenant.templates["web-server"]
    submit(tenant, requester, "uses.example.com")
    form = root_client.get(change_url(template)).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    data["subject_policy"] = form["subject_policy"].value()
    data["san_patterns"] = form["san_patterns"].value()
    data.pop("is_active")

    response = root_client.post(change_url(template), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    template.refresh_from_db()
    assert template.is_active is False
    event = AuditEvent.objects.get(action="template.updated", entity_id=str(template.pk))
    assert set(event.details["changes"]) == {"is_active"}

    delete = reverse("admin:certificates_certificatetemplate_delete", args=[template.pk])
    assert root_client.post(delete, {"post": "yes"}).status_code == 403
    assert CertificateTemplate.objects.filter(pk=template.pk).exists()


# --- Tenancy ------------------------------------------------------------------------------------
def test_project_create_update_delete_are_audited(tenant, root_client):
    add = reverse("admin:mazevault_project_add")
    response = root_client.post(add, {"organization": str(tenant.org.pk), "name": "Edge",
                                      "environment": "staging", "description": ""})
    assert response.status_code == 302
    project = Project.objects.get(name="Edge")
    assert AuditEvent.objects.filter(action="project.created", entity_id=str(project.pk)).exists()

    duplicate = root_client.post(add, {"organization": str(tenant.org.pk), "name": "Edge",
                                       "environment": "staging", "description": ""})
    assert duplicate.status_code == 200 and Project.objects.filter(name="Edge").count() == 1

    root_client.post(change_url(project), {"name": "Edge", "environment": "production", "description": "x"})
    event = AuditEvent.objects.get(action="project.updated", entity_id=str(project.pk))
    assert event.details["changes"]["environment"] == {"old": "staging", "new": "production"}

    root_client.post(reverse("admin:mazevault_project_delete", args=[project.pk]), {"post": "yes"})
    assert not Project.objects.filter(pk=project.pk).exists()
    assert AuditEvent.objects.filter(action="project.deleted", entity_id=str(project.pk)).exists()


def test_project_scoped_roles_cannot_create_projects_or_organizations(tenant):
    _, client = operator(tenant, "project_admin", "pat")
    assert client.get(reverse("admin:mazevault_project_add")).status_code == 403
    assert client.get(reverse("admin:mazevault_organization_add")).status_code == 403
    listing = client.get(reverse("admin:mazevault_project_changelist")).context["cl"].result_list
    assert [p.pk for p in listing] == [tenant.project.pk]


def test_superuser_creates_an_organization_through_the_service(root_client, superuser):
    response = root_client.post(reverse("admin:mazevault_organization_add"), {"name": "Initech", "description": ""})
    assert response.status_code == 302
    org = Organization.objects.get(name="Initech")
    assert AuditEvent.objects.filter(action="organization.created", entity_id=str(org.pk)).exists()
    assert RoleAssignment.objects.filter(user=superuser, organization=org, role="admin").exists()


def test_approval_policy_create_is_audited(tenant, root_client):
    response = root_client.post(reverse("admin:mazevault_approvalpolicy_add"), {
        "project": str(tenant.project.pk), "name": "two-person", "required_approvals": "2",
        "approver_role": "certificate_manager", "environments": ["production"]})
    assert response.status_code == 302
    policy = ApprovalPolicy.objects.get(name="two-person")
    assert (policy.required_approvals, policy.environments) == (2, ["production"])
    assert AuditEvent.objects.filter(action="approval_policy.created", entity_id=str(policy.pk)).exists()


def test_role_assignment_grant_and_removal_are_audited(tenant):
    from django.contrib.auth import get_user_model

    admin_client = login(tenant.admin)
    newcomer = get_user_model().objects.create_user(username="newcomer")
    add = reverse("admin:mazevault_roleassignment_add")

    both = admin_client.post(add, {"user": "newcomer", "role": "user", "organization": str(tenant.org.pk),
                                   "project": str(tenant.project.pk)})
    assert both.status_code == 200
    unknown = admin_client.post(add, {"user": "ghost", "role": "user", "project": str(tenant.project.pk)})
    assert "user" in unknown.context["adminform"].form.errors

    response = admin_client.post(add, {"user": "newcomer", "role": "certificate_manager",
                                       "project": str(tenant.project.pk)})
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(user=newcomer)
    assert AuditEvent.objects.filter(action="rbac.role.assigned", entity_id=str(newcomer.pk)).exists()

    admin_client.post(reverse("admin:mazevault_roleassignment_delete", args=[assignment.pk]), {"post": "yes"})
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()
    removed = AuditEvent.objects.get(action="rbac.role.removed", entity_id=str(newcomer.pk))
    assert removed.details == {"user": "newcomer", "role": "certificate_manager"}


def test_certificate_managers_cannot_grant_roles(tenant):
    _, client = operator(tenant, "certificate_manager", "greedy")
    assert client.get(reverse("admin:mazevault_roleassignment_add")).status_code == 403


# --- API tokens ---------------------------------------------------------------------------------
def test_tokens_are_listed_without_hashes_and_revoked_through_the_service(tenant, root_client):
    token = ApiToken.objects.get(user=tenant.admin)
    listing = root_client.get(reverse("admin:mazevault_apitoken_changelist"))
    assert token.token_prefix in listing.content.decode()
    assert token.token_hash not in listing.content.decode()
    assert token.token_hash not in root_client.get(change_url(token)).content.decode()
    assert root_client.get(reverse("admin:mazevault_apitoken_add")).status_code == 403

    response = root_client.post(reverse("admin:mazevault_apitoken_changelist"),
                                {"action": "revoke_selected", "_selected_action": [str(token.pk)], "index": "0"})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="auth.token.revoked", entity_id=str(token.pk)).exists()
    assert any("revoked" in m for m in messages_of(response))


def test_staff_see_only_their_own_tokens(tenant):
    user, _, _ = tenant.user("user", username="tina")
    client = login(user)
    listing = client.get(reverse("admin:mazevault_apitoken_changelist")).context["cl"].result_list
    assert {t.user_id for t in listing} == {user.pk}
