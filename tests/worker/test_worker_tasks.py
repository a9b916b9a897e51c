"""Tasks executed by a REAL Celery worker process (the ``celery_worker_process`` session fixture).

These tests commit their rows (``transaction=True``) because the worker is another process with its
own database connection; they skip locally without a configured broker and fail under CI=true.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from celery.result import AsyncResult, EagerResult
from django.utils import timezone

from certificates.models import Certificate
from certificates.tasks import sweep_expired
from mazevault.audit import seal, verify_chain
from mazevault.models import AuditEvent, IdempotencyRecord
from mazevault.tasks import purge_idempotency_keys
from tests.conftest import Tenant, make_csr

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TASK_TIMEOUT = 60


def _issue(tenant: Tenant, common_name: str) -> Certificate:
    """An active certificate issued through the API (client-auth is auto-approved)."""
    response = tenant.client().post("/api/v1/certificates/csr", {
        "template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "uploaded_csr", "csr_pem": make_csr(common_name),
    }, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "active"
    return Certificate.objects.get(pk=response.json()["id"])


def _run_in_worker(task, *args) -> object:
    """Queue ``task`` on the broker and wait for the worker's result (never executed in-process)."""
    result = task.delay(*args)
    assert isinstance(result, AsyncResult) and not isinstance(result, EagerResult), \
        "the task ran eagerly in the test process instead of in the worker"
    return result.get(timeout=TASK_TIMEOUT)


def test_worker_sweep_moves_only_past_expiry_certificates_to_expired(celery_worker_process, tenant):
    lapsed = _issue(tenant, "lapsed.worker.test")
    current = _issue(tenant, "current.worker.test")
    Certificate.objects.filter(pk=lapsed.pk).update(not_after=timezone.now() - timedelta(minutes=5))

    moved = _run_in_worker(sweep_expired)

    assert moved == 1
    lapsed.refresh_from_db()
    current.refresh_from_db()
    assert lapsed.status == "expired"
    assert current.status == "active"
    event = AuditEvent.objects.get(action="cert.expired", entity_id=str(lapsed.pk))
    assert event.actor_name == "system"
    assert not AuditEvent.objects.filter(action="cert.expired", entity_id=str(current.pk)).exists()
    seal()  # the worker may not have sealed the newest events yet
    checked, broken = verify_chain()
    assert broken is None and checked >= 3  # the worker's event chains onto the API's events


def test_worker_sweep_is_idempotent(celery_worker_process, tenant):
    lapsed = _issue(tenant, "again.worker.test")
    Certificate.objects.filter(pk=lapsed.pk).update(not_after=timezone.now() - timedelta(seconds=1))

    assert _run_in_worker(sweep_expired) == 1
    assert _run_in_worker(sweep_expired) == 0

    lapsed.refresh_from_db()
    assert lapsed.status == "expired"
    assert AuditEvent.objects.filter(action="cert.expired", entity_id=str(lapsed.pk)).count() == 1


def test_worker_purges_idempotency_keys(celery_worker_process, tenant):
    # Two committed requests with an Idempotency-Key leave two stored responses; the purge task, run by
    # the worker, must remove exactly the one older than MAZEVAULT_IDEMPOTENCY_TTL_HOURS.
    response = tenant.client().post("/api/v1/certificates/csr", {
        "template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("idem.worker.test"),
    }, format="json", HTTP_IDEMPOTENCY_KEY="worker-purge-old")
    assert response.status_code == 201
    response = tenant.client().post("/api/v1/certificates/csr", {
        "template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "uploaded_csr", "csr_pem": make_csr("idem2.worker.test"),
    }, format="json", HTTP_IDEMPOTENCY_KEY="worker-purge-fresh")
    assert response.status_code == 201
    assert IdempotencyRecord.objects.count() == 2
    IdempotencyRecord.objects.filter(key="worker-purge-old").update(created_at=timezone.now() - timedelta(days=30))

    purged = _run_in_worker(purge_idempotency_keys)

    assert purged == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["worker-purge-fresh"]


def test_worker_publishes_crls_after_a_burst_of_revocations_coalesced(celery_worker_process, tenant):
    """30 revocations in a burst: the worker publishes a handful of CRL sets (not 30), the last listing all."""
    import time as _time

    from cryptography import x509

    from certificates.pki import formats
    from crl.models import CRL

    certs = [_issue(tenant, f"burst-{i}.worker.test") for i in range(30)]
    before = AuditEvent.objects.filter(action="crl.generated", entity_id=str(tenant.issuing.pk)).count()
    for cert in certs:
        response = tenant.client().post(f"/api/v1/certificates/{cert.pk}/revoke", {"reason": "superseded"},
                                        format="json")
        assert response.status_code == 200, response.json()
    wanted = {c.serial_number for c in Certificate.objects.filter(pk__in=[c.pk for c in certs])}
    deadline = _time.monotonic() + TASK_TIMEOUT
    listed: set[str] = set()
    while _time.monotonic() < deadline:
        latest = CRL.objects.filter(ca=tenant.issuing, kind="full", shard=None).order_by("-number").first()
        if latest is not None:
            listed = {formats.format_serial(e.serial_number) for e in x509.load_der_x509_crl(bytes(latest.der))}
            if listed >= wanted:
                break
        _time.sleep(0.5)
    assert listed >= wanted, f"{len(wanted - listed)} revoked serials missing from the latest full CRL"
    _time.sleep(3)  # let any straggling run finish before counting
    published = AuditEvent.objects.filter(action="crl.generated", entity_id=str(tenant.issuing.pk)).count() - before
    assert 2 <= published <= 12, published  # full + delta per run; without coalescing it would be 60
