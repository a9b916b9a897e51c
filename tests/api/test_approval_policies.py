"""/api/v1/projects/{id}/approval-policies: CRUD, scoped to the project's tenant."""
from __future__ import annotations

import pytest

from mazevault.models import ApprovalPolicy
from tests.factories import assert_denied, assert_error, events_since, last_seq, unchanged


def url(project, policy=None) -> str:
    base = f"/api/v1/projects/{project.pk}/approval-policies"
    return f"{base}/{policy.pk if hasattr(policy, 'pk') else policy}" if policy is not None else base


@pytest.fixture
def policy(tenant):
    return ApprovalPolicy.objects.get(project=tenant.project, name="default")


def test_list_and_get(tenant, policy):
    client = tenant.client()
    body = client.get(url(tenant.project)).json()
    assert [p["name"] for p in body["data"]] == ["default"]
    assert body["pagination"]["total"] == 1
    detail = client.get(url(tenant.project, policy)).json()
    assert detail["required_approvals"] == 1 and detail["project_id"] == str(tenant.project.pk)


def test_create_update_delete_with_audit(tenant):
    client = tenant.client()
    seq = last_seq()
    response = client.post(url(tenant.project), {"name": "two-person", "required_approvals": 2,
                                                 "approver_role": "certificate_manager",
                                                 "environments": ["production"]}, format="json")
    assert response.status_code == 201, response.json()
    created = ApprovalPolicy.objects.get(pk=response.json()["id"])
    assert (created.required_approvals, created.approver_role, created.environments) == (
        2, "certificate_manager", ["production"])
    response = client.put(url(tenant.project, created), {"name": "two-person", "required_approvals": 3},
                          format="json")
    assert response.status_code == 200, response.json()
    created.refresh_from_db()
    assert created.required_approvals == 3
    assert client.delete(url(tenant.project, created)).status_code == 204
    assert not ApprovalPolicy.objects.filter(pk=created.pk).exists()
    actions = [e.action for e in events_since(seq) if e.action.startswith("approval_policy.")]
    assert actions == ["approval_policy.created", "approval_policy.updated", "approval_policy.deleted"]
    assert all(e.project_id == tenant.project.pk for e in events_since(seq) if e.action.startswith("approval"))


def test_write_denied_for_certificate_manager(tenant, policy):
    user, _, client = tenant.user("certificate_manager")
    assert client.get(url(tenant.project)).status_code == 200
    for call in (lambda: client.post(url(tenant.project), {"name": "lax", "required_approvals": 1}, format="json"),
                 lambda: client.put(url(tenant.project, policy), {"name": "default", "required_approvals": 0},
                                    format="json"),
                 lambda: client.delete(url(tenant.project, policy))):
        seq = last_seq()
        with unchanged(policy, audit=("rbac.permission.denied",)):
            response = call()
        assert_denied(response, "project:write", user, seq)


def test_other_tenant_is_404(tenant, other_tenant):
    theirs = ApprovalPolicy.objects.get(project=other_tenant.project)
    client = tenant.client()
    with unchanged(theirs):
        assert_error(client.get(url(other_tenant.project)), 404, "RESOURCE_NOT_FOUND")
        assert_error(client.post(url(other_tenant.project), {"name": "x"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        assert_error(client.get(url(other_tenant.project, theirs)), 404, "RESOURCE_NOT_FOUND")
        assert_error(client.put(url(other_tenant.project, theirs), {"name": "x"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        assert_error(client.delete(url(other_tenant.project, theirs)), 404, "RESOURCE_NOT_FOUND")
        # Their policy id under my project path is not found either.
        assert_error(client.get(url(tenant.project, theirs)), 404, "RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("body, field", [
    ({"name": "p", "required_approvals": 0}, "required_approvals"),
    ({"name": "p", "required_approvals": "two"}, "required_approvals"),
    ({"name": "p", "approver_role": "overlord"}, "approver_role"),
    ({"name": "p", "environments": ["moon"]}, "environments"),
    ({"name": "p", "environments": "production"}, "environments"),
    ({"required_approvals": 1}, "name"),
])
def test_bad_input_names_the_field(tenant, body, field):
    with unchanged():
        assert_error(tenant.client().post(url(tenant.project), body, format="json"), 400, "VALIDATION_ERROR", field)


def test_duplicate_name_is_409(tenant, policy):
    with unchanged():
        assert_error(tenant.client().post(url(tenant.project), {"name": "default"}, format="json"), 409,
                     "DUPLICATE_NAME")
