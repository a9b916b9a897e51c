"""/api/v1/organizations: list, create (platform administrators only), get, put."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from mazevault import services as core
from mazevault.models import Organization, RoleAssignment
from tests.factories import assert_denied, assert_error, events_since, last_seq, unchanged

URL = "/api/v1/organizations"


@pytest.fixture
def superuser_client(tenant):
    user = get_user_model().objects.create_superuser("root", "root@example.test", "x")
    _, raw = core.create_token(user=user, name="root", actor=user)
    return user, tenant.client(raw)


def test_list_shows_only_my_organizations(tenant, other_tenant):
    response = tenant.client().get(URL)
    assert response.status_code == 200
    body = response.json()
    assert [o["id"] for o in body["data"]] == [str(tenant.org.pk)]
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 1}


def test_project_role_sees_its_organization(tenant, other_tenant):
    _, _, client = tenant.user("viewer")
    assert [o["name"] for o in client.get(URL).json()["data"]] == ["Acme"]


def test_get_and_other_tenant_is_404(tenant, other_tenant):
    client = tenant.client()
    response = client.get(f"{URL}/{tenant.org.pk}")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme"
    assert_error(client.get(f"{URL}/{other_tenant.org.pk}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(client.get(f"{URL}/not-a-uuid"), 404, "RESOURCE_NOT_FOUND")


def test_create_is_for_superusers(tenant, superuser_client):
    user, client = superuser_client
    seq = last_seq()
    response = client.post(URL, {"name": "Initech", "description": "d"}, format="json")
    assert response.status_code == 201, response.json()
    org = Organization.objects.get(pk=response.json()["id"])
    assert (org.name, org.description) == ("Initech", "d")
    assert RoleAssignment.objects.filter(user=user, organization=org, role="admin").exists()
    created = events_since(seq, action="organization.created")
    assert len(created) == 1 and created[0].entity_id == str(org.pk) and created[0].actor_id == user.pk


def test_create_by_org_admin_is_denied_and_audited(tenant):
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = tenant.client().post(URL, {"name": "Initech"}, format="json")
    assert_denied(response, "organization:write", tenant.admin, seq)


def test_create_duplicate_name_and_bad_input(tenant, superuser_client):
    _, client = superuser_client
    with unchanged():
        assert_error(client.post(URL, {"name": "Acme"}, format="json"), 409, "DUPLICATE_NAME", "name")
        assert_error(client.post(URL, {"name": ""}, format="json"), 400, "VALIDATION_ERROR", "name")
        assert_error(client.post(URL, {"name": "x" * 101}, format="json"), 400, "VALIDATION_ERROR", "name")
        assert_error(client.post(URL, {"name": ["list"]}, format="json"), 400, "VALIDATION_ERROR", "name")
        assert_error(client.post(URL, [1, 2], format="json"), 400, "VALIDATION_ERROR")


def test_put_updates_and_audits(tenant):
    seq = last_seq()
    response = tenant.client().put(f"{URL}/{tenant.org.pk}", {"name": "Acme Corp", "description": "new"},
                                   format="json")
    assert response.status_code == 200, response.json()
    tenant.org.refresh_from_db()
    assert (tenant.org.name, tenant.org.description) == ("Acme Corp", "new")
    event = events_since(seq, action="organization.updated")[0]
    assert event.details["changes"]["name"] == {"old": "Acme", "new": "Acme Corp"}


def test_put_denied_for_viewer(tenant):
    user, _, client = tenant.user("viewer", scope="organization")
    seq = last_seq()
    with unchanged(tenant.org, audit=("rbac.permission.denied",)):
        response = client.put(f"{URL}/{tenant.org.pk}", {"name": "Hacked"}, format="json")
    assert_denied(response, "organization:write", user, seq)


def test_put_other_tenant_404_and_bad_input(tenant, other_tenant):
    client = tenant.client()
    with unchanged(tenant.org, other_tenant.org):
        assert_error(client.put(f"{URL}/{other_tenant.org.pk}", {"name": "Mine"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        assert_error(client.put(f"{URL}/{tenant.org.pk}", {"name": "Globex"}, format="json"), 409,
                     "DUPLICATE_NAME")
        assert_error(client.put(f"{URL}/{tenant.org.pk}", {"description": "no name"}, format="json"), 400,
                     "VALIDATION_ERROR", "name")


def test_delete_is_not_offered(tenant):
    with unchanged():
        assert_error(tenant.client().delete(f"{URL}/{tenant.org.pk}"), 405, "METHOD_NOT_ALLOWED")
