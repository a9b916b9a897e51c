"""GET /api/v1/health: no authentication, {status, version, components}, 503 when degraded."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.db import OperationalError
from rest_framework.test import APIClient

from mazevault.api import endpoints


@pytest.mark.django_db
def test_health_needs_no_auth_and_reports_components():
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == settings.VERSION
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["broker"]["status"] == "ok"


@pytest.mark.django_db
def test_health_ignores_a_bad_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer mv_pat_not-a-real-token")
    assert client.get("/api/v1/health").status_code == 200


@pytest.mark.django_db
def test_health_is_503_when_the_database_is_down(monkeypatch):
    class DeadConnection:
        vendor = "postgresql"

        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(endpoints, "connection", DeadConnection())
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["database"] == {"status": "down", "error": "OperationalError"}
    assert body["components"]["broker"]["status"] == "ok"


@pytest.mark.django_db
def test_health_is_degraded_not_503_when_the_broker_is_down(monkeypatch):
    """DESIGN.md: a failing non-essential component is 200 with status degraded naming it."""
    def broker_down():
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(endpoints, "_check_broker", lambda: endpoints._timed(broker_down))
    response = APIClient().get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["components"]["broker"] == {"status": "down", "error": "ConnectionRefusedError"}
