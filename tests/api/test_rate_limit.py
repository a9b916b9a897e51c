"""MAZEVAULT_RATE_LIMIT_API: per token, X-RateLimit-* headers, 429 RATE_LIMITED with Retry-After."""
from __future__ import annotations

import pytest

from mazevault import throttling
from tests.factories import assert_error, unchanged


@pytest.fixture(autouse=True)
def _mid_window(monkeypatch):
    """Counters are fixed windows: pin the clock 30 s into one, so no test straddles a reset."""
    monkeypatch.setattr(throttling.time, "time", lambda: 1_800_000_030.0)


def test_fourth_request_in_a_minute_is_429(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_API = "3/min"
    client = tenant.client()
    for remaining in (2, 1, 0):
        response = client.get("/api/v1/certificates")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == str(remaining)
    response = client.get("/api/v1/certificates")
    body = assert_error(response, 429, "RATE_LIMITED")
    assert int(response["Retry-After"]) == 31  # the window ends in 30 s; the header rounds up
    assert body["details"]["retry_after_seconds"] == int(response["Retry-After"])
    assert response["X-RateLimit-Limit"] == "3" and response["X-RateLimit-Remaining"] == "0"
    # Writes are refused too, before anything happens.
    with unchanged():
        assert_error(client.post("/api/v1/users/tokens", {"name": "x"}, format="json"), 429, "RATE_LIMITED")


def test_limits_are_per_token(tenant, other_tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_API = "1/min"
    assert tenant.client().get("/api/v1/projects").status_code == 200
    assert tenant.client().get("/api/v1/projects").status_code == 429
    assert other_tenant.client().get("/api/v1/projects").status_code == 200


def test_health_is_not_throttled(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_API = "1/min"
    client = tenant.client()
    assert [client.get("/api/v1/health").status_code for _ in range(3)] == [200, 200, 200]


def test_empty_setting_switches_the_limit_off(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_API = ""
    client = tenant.client()
    responses = [client.get("/api/v1/projects") for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert "X-RateLimit-Limit" not in responses[-1]
