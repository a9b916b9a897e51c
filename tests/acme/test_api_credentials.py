"""EAB credential API: /api/v1/organizations/:id/acme-credentials — permissions (ca:write / ca:read), tenant
scoping both ways (another tenant's organization or credential is a 404), the HMAC key shown once and stored
sealed under the KEK, audit, and the REST error envelope for bad input."""
from __future__ import annotations

import base64

import pytest

from acme import services
from acme.models import EabCredential
from certificates.pki import envelope
from mazevault.models import AuditEvent
from tests.factories import assert_error, events_since, last_seq, unchanged

pytestmark = pytest.mark.django_db


def _url(org) -> str:
    return f"/api/v1/organizations/{org.pk}/acme-credentials"


def _body(tenant, **fields):
    return {"project_id": str(tenant.project.pk), "default_template_id": str(tenant.templates["web-server"].pk),
            "cluster_label": "prod-aks-westeurope", **fields}


def test_create_shows_the_key_once_and_stores_it_sealed(tenant):
    seq = last_seq()
    response = tenant.client().post(_url(tenant.org), _body(tenant), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= {"id", "eab_key_id", "eab_hmac_key", "cluster_label", "created_at"}
    key = body["eab_hmac_key"]
    assert "=" not in key and len(base64.urlsafe_b64decode(key + "=")) == 32  # unpadded base64url, 256 bits
    credential = EabCredential.objects.get(pk=body["id"])
    raw = base64.urlsafe_b64decode(key + "=")
    assert raw not in bytes(credential.hmac_sealed)
    assert services.credential_hmac_key(credential) == raw
    # Sealed to this row: the blob does not open under another row's id.
    with pytest.raises(Exception):
        envelope.open_sealed(bytes(credential.hmac_sealed), keks=services._keks(), aad=b"acme-eab:other")
    detail = tenant.client().get(f"{_url(tenant.org)}/{body['id']}").json()
    assert "eab_hmac_key" not in detail and detail["status"] == "active" and detail["accounts"] == []
    listed = tenant.client().get(_url(tenant.org)).json()
    assert [c["id"] for c in listed["data"]] == [body["id"]] and "eab_hmac_key" not in listed["data"][0]
    events = events_since(seq, action="acme.credential.created")
    assert len(events) == 1 and key not in str(events[0].details)


def test_revoke_is_audited_and_idempotent(tenant):
    created = tenant.client().post(_url(tenant.org), _body(tenant), format="json").json()
    seq = last_seq()
    response = tenant.client().delete(f"{_url(tenant.org)}/{created['id']}")
    assert response.status_code == 204
    assert tenant.client().get(f"{_url(tenant.org)}/{created['id']}").json()["status"] == "revoked"
    assert tenant.client().delete(f"{_url(tenant.org)}/{created['id']}").status_code == 204
    assert [e.action for e in events_since(seq)] == ["acme.credential.revoked"]


def test_permissions_both_ways(tenant):
    _, _, viewer = tenant.user("viewer")
    _, _, manager = tenant.user("certificate_manager")
    _, _, project_admin = tenant.user("project_admin")
    created = tenant.client().post(_url(tenant.org), _body(tenant), format="json").json()
    # ca:read lists; ca:write is needed to create and to revoke.
    assert viewer.get(_url(tenant.org)).status_code == 200
    with unchanged(audit=("rbac.permission.denied",)):
        assert_error(viewer.post(_url(tenant.org), _body(tenant), format="json"), 403, "PERMISSION_DENIED")
    with unchanged(audit=("rbac.permission.denied",)):
        assert_error(manager.delete(f"{_url(tenant.org)}/{created['id']}"), 403, "PERMISSION_DENIED")
    assert project_admin.post(_url(tenant.org), _body(tenant), format="json").status_code == 201


def test_another_tenant_is_a_404(tenant, other_tenant):
    created = tenant.client().post(_url(tenant.org), _body(tenant), format="json").json()
    stranger = other_tenant.client()
    with unchanged():
        assert_error(stranger.get(_url(tenant.org)), 404, "RESOURCE_NOT_FOUND")
        assert_error(stranger.get(f"{_url(tenant.org)}/{created['id']}"), 404, "RESOURCE_NOT_FOUND")
        assert_error(stranger.delete(f"{_url(tenant.org)}/{created['id']}"), 404, "RESOURCE_NOT_FOUND")
        assert_error(stranger.post(_url(tenant.org), _body(tenant), format="json"), 404, "RESOURCE_NOT_FOUND")
        # Its own organization, but our project and template: invalid input, as for ids that exist nowhere.
        assert_error(stranger.post(_url(other_tenant.org), _body(tenant), format="json"), 400, "VALIDATION_ERROR",
                     "project_id")
        assert_error(stranger.post(_url(other_tenant.org), _body(tenant, project_id="00000000-0000-0000-0000-"
                                                                              "000000000000"), format="json"),
                     400, "VALIDATION_ERROR", "project_id")
        # Through its own organization's path it cannot reach our credential.
        assert_error(stranger.get(f"{_url(other_tenant.org)}/{created['id']}"), 404, "RESOURCE_NOT_FOUND")
    assert other_tenant.client().get(_url(other_tenant.org)).json()["data"] == []


@pytest.mark.parametrize("fields, field", [
    ({"project_id": "nope"}, "project_id"),
    ({"default_template_id": 5}, "default_template_id"),
    ({"allowed_identifiers": ["(unclosed"]}, "allowed_identifiers"),
    ({"max_accounts": 0}, "max_accounts"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"cluster_label": "x" * 201}, "cluster_label"),
])
def test_bad_input_is_a_400_naming_the_field(tenant, fields, field):
    with unchanged():
        assert_error(tenant.client().post(_url(tenant.org), _body(tenant, **fields), format="json"), 400,
                     "VALIDATION_ERROR", field)


def test_another_tenants_template_is_refused_like_an_unknown_one(tenant, other_tenant):
    with unchanged():
        for template_id in (str(other_tenant.templates["web-server"].pk), "00000000-0000-0000-0000-000000000000"):
            assert_error(tenant.client().post(_url(tenant.org), _body(tenant, default_template_id=template_id),
                                              format="json"), 400, "VALIDATION_ERROR", "default_template_id")
    assert not AuditEvent.objects.filter(action="acme.credential.created", organization_id=tenant.org.pk).exists()
