"""/api/v1/projects: list (filter organization_id), create, get, put, delete."""
from __future__ import annotations

from mazevault.models import Project
from tests.factories import assert_denied, assert_error, events_since, last_seq, unchanged

URL = "/api/v1/projects"


def test_list_is_scoped_and_filters_by_organization(tenant, other_tenant):
    client = tenant.client()
    extra = client.post(URL, {"organization_id": str(tenant.org.pk), "name": "Second", "environment": "staging"},
                        format="json")
    assert extra.status_code == 201
    body = client.get(URL).json()
    assert sorted(p["name"] for p in body["data"]) == ["Acme project", "Second"]
    assert body["pagination"]["total"] == 2
    filtered = client.get(URL, {"organization_id": str(tenant.org.pk), "environment": "staging"}).json()
    assert [p["name"] for p in filtered["data"]] == ["Second"]
    assert client.get(URL, {"organization_id": str(other_tenant.org.pk)}).json()["data"] == []
    assert_error(client.get(URL, {"organization_id": "nope"}), 400, "VALIDATION_ERROR", "organization_id")


def test_project_scoped_user_sees_only_that_project(tenant):
    tenant.client().post(URL, {"organization_id": str(tenant.org.pk), "name": "Hidden"}, format="json")
    _, _, client = tenant.user("user")
    assert [p["name"] for p in client.get(URL).json()["data"]] == ["Acme project"]


def test_create_get_and_audit(tenant):
    client = tenant.client()
    seq = last_seq()
    response = client.post(URL, {"organization_id": str(tenant.org.pk), "name": "Payments",
                                 "environment": "production", "description": "card data"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["environment"], body["organization_id"]) == ("Payments", "production",
                                                                             str(tenant.org.pk))
    project = Project.objects.get(pk=body["id"])
    assert client.get(f"{URL}/{project.pk}").json()["description"] == "card data"
    [event] = events_since(seq, action="project.created")
    assert (event.entity_id, event.organization_id, event.actor_id) == (str(project.pk), tenant.org.pk,
                                                                        tenant.admin.pk)


def test_create_denied_for_project_admin_of_another_project(tenant):
    user, _, client = tenant.user("project_admin")
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = client.post(URL, {"organization_id": str(tenant.org.pk), "name": "Mine"}, format="json")
    assert_denied(response, "project:write", user, seq)


def test_create_in_other_tenant_is_404_and_bad_input_400(tenant, other_tenant):
    client = tenant.client()
    with unchanged():
        assert_error(client.post(URL, {"organization_id": str(other_tenant.org.pk), "name": "X"}, format="json"),
                     404, "RESOURCE_NOT_FOUND", "organization_id")
        assert_error(client.post(URL, {"organization_id": str(tenant.org.pk), "name": "X", "environment": "prod"},
                                 format="json"), 400, "VALIDATION_ERROR", "environment")
        assert_error(client.post(URL, {"name": "X"}, format="json"), 400, "VALIDATION_ERROR", "organization_id")
        assert_error(client.post(URL, {"organization_id": str(tenant.org.pk), "name": "Acme project"},
                                 format="json"), 409, "DUPLICATE_NAME", "name")


def test_get_other_tenant_is_404(tenant, other_tenant):
    assert_error(tenant.client().get(f"{URL}/{other_tenant.project.pk}"), 404, "RESOURCE_NOT_FOUND")


def test_put_updates_mutable_fields(tenant):
    seq = last_seq()
    response = tenant.client().put(f"{URL}/{tenant.project.pk}", {"name": "Renamed", "environment": "staging"},
                                   format="json")
    assert response.status_code == 200, response.json()
    tenant.project.refresh_from_db()
    assert (tenant.project.name, tenant.project.environment) == ("Renamed", "staging")
    assert tenant.project.organization_id == tenant.org.pk
    [event] = events_since(seq, action="project.updated")
    assert event.details["changes"]["environment"] == {"old": "production", "new": "staging"}


def test_put_denied_other_tenant_and_bad_input(tenant, other_tenant):
    user, _, client = tenant.user("certificate_manager")
    seq = last_seq()
    with unchanged(tenant.project, audit=("rbac.permission.denied",)):
        response = client.put(f"{URL}/{tenant.project.pk}", {"name": "Nope"}, format="json")
    assert_denied(response, "project:write", user, seq)
    admin = tenant.client()
    with unchanged(tenant.project, other_tenant.project):
        assert_error(admin.put(f"{URL}/{other_tenant.project.pk}", {"name": "Mine"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        assert_error(admin.put(f"{URL}/{tenant.project.pk}", {"name": "X", "environment": "moon"}, format="json"),
                     400, "VALIDATION_ERROR", "environment")
        assert_error(admin.put(f"{URL}/{tenant.project.pk}", {"environment": "staging"}, format="json"),
                     400, "VALIDATION_ERROR", "name")


def test_delete_empty_project(tenant):
    client = tenant.client()
    project_id = client.post(URL, {"organization_id": str(tenant.org.pk), "name": "Temp"}, format="json").json()["id"]
    seq = last_seq()
    assert client.delete(f"{URL}/{project_id}").status_code == 204
    assert not Project.objects.filter(pk=project_id).exists()
    [event] = events_since(seq, action="project.deleted")
    assert event.entity_id == project_id
    assert_error(client.get(f"{URL}/{project_id}"), 404, "RESOURCE_NOT_FOUND")


def test_delete_in_use_409_denied_403_other_tenant_404(tenant, other_tenant):
    client = tenant.client()
    with unchanged(tenant.project, other_tenant.project):
        assert_error(client.delete(f"{URL}/{tenant.project.pk}"), 409, "RESOURCE_CONFLICT")
        assert_error(client.delete(f"{URL}/{other_tenant.project.pk}"), 404, "RESOURCE_NOT_FOUND")
    user, _, viewer = tenant.user("viewer")
    seq = last_seq()
    with unchanged(tenant.project, audit=("rbac.permission.denied",)):
        response = viewer.delete(f"{URL}/{tenant.project.pk}")
    assert_denied(response, "project:write", user, seq)
