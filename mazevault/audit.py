"""The audit log: every mutation records one event, appended to a SHA-256 hash chain.

``chain_hash = SHA-256(prev_chain_hash || canonical(event))`` where canonical() is the JSON of the
event's content with sorted keys. Appends serialise on the ``AuditChainHead`` row: the first
statement is an UPDATE of that row (``… RETURNING last_hash``: lock and read in one round trip),
which takes the row lock on PostgreSQL and the write lock on SQLite, so two writers can never chain
onto the same predecessor.

The row lock is held until the transaction ends, so every append serialises all writers until the
commit. A service whose transaction does slow work (signing) records its events inside
``batch()``: they are chained and inserted together when the block closes, at the end of the
transaction, so the lock is held for three statements and the commit only.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

from django.db import connections, router, transaction
from django.utils import timezone

from . import context
from .models import AuditChainHead, AuditEvent, Project, Severity

GENESIS = "0" * 64


def canonical(event: AuditEvent) -> bytes:
    content = {
        "id": str(event.id),
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "organization_id": str(event.organization_id) if event.organization_id else None,
        "project_id": str(event.project_id) if event.project_id else None,
        "severity": event.severity,
        "ip_address": event.ip_address,
        "request_id": event.request_id,
        "details": event.details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(event)).hexdigest()


def _entity_ref(entity: Any) -> tuple[str, str]:
    if entity is None:
        return "", ""
    if isinstance(entity, tuple):
        return entity[0], str(entity[1])
    return entity._meta.model_name, str(entity.pk)


def record(action: str, *, actor: Any = None, entity: Any = None, severity: str = Severity.INFO,
           details: dict[str, Any] | None = None, organization_id: Any = None, project_id: Any = None) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction when there is one."""
    ctx = context.current()
    entity_type, entity_id = _entity_ref(entity)
    if organization_id is None and entity is not None and not isinstance(entity, tuple):
        organization_id = getattr(entity, "organization_id", None)
    if project_id is None and entity is not None and not isinstance(entity, tuple):
        # A project's own events belong to it, so auditors scoped to the project see them too.
        project_id = entity.pk if isinstance(entity, Project) else getattr(entity, "project_id", None)
    if organization_id is None and project_id is not None:  # e.g. approval policies: scoped via their project
        organization_id = Project.objects.filter(pk=project_id).values_list("organization_id", flat=True).first()
    actor_obj = actor if getattr(actor, "is_authenticated", False) else None
    event = AuditEvent(
        id=uuid.uuid4(),
        created_at=timezone.now(),
        actor=actor_obj,
        actor_name=actor_obj.get_username() if actor_obj else (actor if isinstance(actor, str) else "system"),
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        organization_id=organization_id,
        project_id=project_id,
        severity=severity,
        ip_address=ctx.ip_address,
        request_id=ctx.request_id,
        details=json.loads(json.dumps(details or {}, default=str)),
    )
    pending = _batch.get()
    if pending is not None:
        pending.append(event)
    else:
        _append([event])
    return event


# Events recorded inside ``batch()`` wait here (per thread / task) until the block closes.
_batch: contextvars.ContextVar[list[AuditEvent] | None] = contextvars.ContextVar("mazevault_audit_batch",
                                                                                  default=None)


@contextmanager
def batch() -> Iterator[None]:
    """Defer the chain append of the events recorded inside to the end of the block.

    Use it directly inside the service's ``transaction.atomic()`` (``with transaction.atomic(),
    audit.batch():``): on a normal exit the events are appended in the order they were recorded,
    still inside the transaction, so they commit or roll back with the work they describe; on an
    exception they are dropped (the transaction rolls back anyway). A nested batch joins the
    outer one.
    """
    if _batch.get() is not None:
        yield
        return
    events: list[AuditEvent] = []
    token = _batch.set(events)
    try:
        yield
    finally:
        _batch.reset(token)
    if events:
        _append(events)


def _lock_head(cursor, count: int) -> str:
    """Bump the head's counter, taking the chain lock; return the hash to chain onto."""
    table = cursor.db.ops.quote_name(AuditChainHead._meta.db_table)
    sql = f"UPDATE {table} SET count = count + %s WHERE id = 1 RETURNING last_hash"
    cursor.execute(sql, [count])
    row = cursor.fetchone()
    if row is None:  # first event ever (the migration normally creates the row)
        AuditChainHead.objects.using(cursor.db.alias).get_or_create(pk=1)
        cursor.execute(sql, [count])
        row = cursor.fetchone()
    return row[0]


def _insert_and_move_head(cursor, events: list[AuditEvent], last_hash: str) -> list[int]:
    """INSERT the events (one statement) and point the head at ``last_hash``; return their seqs.

    Hand-written SQL: these statements run while every other writer waits for the chain lock, so
    they skip the ORM's query compilation. PostgreSQL does both in one round trip (a
    data-modifying CTE); other databases in two.
    """
    connection = cursor.db
    qn = connection.ops.quote_name
    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    insert = (f"INSERT INTO {qn(AuditEvent._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
              f"VALUES {', '.join([row] * len(events))} RETURNING {qn(AuditEvent._meta.pk.column)}")
    params = [f.get_db_prep_save(getattr(event, f.attname), connection) for event in events for f in fields]
    head = qn(AuditChainHead._meta.db_table)
    if connection.vendor == "postgresql":
        cursor.execute(f"WITH ins AS ({insert}) UPDATE {head} SET last_hash = %s WHERE id = 1 "
                       f"RETURNING (SELECT array_agg(ins.{qn(AuditEvent._meta.pk.column)}) FROM ins)",
                       [*params, last_hash])
        seqs = cursor.fetchone()[0]
    else:
        cursor.execute(insert, params)
        seqs = [r[0] for r in cursor.fetchall()]
        cursor.execute(f"UPDATE {head} SET last_hash = %s WHERE id = 1", [last_hash])
    return sorted(seqs)  # one multi-row INSERT takes its sequence values in VALUES order


def _append(events: list[AuditEvent]) -> None:
    """Chain ``events`` onto the head and insert them: two statements under the chain lock
    (three on SQLite), which the caller's commit then releases."""
    alias = router.db_for_write(AuditEvent)
    connection = connections[alias]
    with transaction.atomic(using=alias, savepoint=False), connection.cursor() as cursor:
        prev = _lock_head(cursor, len(events))
        for event in events:
            event.prev_hash = prev
            event.chain_hash = prev = chain(prev, event)
        seqs = _insert_and_move_head(cursor, events, prev)
    for event, seq in zip(events, seqs):
        event.seq = seq
        event._state.adding, event._state.db = False, alias


def verify_chain(batch_size: int = 2000) -> tuple[int, AuditEvent | None]:
    """Walk the log in order; return (events checked, first event whose link is broken)."""
    prev = GENESIS
    checked = 0
    last_seq = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        if not batch:
            return checked, None
        for event in batch:
            if event.prev_hash != prev or chain(prev, event) != event.chain_hash:
                return checked, event
            prev = event.chain_hash
            checked += 1
            last_seq = event.seq
