"""The per-process caches (mazevault/cache.py) never outlive a change: a revoked token, a removed
role, a deactivated user, a disabled template or a renewed CA certificate take effect at once in
the process that changed them, within ``POLL_SECONDS`` in every other one (simulated here by
moving the shared stamp as another replica's commit would), and an unreadable stamp means the
database is read instead of the cache."""
from __future__ import annotations

from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from certificates import services as cert_services
from certificates.models import CertificateAuthority
from certificates.pki import formats
from mazevault import cache, services
from mazevault.models import ApiToken, RoleAssignment
from tests.conftest import make_csr
from tests.factories import assert_error


def _other_replica_commits_a_change() -> None:
    """What another process's bump looks like from here: the stamp row moved, nothing else."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE mazevault_cachestamp SET version = version + 7 WHERE id = 1")


def _token_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/api/v1/projects").status_code == 200
    return sum('"mazevault_apitoken"' in q["sql"] and q["sql"].startswith("SELECT") for q in captured.captured_queries)


def test_a_cached_token_is_not_read_again(tenant):
    _, _, client = tenant.user("user")
    client.get("/api/v1/projects")  # fills the cache
    cache._state.checked_until = 0.0  # even with the stamp re-read
    assert _token_queries(client) == 0


def test_revoked_token_is_rejected_at_once(tenant):
    user, raw, client = tenant.user("user")
    assert client.get("/api/v1/projects").status_code == 200  # cached now
    services.revoke_token(ApiToken.objects.get(user=user), actor=user)
    assert_error(client.get("/api/v1/projects"), 401, "AUTH_INVALID")


def test_revocation_by_another_replica_is_seen_when_the_stamp_is_next_read(tenant, monkeypatch):
    user, raw, client = tenant.user("user")
    assert client.get("/api/v1/projects").status_code == 200
    # Another replica revokes the token: the row and the stamp change, this process is not told.
    ApiToken.objects.filter(user=user).update(revoked_at="2026-01-01T00:00:00Z")
    _other_replica_commits_a_change()
    # Within POLL_SECONDS of the last stamp read the cache may still answer; once it is due
    # (at most POLL_SECONDS later) the token is refused.
    cache._state.checked_until = 0.0
    assert_error(client.get("/api/v1/projects"), 401, "AUTH_INVALID")


def test_removed_role_takes_effect(tenant):
    user, _, client = tenant.user("user")
    assert [p["id"] for p in client.get("/api/v1/projects").json()["data"]] == [str(tenant.project.pk)]
    RoleAssignment.objects.filter(user=user).delete()
    assert client.get("/api/v1/projects").json()["data"] == []
    assert_error(client.get(f"/api/v1/projects/{tenant.project.pk}"), 404, "RESOURCE_NOT_FOUND")


def test_added_role_takes_effect(tenant):
    user, _, client = tenant.user("viewer")
    body = {"template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("late.example.com")}
    assert_error(client.post("/api/v1/certificates/csr", body, format="json"), 403, "PERMISSION_DENIED")
    services.assign_role(user=user, role="user", project=tenant.project, actor="test")
    assert client.post("/api/v1/certificates/csr", body, format="json").status_code == 201


def test_deactivated_user_is_refused(tenant):
    user, _, client = tenant.user("user")
    assert client.get("/api/v1/projects").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(client.get("/api/v1/projects"), 401, "AUTH_INVALID")


def test_disabled_template_is_refused_at_once(tenant):
    _, _, client = tenant.user("user")
    template = tenant.templates["client-auth"]
    body = {"template_id": str(template.pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("one.example.com")}
    assert client.post("/api/v1/certificates/csr", body, format="json").status_code == 201
    template.is_active = False
    template.save(update_fields=["is_active", "updated_at"])
    body["csr_pem"] = make_csr("two.example.com")
    assert_error(client.post("/api/v1/certificates/csr", body, format="json"), 409, "RESOURCE_CONFLICT")


def test_stamp_store_down_means_the_database(tenant, monkeypatch):
    user, _, client = tenant.user("user")
    assert client.get("/api/v1/projects").status_code == 200  # cached
    ApiToken.objects.filter(user=user).update(revoked_at="2026-01-01T00:00:00Z")  # no bump: only the DB knows

    def unreachable():
        raise DatabaseError("stamp store unreachable")

    monkeypatch.setattr(cache, "_read_stamp", unreachable)
    cache._state.checked_until = 0.0
    assert cache.current_version() is None
    # The cache is not trusted: the token is read from the database, where it is revoked.
    assert_error(client.get("/api/v1/projects"), 401, "AUTH_INVALID")


def test_stamp_store_down_still_serves_valid_tokens_from_the_database(tenant, monkeypatch):
    _, _, client = tenant.user("user")
    assert client.get("/api/v1/projects").status_code == 200
    monkeypatch.setattr(cache, "_read_stamp", lambda: (_ for _ in ()).throw(DatabaseError("down")))
    cache._state.checked_until = 0.0
    assert _token_queries(client) == 1  # read every time, never from memory
    assert _token_queries(client) == 1


def test_renewed_ca_certificate_reaches_new_chains(tenant):
    """Defect 7a: the chain PEM cached per process follows a CA certificate's renewal."""
    _, _, client = tenant.user("user")
    body = {"template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("before.example.com")}
    first = client.post("/api/v1/certificates/csr", body, format="json").json()
    assert first["chain_pem"] == tenant.issuing.certificate_pem + tenant.root.certificate_pem
    # The root is re-issued (same key, new certificate): a new root PEM on the same row.
    new_root = cert_services.create_ca(cert_services.CASpec(
        name="Replacement", subject={"common_name": "Acme Root CA", "organization": "Acme"}, path_length=1),
        actor=tenant.admin, organization=tenant.org)
    root = CertificateAuthority.objects.get(pk=tenant.root.pk)
    root.certificate_pem = new_root.certificate_pem
    root.save(update_fields=["certificate_pem", "updated_at"])
    body["csr_pem"] = make_csr("after.example.com")
    second = client.post("/api/v1/certificates/csr", body, format="json").json()
    assert second["chain_pem"] == tenant.issuing.certificate_pem + new_root.certificate_pem
    assert formats.cert_to_pem(cert_services.ca_certificate(root)) == new_root.certificate_pem


def test_revoked_issuing_ca_stops_issuing_at_once(tenant):
    """revoke_ca changes the CA with QuerySet.update(): it must move the stamp itself."""
    from certificates import revocation

    _, _, client = tenant.user("user")
    body = {"template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("early.example.com")}
    assert client.post("/api/v1/certificates/csr", body, format="json").status_code == 201  # CA cached
    revocation.revoke_ca(tenant.issuing, actor=tenant.admin, reason=1)
    body["csr_pem"] = make_csr("late.example.com")
    assert_error(client.post("/api/v1/certificates/csr", body, format="json"), 409, "RESOURCE_CONFLICT")
