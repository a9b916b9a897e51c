"""Defect 3: failed sign-ins are limited (MAZEVAULT_RATE_LIMIT_AUTH) per client address and, for
the console, per user name; each attempt is audited. API tokens: a client that used up its failed
attempts gets 429 before any lookup; the console: the login page answers 429 with Retry-After."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from mazevault import cache, throttling
from mazevault.models import AuditEvent
from tests.factories import assert_error, last_seq

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _mid_window(monkeypatch):
    """Counters are fixed windows: pin the clock 30 s into one, so no test straddles a reset."""
    monkeypatch.setattr(throttling.time, "time", lambda: 1_800_000_030.0)

PASSWORD = "correct horse battery staple"


def _bearer(raw: str, ip: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_bad_tokens_are_throttled_per_client_and_audited(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "3/min"
    seq = last_seq()
    for _ in range(3):
        assert_error(_bearer("mv_pat_guess").get("/api/v1/projects"), 401, "AUTH_INVALID")
    response = _bearer("mv_pat_guess").get("/api/v1/projects")
    body = assert_error(response, 429, "RATE_LIMITED")
    assert 1 <= int(response["Retry-After"]) <= 61 and body["details"]["retry_after_seconds"]
    failed = AuditEvent.objects.filter(seq__gt=seq, action="auth.token.failed")
    assert failed.count() == 3 and {e.ip_address for e in failed} == {"203.0.113.7"}
    # Even a genuine token is not looked up for this client until the window ends ...
    assert_error(_bearer(tenant.admin_token).get("/api/v1/projects"), 429, "RATE_LIMITED")
    # ... while other clients are not affected.
    assert _bearer(tenant.admin_token, ip="198.51.100.1").get("/api/v1/projects").status_code == 200


def test_a_token_already_verified_skips_the_limiter(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "1/min"
    assert _bearer(tenant.admin_token).get("/api/v1/projects").status_code == 200  # verified, in memory
    assert_error(_bearer("mv_pat_guess").get("/api/v1/projects"), 401, "AUTH_INVALID")
    assert_error(_bearer("mv_pat_guess").get("/api/v1/projects"), 429, "RATE_LIMITED")
    assert _bearer(tenant.admin_token).get("/api/v1/projects").status_code == 200
    cache.forget()  # once it has to be looked up again, the client's limit applies
    assert_error(_bearer(tenant.admin_token).get("/api/v1/projects"), 429, "RATE_LIMITED")


def test_no_limit_when_the_setting_is_empty(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = ""
    for _ in range(5):
        assert_error(_bearer("mv_pat_guess").get("/api/v1/projects"), 401, "AUTH_INVALID")


def _staff(username: str = "op"):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
    return user


def _login(username: str, password: str, ip: str = "203.0.113.9"):
    return Client(REMOTE_ADDR=ip).post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_admin_login_failures_are_throttled_and_audited(db, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "3/min"
    _staff()
    seq = last_seq()
    for _ in range(3):
        response = _login("op", "wrong")
        assert response.status_code == 200 and b"correct username and password" in response.content
    response = _login("op", PASSWORD)  # the right password, too late
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 61
    assert b"Too many failed sign-in attempts" in response.content
    actions = list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True))
    assert actions == ["auth.login.failed"] * 3 + ["auth.login.throttled"]
    assert AuditEvent.objects.filter(seq__gt=seq, action="auth.login.failed").first().details == {"username": "op"}


def test_admin_login_is_throttled_per_username_across_clients(db, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "2/min"
    _staff()
    _login("op", "wrong", ip="203.0.113.1")
    _login("op", "wrong", ip="203.0.113.2")
    assert _login("op", PASSWORD, ip="203.0.113.3").status_code == 429
    _staff("other")
    assert _login("other", PASSWORD, ip="203.0.113.4").status_code == 302  # another user name is free


def test_admin_login_success_is_audited(db, settings):
    settings.MAZEVAULT_RATE_LIMIT_AUTH = "3/min"
    user = _staff()
    seq = last_seq()
    response = _login("op", PASSWORD)
    assert response.status_code == 302
    event = AuditEvent.objects.get(seq__gt=seq)
    assert event.action == "auth.login.succeeded" and event.actor_id == user.pk


def test_admin_login_page_still_renders(db):
    assert Client().get(LOGIN).status_code == 200
