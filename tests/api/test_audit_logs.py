"""/api/v1/audit-logs: read-only, audit:read holders only, tenant-scoped, with every filter."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mazevault.models import AuditEvent
from tests.factories import assert_denied, assert_error, issued, last_seq, pending, unchanged

URL = "/api/v1/audit-logs"


def listed(client, **params) -> list[dict]:
    response = client.get(URL, {"per_page": 100, **params})
    assert response.status_code == 200, response.json()
    return response.json()["data"]


@pytest.fixture
def history(tenant, other_tenant):
    """Requests, an issuance and a rejection in Acme (from 10.9.8.7), some activity in Globex."""
    client = tenant.client()
    cert = issued(client, tenant, cn="audit-client", headers={"REMOTE_ADDR": "10.9.8.7"})
    waiting = pending(client, tenant, cn="www.audit.test")
    _, _, manager = tenant.user("certificate_manager", username="mgr")
    assert manager.post(f"/api/v1/certificates/{waiting['id']}/reject", {"reason": "no"}, format="json").status_code == 200
    issued(other_tenant.client(), other_tenant, cn="globex-client")
    return cert, waiting


def test_lists_only_my_tenants_events(tenant, other_tenant, history):
    events = listed(tenant.client())
    assert events and {e["organization_id"] for e in events} == {str(tenant.org.pk)}
    theirs = listed(other_tenant.client())
    assert {e["organization_id"] for e in theirs} == {str(other_tenant.org.pk)}
    assert not {e["id"] for e in events} & {e["id"] for e in theirs}
    event = events[0]
    assert set(event) >= {"id", "seq", "created_at", "actor_name", "action", "entity_type", "entity_id",
                          "severity", "ip_address", "request_id", "details", "prev_hash", "chain_hash"}
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)


def test_get_one_event_and_other_tenant_404(tenant, other_tenant, history):
    mine = AuditEvent.objects.filter(organization_id=tenant.org.pk).first()
    theirs = AuditEvent.objects.filter(organization_id=other_tenant.org.pk).first()
    client = tenant.client()
    response = client.get(f"{URL}/{mine.id}")
    assert response.status_code == 200 and response.json()["seq"] == mine.seq
    assert_error(client.get(f"{URL}/{theirs.id}"), 404, "RESOURCE_NOT_FOUND")


def test_filter_by_entity(tenant, history):
    cert, _ = history
    events = listed(tenant.client(), entity_type="certificate", entity_id=cert["id"])
    assert [e["action"] for e in events] == ["cert.issued", "cert.requested"]


def test_filter_by_actor_name_or_id(tenant, history):
    by_name = listed(tenant.client(), actor="mgr")
    assert by_name and {e["actor_name"] for e in by_name} == {"mgr"}
    assert "cert.rejected" in [e["action"] for e in by_name]
    by_id = listed(tenant.client(), actor=str(by_name[0]["actor_id"]))
    assert [e["id"] for e in by_id] == [e["id"] for e in by_name]
    assert listed(tenant.client(), actor="nobody") == []


@pytest.mark.parametrize("action, expected", [
    ("cert.issued", {"cert.issued"}),
    ("certificate.issued", {"cert.issued"}),
    ("cert.*", {"cert.requested", "cert.issued", "cert.rejected"}),
    ("certificate.*", {"cert.requested", "cert.issued", "cert.rejected"}),
    ("ca.created", {"ca.created"}),
])
def test_filter_by_action(tenant, history, action, expected):
    assert {e["action"] for e in listed(tenant.client(), action=action)} == expected


def test_filter_by_severity_ip_and_time(tenant, history):
    client = tenant.client()
    warnings = listed(client, severity="warning")
    assert warnings and {e["severity"] for e in warnings} == {"warning"}
    assert "ca.created" in {e["action"] for e in warnings}
    from_ip = listed(client, ip_address="10.9.8.7")
    assert {e["action"] for e in from_ip} == {"cert.requested", "cert.issued"}
    assert all(e["ip_address"] == "10.9.8.7" for e in from_ip)
    now = timezone.now()
    AuditEvent.objects.filter(action="ca.created", organization_id=tenant.org.pk).update(
        created_at=now - timedelta(days=3))
    old = listed(client, created_before=(now - timedelta(days=1)).isoformat())
    assert {e["action"] for e in old} == {"ca.created"}
    recent = listed(client, created_after=(now - timedelta(days=1)).isoformat())
    assert recent and "ca.created" not in {e["action"] for e in recent}


@pytest.mark.parametrize("params, field", [
    ({"severity": "loud"}, "severity"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2026-13-45"}, "created_before"),
    ({"organization_id": "x"}, "organization_id"),
    ({"page": "0"}, "page"),
    ({"per_page": "many"}, "per_page"),
    ({"ip_address": "not-an-ip"}, "ip_address"),
])
def test_bad_filters_name_the_field(tenant, params, field):
    assert_error(tenant.client().get(URL, params), 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize("role, allowed", [("auditor", True), ("admin", True), ("viewer", False), ("user", False),
                                           ("certificate_manager", False), ("project_admin", False)])
def test_only_audit_read_holders(tenant, history, role, allowed):
    user, _, client = tenant.user(role)
    seq = last_seq()
    if allowed:
        events = listed(client)
        assert events and all(e["project_id"] == str(tenant.project.pk) for e in events)
    else:
        with unchanged(audit=("rbac.permission.denied",)):
            response = client.get(URL)
        assert_denied(response, "audit:read", user, seq)


def test_the_api_never_changes_events(tenant, history):
    event = AuditEvent.objects.filter(organization_id=tenant.org.pk).first()
    client = tenant.client()
    with unchanged(event):
        assert_error(client.post(URL, {"action": "forged"}, format="json"), 405, "METHOD_NOT_ALLOWED")
        assert_error(client.put(f"{URL}/{event.id}", {"action": "forged"}, format="json"), 405,
                     "METHOD_NOT_ALLOWED")
        assert_error(client.delete(f"{URL}/{event.id}"), 405, "METHOD_NOT_ALLOWED")


def test_org_auditor_sees_project_level_events(tenant):
    """Events about objects that hang off a project (approval policies) carry the organization too."""
    created = tenant.client().post(f"/api/v1/projects/{tenant.project.pk}/approval-policies", {"name": "audited"},
                                   format="json").json()
    _, _, auditor = tenant.user("auditor", scope="organization")
    [event] = listed(auditor, action="approval_policy.created", entity_id=created["id"])
    assert (event["organization_id"], event["project_id"]) == (str(tenant.org.pk), str(tenant.project.pk))


def test_get_one_event_without_audit_read_is_denied_like_the_list(tenant, history):
    """Reading one event needs audit:read just as the list does: 403 (audited), not a 404."""
    user, _, client = tenant.user("viewer")
    event = AuditEvent.objects.filter(project_id=tenant.project.pk).order_by("seq").first()
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = client.get(f"{URL}/{event.id}")
    assert_denied(response, "audit:read", user, seq)
