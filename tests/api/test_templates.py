"""/api/v1/certificate-templates: CRUD, validation, tenant scoping."""
from __future__ import annotations

import pytest

from certificates.models import CertificateTemplate
from tests.factories import assert_denied, assert_error, events_since, issued, last_seq, unchanged

URL = "/api/v1/certificate-templates"


def body(tenant, **extra):
    return {"name": "internal-tls", "project_id": str(tenant.project.pk), "ca_id": str(tenant.issuing.pk),
            "key_algorithms": ["ec-p256", "rsa-3072"], "default_key_type": "ec-p256", "min_rsa_key_size": 3072,
            "validity_days": 90, "min_validity_days": 1, "max_validity_days": 180,
            "subject_policy": {"common_name": {"required": True, "pattern": r"[a-z0-9.-]+\.internal"},
                               "organization": {"default": "Acme"}},
            "san_types": ["dns_names"], "san_patterns": {"dns_names": [r"[a-z0-9.-]+\.internal"]},
            "key_usage": ["digitalSignature"], "extended_key_usage": ["serverAuth", "clientAuth"],
            "auto_approve": True, "renewal_window_days": 14, **extra}


def test_list_and_get_are_scoped(tenant, other_tenant):
    client = tenant.client()
    data = client.get(URL).json()["data"]
    assert sorted(t["name"] for t in data) == ["client-auth", "code-signing", "email", "web-server"]
    assert {t["ca_id"] for t in data} == {str(tenant.issuing.pk)}
    one = client.get(f"{URL}/{tenant.templates['web-server'].pk}").json()
    assert one["extended_key_usage"] == ["serverAuth"] and one["auto_approve"] is False
    assert_error(client.get(f"{URL}/{other_tenant.templates['web-server'].pk}"), 404, "RESOURCE_NOT_FOUND")
    assert client.get(URL, {"ca_id": str(other_tenant.issuing.pk)}).json()["data"] == []


def test_create_is_used_for_issuance(tenant):
    client = tenant.client()
    seq = last_seq()
    response = client.post(URL, body(tenant), format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["subject_policy"]["common_name"]["pattern"] == r"[a-z0-9.-]+\.internal"
    [event] = events_since(seq, action="template.created")
    assert event.entity_id == created["id"] and event.project_id == tenant.project.pk
    template = CertificateTemplate.objects.get(pk=created["id"])
    tenant.templates["internal-tls"] = template
    cert = issued(client, tenant, "internal-tls", cn="db.internal", dns=["db.internal"])
    assert cert["san"] == ["db.internal"]


def test_update_and_delete(tenant):
    client = tenant.client()
    created = client.post(URL, body(tenant), format="json").json()
    seq = last_seq()
    response = client.put(f"{URL}/{created['id']}", body(tenant, validity_days=30, auto_approve=False), format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["validity_days"], response.json()["auto_approve"]) == (30, False)
    response = client.patch(f"{URL}/{created['id']}", {"description": "patched"}, format="json")
    assert response.status_code == 200 and response.json()["description"] == "patched"
    assert client.delete(f"{URL}/{created['id']}").status_code == 204
    assert [e.action for e in events_since(seq)] == ["template.updated", "template.updated", "template.deleted"]
    assert not CertificateTemplate.objects.filter(pk=created["id"]).exists()


def test_delete_of_a_used_template_is_409(tenant):
    issued(tenant.client(), tenant)
    template = tenant.templates["client-auth"]
    with unchanged(template):
        assert_error(tenant.client().delete(f"{URL}/{template.pk}"), 409, "RESOURCE_CONFLICT")


def test_writes_denied_for_user_role(tenant):
    user, _, client = tenant.user("user")
    template = tenant.templates["web-server"]
    assert client.get(f"{URL}/{template.pk}").status_code == 200
    for call in (lambda: client.post(URL, body(tenant), format="json"),
                 lambda: client.put(f"{URL}/{template.pk}", body(tenant, name="web-server"), format="json"),
                 lambda: client.delete(f"{URL}/{template.pk}")):
        seq = last_seq()
        with unchanged(template, audit=("rbac.permission.denied",)):
            response = call()
        assert_denied(response, "template:write", user, seq)


def test_other_tenant_ids_are_404(tenant, other_tenant):
    client = tenant.client()
    theirs = other_tenant.templates["web-server"]
    with unchanged(theirs):
        assert_error(client.post(URL, body(tenant, ca_id=str(other_tenant.issuing.pk)), format="json"), 404,
                     "RESOURCE_NOT_FOUND", "ca_id")
        assert_error(client.post(URL, body(tenant, project_id=str(other_tenant.project.pk)), format="json"), 404,
                     "RESOURCE_NOT_FOUND", "project_id")
        assert_error(client.put(f"{URL}/{theirs.pk}", body(tenant), format="json"), 404, "RESOURCE_NOT_FOUND")
        assert_error(client.delete(f"{URL}/{theirs.pk}"), 404, "RESOURCE_NOT_FOUND")
        mine = tenant.templates["web-server"]
        assert_error(client.patch(f"{URL}/{mine.pk}", {"ca_id": str(other_tenant.issuing.pk)}, format="json"), 404,
                     "RESOURCE_NOT_FOUND", "ca_id")


@pytest.mark.parametrize("change, field", [
    ({"key_algorithms": ["dsa-1024"]}, "key_algorithms"),
    ({"key_algorithms": []}, "key_algorithms"),
    ({"key_algorithms": "ec-p256"}, "key_algorithms"),
    ({"default_key_type": "ed25519"}, "default_key_type"),
    ({"min_rsa_key_size": 1024}, "min_rsa_key_size"),
    ({"subject_policy": {"common_name": {"pattern": "([a-z"}}}, "subject_policy"),
    ({"subject_policy": {"shoe_size": {}}}, "subject_policy"),
    ({"san_patterns": {"dns_names": ["*.acme.test"]}}, "san_patterns"),
    ({"san_patterns": {"phone_numbers": ["1"]}}, "san_patterns"),
    ({"san_types": ["phone_numbers"]}, "san_types"),
    ({"validity_days": 400, "max_validity_days": 397}, "validity_days"),
    ({"validity_days": 5, "min_validity_days": 10}, "validity_days"),
    ({"validity_days": 0}, "validity_days"),
    ({"key_usage": ["keyCertSign"]}, "key_usage"),
    ({"key_usage": ["teleport"]}, "key_usage"),
    ({"extended_key_usage": ["mindControl"]}, "extended_key_usage"),
    ({"ca_id": "not-a-uuid"}, "ca_id"),
    ({"name": ""}, "name"),
])
def test_bad_input_names_the_field(tenant, change, field):
    with unchanged():
        response = tenant.client().post(URL, body(tenant, **change), format="json")
    assert_error(response, 400, "VALIDATION_ERROR", field)


def test_unknown_or_foreign_approval_policy_is_404(tenant, other_tenant):
    from mazevault.models import ApprovalPolicy

    theirs = ApprovalPolicy.objects.get(project=other_tenant.project)
    for policy_id in ("00000000-0000-4000-8000-000000000000", str(theirs.pk)):
        with unchanged():
            response = tenant.client().post(URL, body(tenant, approval_policy_id=policy_id), format="json")
        assert_error(response, 404, "RESOURCE_NOT_FOUND", "approval_policy_id")


def test_bad_update_changes_nothing(tenant):
    template = tenant.templates["web-server"]
    with unchanged(template):
        response = tenant.client().patch(f"{URL}/{template.pk}", {"min_validity_days": 500}, format="json")
    assert_error(response, 400, "VALIDATION_ERROR", "validity_days")


def test_duplicate_name_is_409(tenant):
    with unchanged():
        assert_error(tenant.client().post(URL, body(tenant, name="web-server"), format="json"), 409,
                     "DUPLICATE_NAME")
