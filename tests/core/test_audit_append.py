"""Appending audit events: one INSERT, no shared row, savepoint-exact, and a seal queued on commit."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from mazevault import audit
from mazevault.models import AuditEvent
from mazevault.tasks import seal_audit_log
from tests.factories import csr_body


def _statements(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries]


def test_record_is_one_insert_that_touches_no_shared_row(db):
    with CaptureQueriesContext(connection) as ctx:
        audit.record("test.event", actor="t", entity=("thing", "1"), organization_id=None)
    sql = _statements(ctx)
    assert len(sql) == 1 and sql[0].startswith('INSERT INTO "mazevault_auditevent"'), sql
    assert not any("auditchainhead" in s for s in sql)


def test_a_batch_is_one_insert_in_record_order(db):
    with transaction.atomic():
        with CaptureQueriesContext(connection) as ctx, audit.batch():
            first = audit.record("test.first", actor="t")
            second = audit.record("test.second", actor="t")
            assert AuditEvent.objects.filter(action__startswith="test.").count() == 0  # deferred
    inserts = [s for s in _statements(ctx) if s.startswith("INSERT")]
    assert len(inserts) == 1 and not any("auditchainhead" in s for s in _statements(ctx))
    assert first.seq < second.seq
    assert list(AuditEvent.objects.filter(action__startswith="test.").order_by("seq")
                .values_list("action", flat=True)) == ["test.first", "test.second"]


def test_an_issuance_costs_the_audit_log_one_insert(tenant, django_assert_max_num_queries):
    body = csr_body(tenant, "client-auth", cn="one-insert")
    client = tenant.client()
    with CaptureQueriesContext(connection) as ctx:
        response = client.post("/api/v1/certificates/csr", body, format="json")
    assert response.status_code == 201 and response.json()["status"] == "active"
    audit_sql = [s for s in _statements(ctx) if "mazevault_audit" in s]
    assert len(audit_sql) == 1 and audit_sql[0].startswith('INSERT INTO "mazevault_auditevent"'), audit_sql
    assert AuditEvent.objects.filter(entity_id=response.json()["id"]).count() == 2  # requested + issued


def test_an_event_recorded_in_a_savepoint_that_rolls_back_never_exists(db):
    with transaction.atomic():
        kept = audit.record("test.kept", actor="t")
        try:
            with transaction.atomic():
                audit.record("test.dropped", actor="t")
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
    assert audit.seal() == 1
    assert list(AuditEvent.objects.filter(action__startswith="test.").values_list("action", flat=True)) \
        == ["test.kept"]
    kept.refresh_from_db()
    assert kept.position == 1


def test_a_batched_event_recorded_in_a_savepoint_that_rolls_back_is_neither_inserted_nor_chained(db):
    # Before the sealer, batch() held every event in memory and inserted them all at the end,
    # including those whose savepoint had rolled back.
    with transaction.atomic(), audit.batch():
        audit.record("test.before", actor="t")
        try:
            with transaction.atomic():
                audit.record("test.in_savepoint", actor="t")
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        with transaction.atomic():
            audit.record("test.in_released_savepoint", actor="t")
        audit.record("test.after", actor="t")
    audit.seal()
    chained = list(AuditEvent.objects.order_by("position").values_list("action", flat=True))
    assert chained == ["test.in_released_savepoint", "test.before", "test.after"]
    assert audit.verify().ok


def test_a_batch_whose_block_raises_records_nothing(db):
    with pytest.raises(RuntimeError):
        with transaction.atomic(), audit.batch():
            audit.record("test.lost", actor="t")
            raise RuntimeError("the work failed")
    assert not AuditEvent.objects.filter(action="test.lost").exists()


def test_a_nested_batch_joins_the_outer_one(db):
    with transaction.atomic():
        with CaptureQueriesContext(connection) as ctx, audit.batch():
            audit.record("test.outer", actor="t")
            with audit.batch():
                audit.record("test.inner", actor="t")
            assert not AuditEvent.objects.filter(action__startswith="test.").exists()
    assert len([s for s in _statements(ctx) if s.startswith("INSERT")]) == 1


def test_the_commit_queues_one_seal_per_insert(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic(), audit.batch():
            audit.record("test.a", actor="t")
            audit.record("test.b", actor="t")
    assert callbacks == [audit._schedule_seal]


def test_a_commit_seals_at_once_in_eager_mode(db, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setitem(seal_audit_log.app.conf, "task_always_eager", True)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event = audit.record("test.eager", actor="t")
    event.refresh_from_db()
    assert event.position == 1 and event.chain_hash


def test_commits_within_the_delay_ride_on_one_queued_seal(db, monkeypatch):
    """With a broker, a commit queues the seal SEAL_DELAY ahead; commits before that run starts
    need no message of their own (it starts after them), later ones queue the next."""
    monkeypatch.setitem(seal_audit_log.app.conf, "task_always_eager", False)
    monkeypatch.setattr(audit, "_kick_until", 0.0)
    queued: list[dict] = []
    monkeypatch.setattr(seal_audit_log, "apply_async", lambda **kwargs: queued.append(kwargs))
    clock = [1000.0]
    monkeypatch.setattr(audit.time, "monotonic", lambda: clock[0])
    audit._schedule_seal()
    clock[0] += audit.SEAL_DELAY / 2
    audit._schedule_seal()
    assert queued == [{"countdown": audit.SEAL_DELAY, "retry": False}]
    clock[0] += audit.SEAL_DELAY
    audit._schedule_seal()
    assert len(queued) == 2


def test_a_broker_failure_does_not_fail_the_committed_request(tenant, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setitem(seal_audit_log.app.conf, "task_always_eager", False)
    monkeypatch.setattr(audit, "_kick_until", 0.0)

    def broken(**kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(seal_audit_log, "apply_async", broken)
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client().post("/api/v1/users/tokens", {"name": "x", "duration": "1d"}, format="json")
    assert response.status_code == 201
    assert AuditEvent.objects.filter(action="auth.token.created", position__isnull=True).exists()
    assert audit._kick_until == 0.0  # the next commit tries again


def test_the_api_lists_unsealed_events_with_null_hashes_until_sealed(tenant):
    client = tenant.client()
    newest = client.get("/api/v1/audit-logs").json()["data"][0]
    assert newest["chain_hash"] is None and newest["prev_hash"] is None
    audit.seal()
    newest = client.get("/api/v1/audit-logs").json()["data"][0]
    assert len(newest["chain_hash"]) == 64 and len(newest["prev_hash"]) == 64
    assert client.get(f"/api/v1/audit-logs/{newest['id']}").json()["chain_hash"] == newest["chain_hash"]


def test_the_sealer_runs_from_beat_on_an_existing_queue(settings):
    from mazevault.management.commands.run_embedded import QUEUES

    entry = settings.CELERY_BEAT_SCHEDULE["mazevault.seal_audit_log"]
    assert entry["task"] == seal_audit_log.name == "mazevault.seal_audit_log"
    assert entry["schedule"].total_seconds() == settings.MAZEVAULT_AUDIT_SEAL_SECONDS
    queue = seal_audit_log.app.amqp.router.route({}, seal_audit_log.name)["queue"].name
    assert queue == "default" and queue in QUEUES.split(",")


@pytest.mark.parametrize("stamp, status", [("3237-08-29T22:54:25+18:24", 200), ("9999-12-31T23:59:00-23:00", 400)])
def test_an_audit_time_filter_with_any_iso_offset_is_never_a_500(tenant, stamp, status):
    # PostgreSQL accepts offsets up to ±15:59 only; ISO 8601 (and the filter) up to ±23:59.
    response = tenant.client().get("/api/v1/audit-logs", {"created_after": stamp})
    assert response.status_code == status, response.content[:300]
    if status == 400:
        assert response.json()["error"] == "VALIDATION_ERROR"
