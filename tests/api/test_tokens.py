"""/api/v1/users/tokens and Bearer authentication: create (shown once), list, revoke, expiry, scopes."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone
from rest_framework.test import APIClient

from mazevault.models import ApiToken, AuditEvent
from tests.factories import assert_error, events_since, last_seq, submit, unchanged

URL = "/api/v1/users/tokens"


def test_create_returns_the_token_once_and_stores_only_its_hash(tenant):
    client = tenant.client()
    seq = last_seq()
    response = client.post(URL, {"name": "ci", "scopes": ["certificate:read"], "duration": "24h"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    raw = body["token"]
    assert raw.startswith("mv_pat_") and len(raw) >= 40
    assert body["scopes"] == ["certificate:read"] and body["name"] == "ci"
    token = ApiToken.objects.get(pk=body["id"])
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(token.token_prefix) and len(token.token_prefix) < len(raw)
    expected_expiry = timezone.now() + timedelta(hours=24)
    assert abs((token.expires_at - expected_expiry).total_seconds()) < 60
    # The raw value is in no stored row: not the token, not the audit log.
    assert not ApiToken.objects.filter(Q(token_hash=raw) | Q(token_prefix=raw) | Q(name=raw)).exists()
    assert not any(raw in str(e.details) for e in AuditEvent.objects.all())
    [event] = events_since(seq, action="auth.token.created")
    assert event.entity_id == str(token.pk) and event.actor_id == tenant.admin.pk
    # Listed afterwards without the secret.
    listed = client.get(URL).json()["data"]
    assert str(token.pk) in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)
    assert raw not in client.get(URL).content.decode()
    # It works.
    assert tenant.client(raw).get("/api/v1/certificates").status_code == 200


def test_list_shows_only_my_tokens(tenant, other_tenant):
    body = tenant.client().get(URL).json()
    owners = set(ApiToken.objects.filter(pk__in=[t["id"] for t in body["data"]]).values_list("user_id", flat=True))
    assert owners == {tenant.admin.pk}


def test_revoke_then_the_token_is_refused(tenant):
    client = tenant.client()
    created = client.post(URL, {"name": "short"}, format="json").json()
    other = tenant.client(created["token"])
    assert other.get("/api/v1/projects").status_code == 200
    seq = last_seq()
    assert client.delete(f"{URL}/{created['id']}").status_code == 204
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is not None
    assert [e.action for e in events_since(seq)] == ["auth.token.revoked"]
    response = other.get("/api/v1/projects")
    assert_error(response, 401, "AUTH_INVALID")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.delete(f"{URL}/{created['id']}"), 409, "RESOURCE_CONFLICT")


def test_revoke_someone_elses_token_is_404(tenant, other_tenant):
    theirs = ApiToken.objects.filter(user=other_tenant.admin).first()
    with unchanged(theirs):
        assert_error(tenant.client().delete(f"{URL}/{theirs.pk}"), 404, "RESOURCE_NOT_FOUND")


def test_expired_token_is_auth_expired(tenant):
    created = tenant.client().post(URL, {"name": "brief", "duration": "1h"}, format="json").json()
    ApiToken.objects.filter(pk=created["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(tenant.client(created["token"]).get("/api/v1/projects"), 401, "AUTH_EXPIRED")


@pytest.mark.parametrize("header, code", [
    (None, "AUTH_REQUIRED"),
    ("Bearer mv_pat_doesnotexist", "AUTH_INVALID"),
    ("Bearer not-our-prefix", "AUTH_INVALID"),
    ("Bearer", "AUTH_INVALID"),
    ("Bearer a b", "AUTH_INVALID"),
])
def test_missing_or_bad_credentials_are_401(tenant, header, code):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    # Nothing changes but the audit log: a failed token attempt is recorded (defect 3).
    with unchanged(audit=("auth.token.failed",) if header else ()):
        assert_error(client.get("/api/v1/certificates"), 401, code)


def test_inactive_user_token_is_refused(tenant):
    tenant.admin.is_active = False
    tenant.admin.save(update_fields=["is_active"])
    assert_error(tenant.client().get("/api/v1/projects"), 401, "AUTH_INVALID")


def test_scoped_token_cannot_exceed_its_scopes(tenant):
    scopes = ["project:read", "template:read", "certificate:read"]
    raw = tenant.client().post(URL, {"name": "reader", "scopes": scopes}, format="json").json()["token"]
    reader = tenant.client(raw)
    assert reader.get("/api/v1/certificates").status_code == 200
    assert [p["id"] for p in reader.get("/api/v1/projects").json()["data"]] == [str(tenant.project.pk)]
    # Its user is an org admin, but the token only reads.
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = submit(reader, tenant)
    assert_error(response, 403, "PERMISSION_DENIED")
    assert events_since(seq)[0].details["permission"] == "certificate:request"
    with unchanged(audit=("rbac.permission.denied",)):
        assert_error(reader.get("/api/v1/audit-logs"), 403, "PERMISSION_DENIED")
    # Organizations are not in its scopes: invisible.
    assert reader.get("/api/v1/organizations").json()["data"] == []
    # It cannot mint a token wider than itself (nor an unscoped one), only a subset.
    for wider in ([*scopes, "certificate:request"], []):
        with unchanged(audit=("rbac.permission.denied",)):
            assert_error(reader.post(URL, {"name": "wider", "scopes": wider}, format="json"), 403,
                         "PERMISSION_DENIED")
    narrower = reader.post(URL, {"name": "subset", "scopes": ["certificate:read"]}, format="json")
    assert narrower.status_code == 201


@pytest.mark.parametrize("body, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x", "scopes": ["certificate:everything"]}, "scopes"),
    ({"name": "x", "scopes": "certificate:read"}, "scopes"),
    ({"name": "x", "duration": "forever"}, "duration"),
    ({"name": "x", "duration": "0d"}, "duration"),
    ({"name": "x", "duration": "100000d"}, "duration"),
    ({"name": "x", "duration": 30}, "duration"),
])
def test_bad_input_names_the_field(tenant, body, field):
    with unchanged():
        assert_error(tenant.client().post(URL, body, format="json"), 400, "VALIDATION_ERROR", field)


def test_auth_rate_limit_on_token_creation(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "2/min"
    client = tenant.client()
    assert client.post(URL, {"name": "a"}, format="json").status_code == 201
    assert client.post(URL, {"name": "b"}, format="json").status_code == 201
    with unchanged():
        response = client.post(URL, {"name": "c"}, format="json")
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response["Retry-After"]) >= 1


# --- Defect 2: every token expires, and a token cannot mint a longer-lived or broader one ---------
def _expiry(body: dict) -> timedelta:
    return ApiToken.objects.get(pk=body["id"]).expires_at - timezone.now()


def test_token_without_duration_gets_the_default_lifetime(tenant, settings):
    settings.MAZEVAULT_DEFAULT_TOKEN_DAYS = 30
    body = tenant.client().post(URL, {"name": "no-duration"}, format="json").json()
    assert abs(_expiry(body) - timedelta(days=30)) < timedelta(minutes=1)
    assert body["expires_at"] is not None


def test_token_duration_above_the_maximum_is_refused(tenant, settings):
    settings.MAZEVAULT_MAX_TOKEN_DAYS = 10
    with unchanged():
        body = assert_error(tenant.client().post(URL, {"name": "long", "duration": "11d"}, format="json"), 400,
                            "VALIDATION_ERROR", "duration")
    assert body["details"]["reason"] == "exceeds_maximum"


def test_token_cannot_outlive_the_token_that_mints_it(tenant):
    short = tenant.client().post(URL, {"name": "short", "duration": "2h"}, format="json").json()
    minted_by_short = tenant.client(short["token"])
    with unchanged():
        body = assert_error(minted_by_short.post(URL, {"name": "longer", "duration": "30d"}, format="json"), 400,
                            "VALIDATION_ERROR", "duration")
    assert body["details"]["reason"] == "exceeds_creator_token"
    # Without a duration it gets the default, shortened to the creator's own expiry.
    child = minted_by_short.post(URL, {"name": "child"}, format="json")
    assert child.status_code == 201, child.json()
    parent_expiry = ApiToken.objects.get(pk=short["id"]).expires_at
    assert ApiToken.objects.get(pk=child.json()["id"]).expires_at == parent_expiry
    # A shorter explicit duration is fine.
    assert minted_by_short.post(URL, {"name": "briefer", "duration": "1h"}, format="json").status_code == 201


def test_scoped_token_denial_names_what_it_does_not_hold(tenant):
    raw = tenant.client().post(URL, {"name": "reader", "scopes": ["certificate:read"]}, format="json").json()["token"]
    seq = last_seq()
    response = tenant.client(raw).post(URL, {"name": "wider", "scopes": ["certificate:read", "ca:admin"]},
                                       format="json")
    body = assert_error(response, 403, "PERMISSION_DENIED")
    assert body["details"]["not_held"] == ["ca:admin"]
    assert [e.action for e in events_since(seq)] == ["rbac.permission.denied"]


def test_create_token_service_always_sets_an_expiry(tenant, settings):
    from mazevault import services

    settings.MAZEVAULT_DEFAULT_TOKEN_DAYS = 7
    token, _ = services.create_token(user=tenant.admin, name="svc", actor="test")
    assert abs(token.expires_at - timezone.now() - timedelta(days=7)) < timedelta(minutes=1)
