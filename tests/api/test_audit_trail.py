"""Every mutation writes the right audit event: actor, entity, organization/project, request id, IP."""
from __future__ import annotations

from mazevault import audit
from mazevault.models import AuditEvent
from tests.factories import csr_body, events_since, last_seq

META = {"HTTP_X_REQUEST_ID": "req-0123456789", "REMOTE_ADDR": "198.51.100.23"}


def test_each_mutation_records_actor_entity_request_id_and_ip(tenant):
    client = tenant.client()
    _, _, manager = tenant.user("certificate_manager", username="carol")
    steps = []

    def call(method, path, body=None, client=client, **extra):
        seq = last_seq()
        response = getattr(client, method)(path, body, format="json", **META, **extra)
        assert response.status_code < 300, (path, response.status_code, response.content[:300])
        assert response["X-Request-ID"] == META["HTTP_X_REQUEST_ID"]
        steps.append((path, events_since(seq)))
        return response.json() if response.content else None

    ca = call("post", "/api/v1/ca", {"name": "Audit Root", "organization_id": str(tenant.org.pk),
                                     "subject": {"common_name": "Audit Root"}})
    call("put", f"/api/v1/ca/{ca['id']}", {"crl_full_validity_hours": 48})
    project = call("post", "/api/v1/projects", {"organization_id": str(tenant.org.pk), "name": "Audited"})
    call("put", f"/api/v1/projects/{project['id']}", {"name": "Audited 2"})
    policy = call("post", f"/api/v1/projects/{tenant.project.pk}/approval-policies", {"name": "extra"})
    call("delete", f"/api/v1/projects/{tenant.project.pk}/approval-policies/{policy['id']}")
    call("delete", f"/api/v1/projects/{project['id']}")
    token = call("post", "/api/v1/users/tokens", {"name": "audited"})
    call("delete", f"/api/v1/users/tokens/{token['id']}")
    waiting = call("post", "/api/v1/certificates/csr", csr_body(tenant, "web-server", cn="www.acme.test"))
    call("post", f"/api/v1/certificates/{waiting['id']}/approve", {}, client=manager)
    call("put", f"/api/v1/certificates/{waiting['id']}", {"name": "audited"})
    other = call("post", "/api/v1/certificates/csr", csr_body(tenant, "web-server", cn="api.acme.test"))
    call("post", f"/api/v1/certificates/{other['id']}/reject", {"reason": "dup"}, client=manager)

    expected = [
        ["ca.created"], ["ca.updated"], ["project.created"], ["project.updated"], ["approval_policy.created"],
        ["approval_policy.deleted"], ["project.deleted"], ["auth.token.created"], ["auth.token.revoked"],
        ["cert.requested"], ["cert.approved", "cert.issued"], ["cert.updated"], ["cert.requested"],
        ["cert.rejected"],
    ]
    assert [[e.action for e in events] for _, events in steps] == expected
    for path, events in steps:
        for event in events:
            assert event.request_id == META["HTTP_X_REQUEST_ID"], (path, event.action)
            assert event.ip_address == META["REMOTE_ADDR"], (path, event.action)
            # Tokens belong to a user, not a tenant; everything else to Acme.
            expected_org = None if event.action.startswith("auth.token.") else tenant.org.pk
            assert event.organization_id == expected_org, (path, event.action)
            assert event.actor_name in (tenant.admin.username, "carol"), (path, event.action)
            assert event.entity_type and event.entity_id, (path, event.action)
            # Inserted unsealed; the sealer chains them after the commit (docs/audit.md).
            assert event.chain_hash is None and event.prev_hash is None and event.position is None
    audit.seal()
    for _, events in steps:
        for event in events:
            event.refresh_from_db()
            assert len(event.chain_hash) == 64 and len(event.prev_hash) == 64 and event.position
    cert_events = [e for _, events in steps for e in events if e.entity_id == waiting["id"]]
    assert [(e.action, e.actor_name, e.entity_type) for e in cert_events] == [
        ("cert.requested", tenant.admin.username, "certificate"), ("cert.approved", "carol", "certificate"),
        ("cert.issued", "carol", "certificate"), ("cert.updated", tenant.admin.username, "certificate")]


def test_request_id_is_generated_when_absent_or_unsafe(tenant):
    seq = last_seq()
    response = tenant.client().post("/api/v1/users/tokens", {"name": "x"}, format="json",
                                    HTTP_X_REQUEST_ID="<script>")
    generated = response["X-Request-ID"]
    assert generated != "<script>" and len(generated) == 32
    assert AuditEvent.objects.get(seq__gt=seq, action="auth.token.created").request_id == generated


def test_reads_write_nothing(tenant):
    client = tenant.client()
    seq = last_seq()
    for path in ("/api/v1/certificates", "/api/v1/ca", "/api/v1/certificate-templates", "/api/v1/projects",
                 "/api/v1/organizations", "/api/v1/audit-logs", "/api/v1/users/tokens"):
        assert client.get(path).status_code == 200
    assert events_since(seq) == []
