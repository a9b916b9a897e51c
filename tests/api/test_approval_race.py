"""Two approvals at the same moment never give two certificates (PostgreSQL, real row locks).

Each thread has its own database connection (Django connections are per thread) and waits on a
barrier, so both approvals reach the service together. SQLite serialises writers on one file lock,
so the race is only meaningful on PostgreSQL; CI runs the suite there.
"""
from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import connections

from certificates.models import Approval, Certificate
from mazevault.models import ApprovalPolicy, AuditEvent
from tests.factories import pending

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
                       reason="the approval race needs PostgreSQL row locks (set DATABASE_URL to a PostgreSQL database)"),
]
ROUNDS = 5


def approve_together(clients, cert_id) -> list[int]:
    barrier = threading.Barrier(len(clients))
    statuses: list[int | None] = [None] * len(clients)
    errors: list[BaseException] = []

    def worker(index, client):
        try:
            barrier.wait(timeout=30)
            statuses[index] = client.post(f"/api/v1/certificates/{cert_id}/approve", {}, format="json").status_code
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an approval hung"
    assert not errors, errors
    return statuses


def issued_events(cert_id: str) -> int:
    return AuditEvent.objects.filter(action="cert.issued", entity_id=cert_id).count()


@pytest.mark.django_db(transaction=True)
def test_two_approvers_racing_one_required_approval_issue_once(tenant):
    _, _, first = tenant.user("certificate_manager", username="racer-1")
    _, _, second = tenant.user("certificate_manager", username="racer-2")
    for round_ in range(ROUNDS):
        cert_id = pending(tenant.client(), tenant, cn=f"race{round_}.acme.test")["id"]
        statuses = approve_together([first, second], cert_id)
        assert sorted(statuses) in ([200, 409], [200, 200]), statuses
        cert = Certificate.objects.get(pk=cert_id)
        assert cert.status == "active" and cert.serial_number
        assert issued_events(cert_id) == 1
        # One serial, one certificate: the loser (409) recorded nothing.
        assert Certificate.objects.filter(serial_number=cert.serial_number).count() == 1
        assert Approval.objects.filter(certificate_id=cert_id).count() == statuses.count(200)


@pytest.mark.django_db(transaction=True)
def test_two_approvers_racing_two_required_approvals_issue_once_with_both(tenant):
    ApprovalPolicy.objects.filter(project=tenant.project).update(required_approvals=2)
    _, _, first = tenant.user("certificate_manager", username="pair-1")
    _, _, second = tenant.user("certificate_manager", username="pair-2")
    for round_ in range(ROUNDS):
        cert_id = pending(tenant.client(), tenant, cn=f"pair{round_}.acme.test")["id"]
        assert approve_together([first, second], cert_id) == [200, 200]
        cert = Certificate.objects.get(pk=cert_id)
        assert cert.status == "active" and cert.serial_number
        assert issued_events(cert_id) == 1
        approvers = set(Approval.objects.filter(certificate_id=cert_id).values_list("approver__username", flat=True))
        assert approvers == {"pair-1", "pair-2"}
        assert AuditEvent.objects.filter(action="cert.approved", entity_id=cert_id).count() == 2
