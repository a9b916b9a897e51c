"""The sealer runs wherever the service runs: in-process with eager tasks (the embedded test mode)
and in a REAL Celery worker (the ``celery_worker_process`` session fixture, when a broker is set).

Rows are committed (``transaction=True``): sealing starts from the commit, and the worker is another
process with its own connection.
"""
from __future__ import annotations

import time

import pytest
from celery.result import AsyncResult, EagerResult
from django.conf import settings

from mazevault import audit
from mazevault.models import AuditEvent
from mazevault.tasks import seal_audit_log
from tests.factories import csr_body

pytestmark = pytest.mark.django_db(transaction=True)


def _issue(tenant, cn: str) -> str:
    response = tenant.client().post("/api/v1/certificates/csr", csr_body(tenant, "client-auth", cn=cn), format="json")
    assert response.status_code == 201, response.content[:300]
    return response.json()["id"]


@pytest.mark.skipif(not settings.CELERY_TASK_ALWAYS_EAGER, reason="a broker is configured: tasks are not eager")
def test_eager_mode_seals_each_commit_before_the_request_returns(tenant):
    cert_id = _issue(tenant, "eager-seal")
    events = AuditEvent.objects.filter(entity_id=cert_id).order_by("position")
    assert [e.action for e in events] == ["cert.requested", "cert.issued"]
    assert all(e.position and e.chain_hash for e in events)
    assert not AuditEvent.objects.filter(position__isnull=True).exists()
    assert audit.verify().ok


@pytest.mark.skipif(not settings.CELERY_TASK_ALWAYS_EAGER, reason="a broker is configured: tasks are not eager")
def test_an_eager_task_that_commits_many_times_is_sealed_once_when_it_returns(tenant, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from certificates.models import Certificate
    from certificates.tasks import sweep_expired

    ids = [_issue(tenant, f"sweep-{i}") for i in range(3)]
    Certificate.objects.filter(pk__in=ids).update(not_after=timezone.now() - timedelta(minutes=1))
    seals = []
    real_seal = audit.seal
    monkeypatch.setattr(audit, "seal", lambda **kw: seals.append(real_seal(**kw)) or seals[-1])
    assert sweep_expired.delay().get() == 3  # three transactions, one cert.expired event each
    assert seals == [3]
    assert AuditEvent.objects.filter(action="cert.expired", position__isnull=False).count() == 3
    assert audit.verify().ok


@pytest.mark.worker
def test_the_worker_seals_what_the_api_committed_within_seconds(celery_worker_process, tenant):
    cert_id = _issue(tenant, "worker-seal")
    deadline = time.monotonic() + 30
    while AuditEvent.objects.filter(position__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # nothing seals in this process: the commit queued the task for the worker
    assert not AuditEvent.objects.filter(position__isnull=True).exists(), "the worker never sealed the events"
    assert AuditEvent.objects.filter(entity_id=cert_id, position__isnull=False).count() == 2
    report = audit.verify()
    assert report.ok and report.sealed == AuditEvent.objects.count()


@pytest.mark.worker
def test_the_seal_task_runs_in_the_worker_and_is_idempotent(celery_worker_process, tenant, monkeypatch):
    monkeypatch.setattr(audit, "_schedule_seal", lambda: None)  # only the explicit task below seals
    for i in range(5):
        audit.record("test.worker", actor="test", details={"i": i})
    pending = AuditEvent.objects.filter(position__isnull=True).count()
    result = seal_audit_log.delay()
    assert isinstance(result, AsyncResult) and not isinstance(result, EagerResult)
    # A seal the tenant's set-up queued may still run first and take some of them.
    assert 0 <= result.get(timeout=60) <= pending
    assert not AuditEvent.objects.filter(position__isnull=True).exists()
    assert seal_audit_log.delay().get(timeout=60) == 0
    assert audit.verify().ok
