"""``bootstrap_demo --json`` (idempotent) and ``create_token``."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from certificates.models import CertificateAuthority, CertificateTemplate
from mazevault.models import ApiToken, ApprovalPolicy, Organization, Project, RoleAssignment, hash_token
from tests.conftest import make_csr

KEYS = {"token", "admin_username", "admin_password", "operator_username", "operator_password", "operator_token",
        "organization_id", "project_id", "root_ca_id", "issuing_ca_id", "template_ids"}


def bootstrap(*args: str) -> dict:
    out = StringIO()
    call_command("bootstrap_demo", "--json", *args, stdout=out)
    text = out.getvalue().strip()
    assert "\n" not in text  # one JSON object on one line
    return json.loads(text)


def counts() -> dict:
    return {m.__name__: m.objects.count() for m in (Organization, Project, CertificateAuthority, CertificateTemplate,
                                                    ApprovalPolicy, RoleAssignment, get_user_model())}


def client_for(token: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return c


@pytest.mark.django_db
def test_bootstrap_demo_creates_a_working_tenant(settings):
    settings.MAZEVAULT_DEMO_ADMIN_PASSWORD = "demo-pass-123"
    first = bootstrap()
    assert set(first) == KEYS
    assert set(first["template_ids"]) == {"web-server", "client-auth", "code-signing", "email"}
    assert first["admin_username"] == "admin" and first["admin_password"] == "demo-pass-123"
    assert first["token"].startswith("mv_pat_")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-pass-123")
    org = Organization.objects.get(pk=first["organization_id"])
    project = Project.objects.get(pk=first["project_id"])
    assert (org.name, project.name, project.environment, project.organization_id) == ("Demo", "Demo", "production",
                                                                                        org.pk)
    root = CertificateAuthority.objects.get(pk=first["root_ca_id"])
    issuing = CertificateAuthority.objects.get(pk=first["issuing_ca_id"])
    assert (root.kind, issuing.kind, issuing.parent_id, root.key_type) == ("root", "intermediate", root.pk, "ec-p256")
    templates = {t.name: t for t in CertificateTemplate.objects.filter(project=project)}
    assert {n: str(t.pk) for n, t in templates.items()} == first["template_ids"]
    assert templates["client-auth"].auto_approve and not templates["web-server"].auto_approve
    assert templates["web-server"].extended_key_usage == ["serverAuth"]
    assert templates["email"].extended_key_usage == ["emailProtection"]
    assert templates["code-signing"].extended_key_usage == ["codeSigning"]
    assert {t.ca_id for t in templates.values()} == {issuing.pk}
    assert ApprovalPolicy.objects.get(project=project).required_approvals == 1
    # The token works: a client-auth request is issued at once, a web-server one waits for approval.
    api = client_for(first["token"])
    response = api.post("/api/v1/certificates/csr", {
        "template_id": first["template_ids"]["client-auth"], "project_id": first["project_id"],
        "csr_source_mode": "uploaded", "csr_pem": make_csr("demo-client")}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "active"
    response = api.post("/api/v1/certificates/csr", {
        "template_id": first["template_ids"]["web-server"], "project_id": first["project_id"],
        "csr_source_mode": "uploaded", "csr_pem": make_csr("demo.example.test", dns=["demo.example.test"])},
        format="json")
    assert response.status_code == 201 and response.json()["status"] == "pending_approval"


@pytest.mark.django_db
def test_bootstrap_demo_is_idempotent():
    first = bootstrap()
    assert first["admin_password"] and first["operator_password"]
    before = counts()
    second = bootstrap()
    assert counts() == before
    assert "admin_password" not in second and "operator_password" not in second
    for key in KEYS - {"token", "admin_password", "operator_token", "operator_password"}:
        assert second[key] == first[key], key
    assert second["token"] != first["token"]
    assert client_for(second["token"]).get("/api/v1/projects").status_code == 200
    # Only the newest demo token stays valid.
    assert client_for(first["token"]).get("/api/v1/projects").status_code == 401
    assert ApiToken.objects.get(token_hash=hash_token(first["token"])).revoked_at is not None
    assert client_for(first["operator_token"]).get("/api/v1/projects").status_code == 401
    assert client_for(second["operator_token"]).get("/api/v1/projects").status_code == 200


@pytest.mark.django_db
def test_bootstrap_demo_operator_approves_what_admin_submitted(settings, client):
    """The README's walk-through: the admin submits, the operator (certificate_manager, console
    login, password printed) approves; in the API and in the console."""
    settings.MAZEVAULT_DEMO_OPERATOR_PASSWORD = "operator-pass-123"
    demo = bootstrap()
    assert demo["operator_username"] == "operator" and demo["operator_password"] == "operator-pass-123"
    operator = get_user_model().objects.get(username="operator")
    assert operator.is_staff and not operator.is_superuser and operator.check_password("operator-pass-123")
    assert RoleAssignment.objects.filter(user=operator, role="certificate_manager",
                                         organization_id=demo["organization_id"]).exists()
    tokens = ApiToken.objects.filter(user=operator, revoked_at__isnull=True)
    assert tokens.count() == 1 and tokens.get().expires_at is not None

    def request(cn: str) -> str:
        response = client_for(demo["token"]).post("/api/v1/certificates/csr", {
            "template_id": demo["template_ids"]["web-server"], "project_id": demo["project_id"],
            "csr_source_mode": "uploaded", "csr_pem": make_csr(cn, dns=[cn])}, format="json")
        assert response.status_code == 201 and response.json()["status"] == "pending_approval"
        return response.json()["id"]

    # API: the admin may not approve their own request; the operator may.
    first = request("api.demo.test")
    assert client_for(demo["token"]).post(f"/api/v1/certificates/{first}/approve", {}, format="json").status_code == 403
    approved = client_for(demo["operator_token"]).post(f"/api/v1/certificates/{first}/approve", {}, format="json")
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    # Console: the operator logs in with the printed password and approves from the request's page.
    second = request("console.demo.test")
    assert client.login(username="operator", password="operator-pass-123")
    page = client.post(f"/admin/certificates/certificate/{second}/approve/", {"comment": "ok"})
    assert page.status_code == 302
    assert client_for(demo["token"]).get(f"/api/v1/certificates/{second}").json()["status"] == "active"


def test_run_embedded_offers_the_key_types_bootstrap_demo_accepts():
    from certificates.management.commands import bootstrap_demo
    from mazevault.management.commands import run_embedded

    assert sorted(run_embedded.DEMO_KEY_TYPES) == sorted(bootstrap_demo.KEY_TYPES)


@pytest.mark.django_db
def test_bootstrap_demo_key_type():
    result = bootstrap("--key-type", "ec-p384")
    assert CertificateAuthority.objects.get(pk=result["root_ca_id"]).key_type == "ec-p384"
    assert CertificateAuthority.objects.get(pk=result["issuing_ca_id"]).key_type == "ec-p384"
    with pytest.raises(CommandError):
        bootstrap("--key-type", "dsa-1024")


def create_token(*args: str) -> str:
    out = StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue().strip()


def test_create_token_with_a_project_role(tenant):
    raw = create_token("--user", "bob", "--role", "user", "--project", str(tenant.project.pk))
    assert raw.startswith("mv_pat_") and len(raw.splitlines()) == 1
    bob = get_user_model().objects.get(username="bob")
    assert RoleAssignment.objects.filter(user=bob, role="user", project=tenant.project).exists()
    assert ApiToken.objects.get(token_hash=hash_token(raw)).user == bob
    api = client_for(raw)
    assert api.get("/api/v1/certificates").status_code == 200
    assert [p["id"] for p in api.get("/api/v1/projects").json()["data"]] == [str(tenant.project.pk)]
    denied = api.put(f"/api/v1/projects/{tenant.project.pk}", {"name": "x"}, format="json")
    assert denied.status_code == 403


def test_create_token_for_an_existing_user_without_role(tenant):
    raw = create_token("--user", tenant.admin.username, "--duration", "1h")
    token = ApiToken.objects.get(token_hash=hash_token(raw))
    assert token.user == tenant.admin and token.expires_at is not None
    assert client_for(raw).get("/api/v1/organizations").json()["data"][0]["id"] == str(tenant.org.pk)


@pytest.mark.parametrize("args, message", [
    (["--user", "x", "--role", "user"], "exactly one of"),
    (["--user", "x", "--role", "user", "--project", "00000000-0000-4000-8000-000000000000"], "no such scope"),
    (["--user", "x", "--role", "user", "--project", "not-a-uuid"], "no such scope"),
    (["--user", "x", "--duration", "forever"], "duration"),
])
def test_create_token_errors(tenant, args, message):
    before = ApiToken.objects.count()
    with pytest.raises(CommandError, match=message):
        create_token(*args)
    assert ApiToken.objects.count() == before
