"""Revocations and CRL generations racing on PostgreSQL (real row locks, one connection per thread):
every revoked serial reaches the next full CRL, numbers strictly increase, none is used twice, and a
delta always names the newest full CRL as its base."""
from __future__ import annotations

import threading

import pytest
from cryptography import x509
from django.conf import settings
from django.db import connections
from rest_framework.test import APIClient

from certificates.models import Certificate
from certificates.pki import formats
from crl import services
from crl.models import CRL
from mazevault.models import AuditEvent
from tests.factories import issued

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
                       reason="the revocation race needs PostgreSQL row locks (set DATABASE_URL to a PostgreSQL database)"),
]
REVOCATIONS = 50
GENERATIONS = 8


def run_together(jobs) -> None:
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def worker(job):
        try:
            barrier.wait(timeout=60)
            job()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a revocation or generation hung"
    assert not errors, errors


def serials(der: bytes) -> set[str]:
    return {formats.format_serial(e.serial_number) for e in x509.load_der_x509_crl(der)}


@pytest.mark.django_db(transaction=True)
def test_parallel_revocations_and_generations(tenant, settings):
    settings.MAZEVAULT_CRL_COALESCE_SECONDS = 0
    ca = tenant.issuing
    certs = [issued(tenant.client(), tenant, cn=f"race-{i}")["id"] for i in range(REVOCATIONS)]
    base = services.publish_crl(ca, kind="full")
    statuses: list[int] = []

    def revoke(cert_id):
        def job():
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.admin_token}")
            statuses.append(client.post(f"/api/v1/certificates/{cert_id}/revoke", {"reason": "superseded"},
                                        format="json").status_code)
        return job

    def generate(kind):
        def job():
            services.publish_crl(type(ca).objects.select_related("key").get(pk=ca.pk), kind=kind)
        return job

    jobs = [revoke(c) for c in certs] + [generate("full" if i % 2 else "delta") for i in range(GENERATIONS)]
    run_together(jobs)
    assert statuses == [200] * REVOCATIONS

    expected = set(Certificate.objects.filter(pk__in=certs).values_list("serial_number", flat=True))
    full = services.publish_crl(ca, kind="full")
    assert serials(services.crl_der(full)) == expected
    newest = services.publish_crl(ca, kind="delta")
    assert newest.base_number == full.number
    # Every generation got its own number, consecutively, and content never went backwards.
    numbers = sorted(e.details["number"] for e in AuditEvent.objects.filter(action="crl.generated",
                                                                            entity_id=str(ca.pk)))
    assert len(numbers) == len(set(numbers)) and numbers == list(range(numbers[0], numbers[-1] + 1))
    rows = list(CRL.objects.filter(ca=ca).order_by("number").values_list("number", "max_revocation_id", "this_update"))
    assert all(a[1] <= b[1] and a[2] <= b[2] for a, b in zip(rows, rows[1:])), rows
    assert base.number < full.number
