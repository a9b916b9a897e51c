"""The audit log: every mutation records one event, appended to a SHA-256 hash chain.

``chain_hash = SHA-256(prev_chain_hash || canonical(event))`` where canonical() is the JSON of the
event's content with sorted keys. Appends serialise on the ``AuditChainHead`` row: the first
statement is an UPDATE of that row, which takes the row lock on PostgreSQL and the write lock on
SQLite, so two writers can never chain onto the same predecessor.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import context
from .models import AuditChainHead, AuditEvent, Severity

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
        project_id = getattr(entity, "project_id", None)
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
    with transaction.atomic():
        updated = AuditChainHead.objects.filter(pk=1).update(count=F("count") + 1)
        if not updated:
            AuditChainHead.objects.get_or_create(pk=1)
            AuditChainHead.objects.filter(pk=1).update(count=F("count") + 1)
        head = AuditChainHead.objects.get(pk=1)
        event.prev_hash = head.last_hash
        event.chain_hash = chain(head.last_hash, event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(last_hash=event.chain_hash)
    return event


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
