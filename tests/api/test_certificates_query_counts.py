"""SQL statements per request on the hot paths, pinned (issue 6: issuance <= 8 including the
transaction's BEGIN/COMMIT, an authenticated GET of one certificate <= 3, on PostgreSQL with Redis;
the embedded default, SQLite with the database as counter store, within two more).

Measured with the API throttle on (counting, at a high limit) and warm caches, as a long-running
server is; the cache stamp is made due for a re-read before each measured request, so its SELECT is
in the count (the worst case: a process reads it at most once a second). In a test the outer
transaction is pytest-django's, so BEGIN/COMMIT appear as SAVEPOINT/RELEASE: the same count.
"""
from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from mazevault import cache
from tests.conftest import make_csr

# The audit append is in these counts: today audit.batch() costs the chain-head UPDATE plus one
# INSERT (PostgreSQL: INSERT + head move in one statement; SQLite: two).
ISSUE_MAX = 8
GET_MAX = 3
# Without Redis the rate counter is one upsert per request, and SQLite moves the audit head in a
# statement of its own.
EMBEDDED_EXTRA_ISSUE = 2
EMBEDDED_EXTRA_GET = 1


def _budget(base: int, embedded_extra: int) -> int:
    extra = 0
    if not django_settings.REDIS_URL:
        extra += 1  # the counter upsert
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        extra += embedded_extra - 1
    return base + max(0, extra)


def _stamp_due() -> None:
    cache._state.checked_until = 0.0


def _body(tenant, cn: str) -> dict:
    return {"template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr(cn)}


@pytest.fixture
def requester(tenant, settings):
    settings.MAZEVAULT_RATE_LIMIT_API = "100000/min"
    _, _, client = tenant.user("user")
    # Warm up: the token, the roles, the project, the template, the CA and its signer are cached.
    response = client.post("/api/v1/certificates/csr", _body(tenant, "warm.example.com"), format="json")
    assert response.status_code == 201, response.json()
    return client


def test_auto_approved_issuance_statement_count(tenant, requester, django_assert_max_num_queries):
    _stamp_due()
    with django_assert_max_num_queries(_budget(ISSUE_MAX, EMBEDDED_EXTRA_ISSUE)):
        response = requester.post("/api/v1/certificates/csr", _body(tenant, "counted.example.com"), format="json")
    assert response.status_code == 201 and response.json()["status"] == "active"
    assert response["X-RateLimit-Limit"] == "100000"  # the throttle counted this request


def test_issued_row_is_inserted_once_never_updated(tenant, requester, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = requester.post("/api/v1/certificates/csr", _body(tenant, "once.example.com"), format="json")
    assert response.status_code == 201
    on_certificates = [q["sql"] for q in captured.captured_queries if '"certificates_certificate"' in q["sql"]]
    assert len(on_certificates) == 1 and on_certificates[0].startswith("INSERT"), on_certificates


def test_authenticated_get_statement_count(tenant, requester, django_assert_max_num_queries):
    cert_id = requester.post("/api/v1/certificates/csr", _body(tenant, "read.example.com"),
                             format="json").json()["id"]
    requester.get(f"/api/v1/certificates/{cert_id}")
    _stamp_due()
    with django_assert_max_num_queries(_budget(GET_MAX, EMBEDDED_EXTRA_GET)):
        response = requester.get(f"/api/v1/certificates/{cert_id}")
    assert response.status_code == 200 and response.json()["id"] == cert_id
