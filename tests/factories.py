"""Helpers shared by the REST and core tests: requests, error assertions, "nothing written" checks.

Everything goes through the real API (APIClient with real Bearer tokens) and real crypto; these
helpers only cut the repetition out of building request bodies and checking answers.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from django.contrib.auth import get_user_model
from django.forms.models import model_to_dict

from certificates.models import (Approval, Certificate, CertificateAuthority, CertificateSigningRequest,
                                 CertificateTemplate, StoredKey)
from mazevault.models import (ApiToken, ApprovalPolicy, AuditEvent, IdempotencyRecord, Organization, Project,
                              RoleAssignment)
from tests.conftest import make_csr

WRITE_MODELS = (Organization, Project, RoleAssignment, ApiToken, ApprovalPolicy, CertificateAuthority,
                CertificateTemplate, Certificate, CertificateSigningRequest, Approval, StoredKey, IdempotencyRecord)


# --- request bodies ------------------------------------------------------------------------------
def csr_body(tenant, template: str = "client-auth", *, cn: str = "client-1", **fields: Any) -> dict[str, Any]:
    """An ``uploaded`` request body for one of the tenant's stock templates (EC P-256, cached key)."""
    body: dict[str, Any] = {
        "template_id": str(tenant.templates[template].pk),
        "project_id": str(tenant.project.pk),
        "csr_source_mode": "uploaded",
    }
    if "csr_pem" not in fields and fields.get("csr_source_mode", "uploaded") in ("uploaded", "uploaded_csr"):
        dns = fields.pop("dns", None)
        if dns is None and template == "web-server":
            dns = [cn]
        body["csr_pem"] = make_csr(cn, dns=dns or [])
    fields.pop("dns", None)
    body.update(fields)
    return body


def submit(client, tenant, template: str = "client-auth", *, cn: str = "client-1", headers: dict | None = None,
           **fields: Any):
    return client.post("/api/v1/certificates/csr", csr_body(tenant, template, cn=cn, **fields), format="json",
                       **(headers or {}))


def issued(client, tenant, template: str = "client-auth", *, cn: str = "client-1", **fields: Any) -> dict:
    """Submit under an auto-approved template and return the issued certificate's JSON."""
    response = submit(client, tenant, template, cn=cn, **fields)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active", body
    return body


def pending(client, tenant, *, cn: str = "www.acme.test", template: str = "web-server", **fields: Any) -> dict:
    """Submit under a template that needs approval and return the pending request's JSON."""
    response = submit(client, tenant, template, cn=cn, **fields)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending_approval", body
    return body


# --- answers -------------------------------------------------------------------------------------
def fields_named(body: dict) -> set[str]:
    """Every field an error body points at (``details.field``, ``details.fields``, violations)."""
    details = body.get("details") or {}
    named: set[str] = set()
    if isinstance(details.get("field"), str):
        named.add(details["field"])
    fields = details.get("fields")
    if isinstance(fields, dict):
        named.update(fields)
    elif isinstance(fields, list):
        named.update(str(f) for f in fields)
    for violation in details.get("violations") or []:
        named.add(violation["field"])
    return named


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    """The DESIGN.md error shape with this status and code, naming ``field`` (or a sub-field of it)."""
    assert response.status_code == status, (response.status_code, response.content[:800])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["details"], dict), body
    if field is not None:
        named = fields_named(body)
        assert any(n == field or n.startswith((f"{field}.", f"{field}[")) for n in named), (field, body)
    return body


# --- the database --------------------------------------------------------------------------------
def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def events_since(seq: int, **filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq, **filters).order_by("seq"))


def snapshot() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (*WRITE_MODELS, get_user_model())}


def row(obj) -> dict[str, Any]:
    """Every stored field of ``obj`` as it is in the database now."""
    fresh = type(obj).objects.get(pk=obj.pk)
    values = model_to_dict(fresh)
    values["updated_at"] = getattr(fresh, "updated_at", None)
    values["status"] = getattr(fresh, "status", None)
    return values


@contextmanager
def unchanged(*objects: Any, audit: tuple[str, ...] = ()) -> Iterator[None]:
    """Nothing is written inside the block: no row created or deleted, ``objects`` untouched, and the
    audit log grows by exactly the ``audit`` actions (e.g. one ``rbac.permission.denied``)."""
    before, seq = snapshot(), last_seq()
    rows = [row(obj) for obj in objects]
    yield
    assert snapshot() == before
    assert [row(obj) for obj in objects] == rows
    assert [e.action for e in events_since(seq)] == list(audit)


def assert_denied(response, permission: str | None, user, seq: int) -> AuditEvent:
    """403 PERMISSION_DENIED, and the refusal is in the audit log (one event, by ``user``)."""
    body = assert_error(response, 403, "PERMISSION_DENIED")
    events = events_since(seq, action="rbac.permission.denied")
    assert len(events) == 1, [e.action for e in events_since(seq)]
    event = events[0]
    assert event.actor_id == user.pk
    assert event.severity == "warning"
    if permission is not None:
        assert body["details"].get("permission") == permission, body
        assert event.details["permission"] == permission
    return event
