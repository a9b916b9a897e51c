"""GET /api/v1/certificates (filters, ordering, pagination), GET /{id} (the full picture),
PUT /{id} (mutable properties only)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.utils import timezone

from certificates.models import Certificate
from tests.factories import assert_denied, assert_error, events_since, issued, last_seq, pending, unchanged

URL = "/api/v1/certificates"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [c["id"] for c in response.json()["data"]]


@pytest.fixture
def population(tenant, other_tenant):
    """Acme: three active client certs, one pending web cert; Globex: one active cert."""
    client = tenant.client()
    alpha = issued(client, tenant, cn="Alpha-Service")
    beta = issued(client, tenant, cn="beta-service")
    gamma = issued(client, tenant, cn="gamma-worker")
    web = pending(client, tenant, cn="www.acme.test")
    theirs = issued(other_tenant.client(), other_tenant, cn="alpha-globex")
    now = timezone.now()
    Certificate.objects.filter(pk=alpha["id"]).update(not_after=now + timedelta(days=5))
    Certificate.objects.filter(pk=beta["id"]).update(not_after=now + timedelta(days=45))
    return {"alpha": alpha["id"], "beta": beta["id"], "gamma": gamma["id"], "web": web["id"], "theirs": theirs["id"]}


def test_list_shape_and_tenant_scope(tenant, population):
    response = tenant.client().get(URL)
    body = response.json()
    assert set(body) == {"data", "pagination"}
    assert body["pagination"] == {"page": 1, "per_page": 25, "total": 4}
    assert population["theirs"] not in ids(response)
    item = next(c for c in body["data"] if c["id"] == population["gamma"])
    assert set(item) >= {"id", "common_name", "serial_number", "status", "issuer_cn", "not_before", "not_after",
                         "key_type", "san", "project_id"}
    assert (item["issuer_cn"], item["key_type"], item["status"]) == ("Acme Issuing CA", "ECDSA-P256", "active")
    assert "certificate_pem" not in item


def test_filters(tenant, other_tenant, population):
    client = tenant.client()
    assert set(ids(client.get(URL, {"status": "pending_approval"}))) == {population["web"]}
    assert set(ids(client.get(URL, {"status": "active"}))) == {population[k] for k in ("alpha", "beta", "gamma")}
    assert len(ids(client.get(URL, {"project_id": str(tenant.project.pk)}))) == 4
    assert ids(client.get(URL, {"project_id": str(other_tenant.project.pk)})) == []
    assert len(ids(client.get(URL, {"ca_id": str(tenant.issuing.pk)}))) == 4
    assert ids(client.get(URL, {"ca_id": str(tenant.root.pk)})) == []
    assert set(ids(client.get(URL, {"common_name": "ALPHA"}))) == {population["alpha"]}
    assert set(ids(client.get(URL, {"common_name": "service"}))) == {population["alpha"], population["beta"]}
    assert set(ids(client.get(URL, {"expiring_within_days": 30}))) == {population["alpha"]}
    assert set(ids(client.get(URL, {"expiring_within_days": 60}))) == {population["alpha"], population["beta"]}
    assert set(ids(client.get(URL, {"status": "active", "common_name": "a", "expiring_within_days": 10}))) == {
        population["alpha"]}


def test_ordering(tenant, population):
    client = tenant.client()
    by_cn = client.get(URL, {"ordering": "common_name", "status": "active"}).json()["data"]
    assert [c["common_name"] for c in by_cn] == ["Alpha-Service", "beta-service", "gamma-worker"]
    by_expiry = client.get(URL, {"ordering": "-not_after", "status": "active"}).json()["data"]
    assert [c["id"] for c in by_expiry] == [population["gamma"], population["beta"], population["alpha"]]


def test_pagination(tenant, population):
    client = tenant.client()
    first = client.get(URL, {"per_page": 3, "page": 1, "ordering": "requested_at"}).json()
    second = client.get(URL, {"per_page": 3, "page": 2, "ordering": "requested_at"}).json()
    assert first["pagination"] == {"page": 1, "per_page": 3, "total": 4}
    assert second["pagination"] == {"page": 2, "per_page": 3, "total": 4}
    assert len(first["data"]) == 3 and len(second["data"]) == 1
    assert not {c["id"] for c in first["data"]} & {c["id"] for c in second["data"]}
    assert client.get(URL, {"per_page": 1000}).json()["pagination"]["per_page"] == 100
    beyond = client.get(URL, {"page": 9}).json()
    assert beyond["data"] == [] and beyond["pagination"]["total"] == 4


@pytest.mark.parametrize("params, field", [
    ({"status": "sleeping"}, "status"), ({"project_id": "p1"}, "project_id"), ({"ca_id": "1"}, "ca_id"),
    ({"expiring_within_days": "soon"}, "expiring_within_days"), ({"expiring_within_days": -1}, "expiring_within_days"),
    ({"ordering": "private_key"}, "ordering"), ({"page": 0}, "page"), ({"per_page": "x"}, "per_page"),
])
def test_bad_list_parameters_name_the_field(tenant, params, field):
    assert_error(tenant.client().get(URL, params), 400, "VALIDATION_ERROR", field)


def test_list_needs_certificate_read(tenant, population):
    _, _, client = tenant.user("auditor")
    assert len(ids(client.get(URL))) == 4
    scoped = tenant.client().post("/api/v1/users/tokens", {"name": "p", "scopes": ["project:read"]},
                                  format="json").json()["token"]
    assert ids(tenant.client(scoped).get(URL)) == []


def test_get_returns_the_full_picture(tenant):
    client = tenant.client()
    waiting = pending(client, tenant, cn="www.acme.test")
    approver, _, manager = tenant.user("certificate_manager", username="approver-1")
    manager.post(f"{URL}/{waiting['id']}/approve", {"comment": "ok"}, format="json")
    response = client.get(f"{URL}/{waiting['id']}")
    assert response.status_code == 200
    body = response.json()
    for key in ("subject", "san", "issuer_cn", "not_before", "not_after", "key_type", "fingerprint_sha256",
                "serial_number", "status", "certificate_pem", "chain_pem", "template_id", "requested_by",
                "approvals"):
        assert body[key], key
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert body["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert int(body["serial_number"].replace(":", ""), 16) == cert.serial_number
    assert body["serial_number"] == body["serial_number"].upper() and ":" in body["serial_number"]
    assert body["chain_pem"] == tenant.issuing.certificate_pem + tenant.root.certificate_pem
    assert body["template_id"] == str(tenant.templates["web-server"].pk)
    assert body["subject"] == "CN=www.acme.test" and body["san"] == ["www.acme.test"]
    assert [(a["approver"], a["comment"]) for a in body["approvals"]] == [(approver.username, "ok")]
    assert body["requested_by"] == tenant.admin.username
    assert "PRIVATE KEY" not in response.content.decode()


def test_get_other_tenant_and_unknown_are_404(tenant, other_tenant, population):
    client = tenant.client()
    assert_error(client.get(f"{URL}/{population['theirs']}"), 404, "RESOURCE_NOT_FOUND")
    assert_error(client.get(f"{URL}/00000000-0000-4000-8000-000000000000"), 404, "RESOURCE_NOT_FOUND")
    _, _, viewer = tenant.user("viewer")
    assert viewer.get(f"{URL}/{population['gamma']}").status_code == 200


def test_put_changes_mutable_properties(tenant):
    body = issued(tenant.client(), tenant, cn="mutable")
    seq = last_seq()
    response = tenant.client().put(f"{URL}/{body['id']}", {
        "name": "edge", "description": "edge proxy", "labels": {"env": "prod"},
        "owner_contacts": ["sre@acme.test"], "auto_renew": True}, format="json")
    assert response.status_code == 200, response.json()
    after = response.json()
    assert (after["name"], after["description"], after["labels"], after["owner_contacts"], after["auto_renew"]) == (
        "edge", "edge proxy", {"env": "prod"}, ["sre@acme.test"], True)
    for key in ("serial_number", "certificate_pem", "not_after", "fingerprint_sha256", "status"):
        assert after[key] == body[key]
    [event] = events_since(seq)
    assert event.action == "cert.updated" and event.entity_id == body["id"]
    assert set(event.details["changes"]) == {"name", "description", "labels", "owner_contacts", "auto_renew"}


@pytest.mark.parametrize("change, field", [
    ({"common_name": "evil.example"}, "common_name"),
    ({"serial_number": "01"}, "serial_number"),
    ({"not_after": "2099-01-01T00:00:00Z"}, "not_after"),
    ({"certificate_pem": "x"}, "certificate_pem"),
    ({"status": "active"}, "status"),
    ({"san": ["evil.example"]}, "san"),
    ({"key_type": "RSA-1024"}, "key_type"),
    ({"name": "ok", "ca_id": "00000000-0000-4000-8000-000000000000"}, "ca_id"),
    ({"labels": "env=prod"}, "labels"),
    ({"owner_contacts": ["nobody"]}, "owner_contacts"),
    ({"auto_renew": "maybe"}, "auto_renew"),
])
def test_put_refuses_cryptographic_and_bad_fields(tenant, change, field):
    body = issued(tenant.client(), tenant, cn="immutable")
    cert = Certificate.objects.get(pk=body["id"])
    with unchanged(cert):
        response = tenant.client().put(f"{URL}/{cert.pk}", change, format="json")
    assert_error(response, 400, "VALIDATION_ERROR", field)


def test_put_denied_and_other_tenant_404(tenant, other_tenant, population):
    cert = Certificate.objects.get(pk=population["gamma"])
    user, _, client = tenant.user("user")
    seq = last_seq()
    with unchanged(cert, audit=("rbac.permission.denied",)):
        response = client.put(f"{URL}/{cert.pk}", {"name": "mine"}, format="json")
    assert_denied(response, "certificate:write", user, seq)
    theirs = Certificate.objects.get(pk=population["theirs"])
    with unchanged(theirs):
        assert_error(tenant.client().put(f"{URL}/{theirs.pk}", {"name": "mine"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
