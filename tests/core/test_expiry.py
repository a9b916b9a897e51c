"""The status sweep: active certificates past notAfter become expired (service and beat task)."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from certificates import services, tasks
from certificates.models import Certificate
from tests.factories import events_since, issued, last_seq, pending


def backdate(cert_id: str, **delta) -> None:
    Certificate.objects.filter(pk=cert_id).update(not_after=timezone.now() - timedelta(**delta))


def test_expire_certificates_moves_only_past_active_ones(tenant):
    client = tenant.client()
    old = issued(client, tenant, cn="old")["id"]
    older = issued(client, tenant, cn="older")["id"]
    fresh = issued(client, tenant, cn="fresh")["id"]
    waiting = pending(client, tenant)["id"]
    backdate(old, minutes=1)
    backdate(older, days=30)
    Certificate.objects.filter(pk=waiting).update(not_after=timezone.now() - timedelta(days=1))
    seq = last_seq()
    assert services.expire_certificates() == 2
    status = dict(Certificate.objects.values_list("id", "status"))
    assert {str(k): v for k, v in status.items()} == {old: "expired", older: "expired", fresh: "active",
                                                      waiting: "pending_approval"}
    events = events_since(seq)
    assert sorted((e.action, e.entity_id, e.actor_name) for e in events) == sorted(
        [("cert.expired", old, "system"), ("cert.expired", older, "system")])
    # Idempotent: a second sweep finds nothing.
    assert services.expire_certificates() == 0
    assert client.get("/api/v1/certificates", {"status": "expired"}).json()["pagination"]["total"] == 2
    assert client.get("/api/v1/certificates", {"expiring_within_days": 3650}).json()["pagination"]["total"] == 1


def test_expire_certificates_in_batches(tenant):
    ids = [issued(tenant.client(), tenant, cn=f"batch-{i}")["id"] for i in range(3)]
    for cert_id in ids:
        backdate(cert_id, hours=1)
    assert services.expire_certificates(batch_size=2) == 3
    assert set(Certificate.objects.values_list("status", flat=True)) == {"expired"}


def test_sweep_task_runs_the_service(tenant):
    cert_id = issued(tenant.client(), tenant, cn="task")["id"]
    backdate(cert_id, seconds=1)
    result = tasks.sweep_expired.apply()  # executes in-process (eagerly) whatever the broker
    assert result.successful() and result.get() == 1
    assert Certificate.objects.get(pk=cert_id).status == "expired"


def test_sweep_is_scheduled_by_beat(settings):
    tasks_in_schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "certificates.sweep_expired" in tasks_in_schedule
