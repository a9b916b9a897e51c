"""Appends never wait for each other, and the chain still verifies (PostgreSQL, real row locks).

Each thread has its own database connection (Django connections are per thread). A transaction
that recorded an audit event and stays open stands for a slow request, or for a burst of them:
before the sealer, every append locked the one chain-head row until its COMMIT, so every other
writer in every replica waited behind it. SQLite serialises all writers on one file lock, so these
races only mean something on PostgreSQL; CI runs the suite there.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connections, transaction

from certificates.models import Certificate
from mazevault import audit
from mazevault.models import AuditChainHead, AuditEvent
from tests.factories import csr_body

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
                       reason="the append race needs PostgreSQL row locks (set DATABASE_URL to a PostgreSQL database)"),
]
WAIT = 30


class HeldTransaction(threading.Thread):
    """Records one audit event in a transaction and keeps it open until ``release``."""

    def __init__(self, action: str, **fields) -> None:
        super().__init__(daemon=True)
        self.action, self.fields = action, fields
        self.recorded, self.release = threading.Event(), threading.Event()
        self.event: AuditEvent | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with transaction.atomic():
                self.event = audit.record(self.action, actor="test", **self.fields)
                self.recorded.set()
                self.release.wait(WAIT * 2)
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self.recorded.set()
        finally:
            connections.close_all()


def run_together(calls: list[Callable[[], int]]) -> tuple[list[int | None], list[threading.Thread]]:
    barrier = threading.Barrier(len(calls))
    results: list[int | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], int]) -> None:
        try:
            barrier.wait(timeout=WAIT)
            results[index] = call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not errors, errors
    return results, threads


def issue_call(tenant, cn: str) -> Callable[[], int]:
    client, body = tenant.client(), csr_body(tenant, "client-auth", cn=cn)
    return lambda: client.post("/api/v1/certificates/csr", body, format="json").status_code


def test_twenty_concurrent_issuances_across_two_organisations_commit_and_the_chain_verifies(tenant, other_tenant):
    slow = HeldTransaction("test.slow", organization_id=tenant.org.pk)
    slow.start()
    assert slow.recorded.wait(WAIT) and slow.error is None
    try:
        calls = [issue_call(t, f"race-{t.org.name.lower()}-{i}") for t in (tenant, other_tenant) for i in range(10)]
        statuses, threads = run_together(calls)
        # All 20 committed while an earlier audited transaction is still open: nobody waited on it.
        assert not any(t.is_alive() for t in threads), "an issuance waited for another transaction's audit event"
        assert slow.is_alive()
        assert statuses == [201] * 20
        # A seal while the slow transaction is in flight chains everything committed, and not it.
        audit.seal()
        assert not AuditEvent.objects.filter(action__startswith="cert.", position__isnull=True).exists()
        assert not AuditEvent.objects.filter(pk=slow.event.seq).exists()  # invisible until its commit
    finally:
        slow.release.set()
        slow.join(WAIT)
    assert slow.error is None

    audit.seal()
    report = audit.verify()
    assert report.ok, [p.message for p in report.problems]
    assert report.unsealed == 0 and report.sealed == AuditChainHead.objects.get().count == AuditEvent.objects.count()
    for t in (tenant, other_tenant):
        certs = {str(pk) for pk in Certificate.objects.filter(organization=t.org, status="active")
                 .values_list("pk", flat=True)}
        assert len(certs) == 10
        events = AuditEvent.objects.filter(entity_id__in=certs, organization_id=t.org.pk)
        assert sorted(events.values_list("action", flat=True)) == ["cert.issued"] * 10 + ["cert.requested"] * 10
    # The slow event was inserted first (lowest seq) but committed last: the sealer chained it after
    # the others instead of leaving a hole for it or sealing it out of commit order.
    racers = AuditEvent.objects.filter(action__startswith="cert.", seq__gt=slow.event.seq)
    assert racers.count() == 40
    held = AuditEvent.objects.get(pk=slow.event.seq)
    assert held.position > max(racers.values_list("position", flat=True))
    positions = list(AuditEvent.objects.order_by("position").values_list("position", flat=True))
    assert positions == list(range(1, len(positions) + 1))


def test_open_audited_denials_of_one_tenant_do_not_hold_up_another_tenants_issuance(tenant, other_tenant):
    """The mechanism behind "a burst of 403s must not slow issuance for other tenants"
    (bench/audit_burst.py shows the figures): refusals in flight hold no lock that issuance needs."""
    burst = [HeldTransaction("rbac.permission.denied", organization_id=other_tenant.org.pk,
                             details={"permission": "audit:read", "method": "GET", "path": "/api/v1/audit-logs"})
             for _ in range(5)]
    for held in burst:
        held.start()
    try:
        for held in burst:
            assert held.recorded.wait(WAIT) and held.error is None
        call = issue_call(tenant, "not-held-up")
        statuses, threads = run_together([call])
        assert not threads[0].is_alive(), "issuance waited for the other tenant's audited refusals"
        assert statuses == [201]
        assert all(held.is_alive() for held in burst)
    finally:
        for held in burst:
            held.release.set()
        for held in burst:
            held.join(WAIT)
    audit.seal()
    assert audit.verify().ok
    assert AuditEvent.objects.filter(action="rbac.permission.denied", organization_id=other_tenant.org.pk,
                                     position__isnull=False).count() == 5


def test_concurrent_sealers_chain_each_event_once(tenant, monkeypatch):
    monkeypatch.setattr(audit, "_schedule_seal", lambda: None)  # leave them for the racing sealers
    for i in range(200):
        audit.record("test.bulk", actor="test", details={"i": i})
    pending = AuditEvent.objects.filter(position__isnull=True).count()
    assert pending >= 200
    results, threads = run_together([lambda: audit.seal(limit=37) for _ in range(4)])
    assert not any(t.is_alive() for t in threads)
    # Each event sealed exactly once (a seal the worker runs, when there is one, may take some).
    assert sum(results) <= pending
    assert not AuditEvent.objects.filter(position__isnull=True).exists()
    positions = list(AuditEvent.objects.order_by("position").values_list("position", flat=True))
    assert positions == list(range(1, AuditEvent.objects.count() + 1)) and AuditChainHead.objects.get().count == \
        len(positions)
    assert audit.verify().ok
