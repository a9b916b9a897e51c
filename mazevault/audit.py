"""The audit log: every mutation records one event; a single sealer hash-chains them after commit.

``chain_hash = SHA-256(prev_hash || canonical(event))`` where canonical() is the JSON of the event's
content with sorted keys and ``prev_hash`` is the previous event's ``chain_hash`` (64 zeros first).
docs/audit.md describes the design; in short:

- **Append** (``record()``, ``batch()``): one INSERT of the event's content, inside the caller's
  transaction, so it commits or rolls back (savepoints included) with the work it describes. It
  touches no shared row: appends never wait for each other.
- **Seal** (``seal()``, the Celery task ``mazevault.seal_audit_log`` on the ``default`` queue,
  queued by every commit that recorded events and by beat as a safety net): under the lock of the
  ``AuditChainHead`` row, which only the sealer takes, it gives the committed unsealed events the
  next chain positions in ``seq`` order, computes their hashes and moves the head. Positions are
  the sealer's, not ``seq``: an event whose transaction commits late (its ``seq`` is lower than
  sealed ones) simply gets a later position, so no gap ever has to be waited for or filled.
- **Sign**: the head and periodic ``AuditCheckpoint`` rows carry Ed25519 signatures by a key
  derived from ``MAZEVAULT_AUDIT_KEY`` (or the KEK), which the database never holds
  (mazevault/audit_signing.py); ``verify()`` compares the chain with both, and with checkpoints
  exported off-site (``manage.py verify_audit --export`` / ``--checkpoints FILE``).
"""
from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from functools import lru_cache
from typing import Any, Iterator

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from . import audit_signing, context
from .models import AuditChainHead, AuditCheckpoint, AuditEvent, Project, Severity

log = logging.getLogger(__name__)

GENESIS = "0" * 64
# Events sealed per transaction of the sealer (it loops until none is left).
SEAL_BATCH = 1000
# A commit queues a seal this many seconds ahead; commits in between ride on it (see _schedule_seal).
SEAL_DELAY = 0.5
EXPORT_FORMAT = "mazevault-audit-checkpoints/1"


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


# --- Append ------------------------------------------------------------------------------------
def record(action: str, *, actor: Any = None, entity: Any = None, severity: str = Severity.INFO,
           details: dict[str, Any] | None = None, organization_id: Any = None, project_id: Any = None) -> AuditEvent:
    """Insert one event, inside the caller's transaction when there is one (one INSERT; inside
    ``batch()`` none until the block closes). The event is unsealed (``chain_hash`` None) until the
    sealer chains it, about a second after the commit."""
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
    alias = router.db_for_write(AuditEvent)
    pending = _batch.get()
    if pending is not None and pending.alias == alias and pending.level == _level(connections[alias]):
        pending.events.append(event)
    else:
        _insert([event], alias)
    return event


@dataclass
class _Pending:
    alias: str
    level: tuple[bool, tuple[str, ...]]
    events: list[AuditEvent] = field(default_factory=list)


# Events recorded inside ``batch()`` wait here (per thread / task) until the block closes.
_batch: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar("mazevault_audit_batch", default=None)


def _level(connection) -> tuple[bool, tuple[str, ...]]:
    """Where in the transaction we are: in an atomic block or not, and the savepoints open.

    ``atomic(savepoint=False)`` pushes None, which is not a rollback boundary of its own."""
    return connection.in_atomic_block, tuple(sid for sid in connection.savepoint_ids if sid)


@contextmanager
def batch() -> Iterator[None]:
    """Insert the events recorded inside the block with one statement when it closes.

    Use it directly inside the service's ``transaction.atomic()`` (``with transaction.atomic(),
    audit.batch():``). On a normal exit the events are inserted in the order they were recorded,
    still inside the transaction, so they commit or roll back with the work they describe; on an
    exception they are dropped. An event recorded in a savepoint opened inside the block is
    inserted at once, within that savepoint, so a rollback of the savepoint removes it too (it is
    never chained). A nested batch joins the outer one.
    """
    if _batch.get() is not None:
        yield
        return
    alias = router.db_for_write(AuditEvent)
    pending = _Pending(alias=alias, level=_level(connections[alias]))
    token = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(token)
    if pending.events:
        _insert(pending.events, alias)


_CONTENT_FIELDS = [f for f in AuditEvent._meta.concrete_fields
                   if not f.primary_key and f.name not in ("position", "prev_hash", "chain_hash")]


def _insert(events: list[AuditEvent], alias: str) -> None:
    """INSERT ``events`` (one statement, their content only) and queue a seal after the commit.

    Hand-written SQL: this runs on every audited request, and skipping the ORM's query compilation
    saves more CPU than the statement costs."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(_CONTENT_FIELDS)) + ")"
    sql = (f"INSERT INTO {qn(AuditEvent._meta.db_table)} ({', '.join(qn(f.column) for f in _CONTENT_FIELDS)}) "
           f"VALUES {', '.join([row] * len(events))} RETURNING {qn(AuditEvent._meta.pk.column)}")
    params = [f.get_db_prep_save(getattr(event, f.attname), connection) for event in events for f in _CONTENT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        seqs = sorted(r[0] for r in cursor.fetchall())  # one multi-row INSERT takes its seqs in VALUES order
    for event, seq in zip(events, seqs):
        event.seq = seq
        event._state.adding, event._state.db = False, alias
    # robust: the work is committed by then; a broker hiccup must not turn its answer into an error
    # (beat's safety net seals what a lost message left).
    transaction.on_commit(_schedule_seal, using=alias, robust=True)


_kick_lock = threading.Lock()
_kick_until = 0.0


def _schedule_seal() -> None:
    """Queue ``mazevault.seal_audit_log`` ``SEAL_DELAY`` seconds ahead, at most once per window
    per process: a commit inside the window is covered by the queued run, which starts after it.
    Eager mode (tests without a broker) seals at once, in this process."""
    global _kick_until
    from .tasks import seal_audit_log

    if seal_audit_log.app.conf.task_always_eager:
        from celery import current_task

        task = current_task._get_current_object()
        if task is not None and task.request.is_eager:
            # An eager task (a CRL refresh commits hundreds of times) is sealed once, when it
            # returns (mazevault.tasks connects seal_deferred to task_postrun).
            _deferred.pending = True
            return
        seal()  # what the task runs, without eager Celery's per-call tracing
        return
    now = time.monotonic()
    with _kick_lock:
        if now < _kick_until:
            return
        _kick_until = now + SEAL_DELAY
    try:
        seal_audit_log.apply_async(countdown=SEAL_DELAY, retry=False)
    except Exception:
        with _kick_lock:
            _kick_until = 0.0  # let the next commit try again instead of riding on a run that is not queued
        raise


_deferred = threading.local()


def seal_deferred() -> int:
    """Seal once for the commits an eager task made in this thread; 0 when it made none."""
    if not getattr(_deferred, "pending", False):
        return 0
    _deferred.pending = False
    return seal()


# --- Keys ----------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _derived(secret: bytes) -> audit_signing.SigningKey:
    return audit_signing.derive(secret)


def signing_key() -> audit_signing.SigningKey:
    """The key new statements are signed with: from ``MAZEVAULT_AUDIT_KEY``, else from the KEK."""
    return _derived(settings.MAZEVAULT_AUDIT_KEY or settings.MAZEVAULT_KEK)


def verification_keys() -> dict[str, Any]:
    """Public keys whose signatures verify: the signing key's, the KEK's (statements made before
    ``MAZEVAULT_AUDIT_KEY`` was set) and those of the retired keys still configured."""
    secrets = [settings.MAZEVAULT_AUDIT_KEY, settings.MAZEVAULT_KEK, *settings.MAZEVAULT_OLD_AUDIT_KEYS,
               *settings.MAZEVAULT_OLD_KEKS]
    keys = {}
    for secret in secrets:
        if secret:
            key = _derived(secret)
            keys[key.key_id] = key.public
    return keys


def stamp(moment: datetime) -> str:
    """The timestamp as signed: UTC, microseconds, ``Z`` (the same text whatever the backend returns)."""
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- Seal ----------------------------------------------------------------------------------------
class ChainHeadMismatch(Exception):
    """The head does not describe the sealed chain (or its signature fails): the database was
    changed behind the sealer's back. The sealer refuses to extend such a chain."""


def seal(*, limit: int = SEAL_BATCH) -> int:
    """Chain every committed unsealed event; return how many. Idempotent and safe to run
    concurrently (sealers serialise on the head's row lock, which only they take)."""
    alias = router.db_for_write(AuditEvent)
    total = 0
    while True:
        sealed = _seal_once(alias, limit)
        total += sealed
        if sealed < limit:
            return total


def _locked_head(alias: str) -> AuditChainHead:
    """The head row under its lock (PostgreSQL ``FOR UPDATE``; SQLite's write lock is taken by
    BEGIN IMMEDIATE already)."""
    head = AuditChainHead.objects.using(alias).select_for_update().filter(pk=1).first()
    if head is None:  # the migration creates it; a database flushed by tests may not have it
        AuditChainHead.objects.using(alias).get_or_create(pk=1)
        head = AuditChainHead.objects.using(alias).select_for_update().get(pk=1)
    return head


def _check_head(head: AuditChainHead, alias: str) -> None:
    """Raise ChainHeadMismatch unless the head is signed and the chain ends exactly where it says."""
    tail = list(AuditEvent.objects.using(alias).filter(position__gte=max(head.count, 1))
                .order_by("position").values_list("position", "chain_hash")[:2])
    if head.count == 0:
        if tail or head.last_hash != GENESIS:
            raise ChainHeadMismatch("the head says the chain is empty, but sealed events exist")
        return
    if head.sealed_at is None or not audit_signing.verify(
            verification_keys(), head.key_id, head.signature, "head", head.count, head.last_hash,
            stamp(head.sealed_at)):
        raise ChainHeadMismatch("the chain head's signature does not verify")
    if tail != [(head.count, head.last_hash)]:
        raise ChainHeadMismatch(f"the chain does not end where the signed head says (position {head.count})")


def _sign_head(head: AuditChainHead, now: datetime) -> None:
    key = signing_key()
    head.sealed_at, head.key_id = now, key.key_id
    head.signature = audit_signing.sign(key, "head", head.count, head.last_hash, stamp(now))


def _keep_checkpoint(head: AuditChainHead, now: datetime, alias: str) -> AuditCheckpoint:
    key = signing_key()
    head.last_checkpoint_at = now
    return AuditCheckpoint.objects.using(alias).create(
        length=head.count, chain_hash=head.last_hash, created_at=now, key_id=key.key_id,
        signature=audit_signing.sign(key, "checkpoint", head.count, head.last_hash, stamp(now)))


def _write_seals(events: list[AuditEvent], alias: str) -> None:
    """Store the events' position and hashes with one UPDATE … FROM (VALUES …) (PostgreSQL, and
    SQLite since 3.33). Hand-written: the ORM's bulk_update compiles a CASE per row and field,
    which cost more than everything else a seal does."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    table = qn(AuditEvent._meta.db_table)
    rows = ", ".join(["(CAST(%s AS BIGINT), CAST(%s AS BIGINT), %s, %s)"] * len(events))
    sql = (f"UPDATE {table} SET {qn('position')} = v.column2, {qn('prev_hash')} = v.column3, "
           f"{qn('chain_hash')} = v.column4 FROM (VALUES {rows}) AS v WHERE {table}.{qn('seq')} = v.column1")
    params = [value for e in events for value in (e.seq, e.position, e.prev_hash, e.chain_hash)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(events):
            raise ChainHeadMismatch(f"{len(events) - cursor.rowcount} events vanished while being sealed")


def _seal_once(alias: str, limit: int) -> int:
    with transaction.atomic(using=alias):
        head = _locked_head(alias)
        # Read after the lock: under READ COMMITTED this sees every event committed before a
        # previous sealer released the head, so nothing is sealed twice or skipped.
        events = list(AuditEvent.objects.using(alias).filter(position__isnull=True).order_by("seq")[:limit])
        if not events:
            return 0
        _check_head(head, alias)
        prev, length = head.last_hash, head.count
        for event in events:
            length += 1
            event.position, event.prev_hash = length, prev
            event.chain_hash = prev = chain(prev, event)
        _write_seals(events, alias)
        now = timezone.now()
        head.count, head.last_hash = length, prev
        _sign_head(head, now)
        interval = timedelta(seconds=settings.MAZEVAULT_AUDIT_CHECKPOINT_SECONDS)
        if head.last_checkpoint_at is None or now - head.last_checkpoint_at >= interval:
            _keep_checkpoint(head, now, alias)
        head.save(using=alias)
    return len(events)


def checkpoint() -> AuditCheckpoint | None:
    """Keep a checkpoint of the head now, unless the newest checkpoint already covers it (or the
    chain is empty). Raises ChainHeadMismatch on a head that does not verify."""
    alias = router.db_for_write(AuditEvent)
    with transaction.atomic(using=alias):
        head = _locked_head(alias)
        if head.count == 0:
            return None
        newest = AuditCheckpoint.objects.using(alias).order_by("-length").first()
        if newest is not None and newest.length >= head.count:
            return newest
        _check_head(head, alias)
        made = _keep_checkpoint(head, timezone.now(), alias)
        head.save(using=alias, update_fields=["last_checkpoint_at"])
        return made


# --- Verify --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    length: int
    chain_hash: str
    created_at: str  # as signed (stamp())
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        return {"length": self.length, "chain_hash": self.chain_hash, "created_at": self.created_at,
                "key_id": self.key_id, "signature": self.signature}

    def valid(self, keys: dict[str, Any]) -> bool:
        return audit_signing.verify(keys, self.key_id, self.signature, "checkpoint", self.length, self.chain_hash,
                                    self.created_at)


@dataclass
class Problem:
    code: str
    message: str
    seq: int | None = None


@dataclass
class Report:
    """What ``verify()`` found. ``ok`` when there is no problem; unsealed events are not one."""

    sealed: int = 0
    unsealed: int = 0
    head_length: int = 0
    head_key_id: str = ""
    checkpoints: int = 0
    external: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    first_broken: AuditEvent | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _walk(batch_size: int, want: set[int]) -> tuple[int, AuditEvent | None, list[Problem], int, str, dict[int, str]]:
    """Check every sealed event's link in position order.

    Returns (events whose link holds, first bad event, problems, last position, last chain_hash,
    {position: chain_hash} for the positions in ``want``). After a bad link the walk goes on from
    the stored hash, so later checks still compare against what the database holds."""
    prev, expected, good = GENESIS, 1, 0
    first: AuditEvent | None = None
    problems: list[Problem] = []
    hashes: dict[int, str] = {}
    last_position = 0
    while True:
        rows = list(AuditEvent.objects.filter(position__gte=expected).order_by("position")[:batch_size])
        if not rows:
            return good, first, problems, last_position, prev, hashes
        for event in rows:
            if event.position != expected:
                problems.append(Problem("gap", f"chain positions {expected}..{event.position - 1} are missing "
                                               f"(deleted events) before seq={event.seq}", event.seq))
            elif event.prev_hash != prev or chain(prev, event) != event.chain_hash:
                problems.append(Problem("broken_link", f"audit chain broken at event seq={event.seq} "
                                                       f"id={event.id} action={event.action} "
                                                       f"(position {event.position})", event.seq))
            else:
                good += 1
                if event.position in want:
                    hashes[event.position] = event.chain_hash
                prev, expected, last_position = event.chain_hash, event.position + 1, event.position
                continue
            first = first or event
            if event.position in want:
                hashes[event.position] = event.chain_hash or ""
            prev, expected, last_position = event.chain_hash or "", event.position + 1, event.position


def verify(*, external: list[Checkpoint] | None = None, batch_size: int = 2000) -> Report:
    """Check the sealed chain link by link, then against the signed head, the signed checkpoints
    in the database and ``external`` ones (exported earlier and kept elsewhere).

    Detects: an edited event (its link), a deleted one (a gap), the newest ones truncated away
    (head and checkpoints longer than the chain), a chain rewritten consistently (the head's or a
    checkpoint's signature, which needs a key the database does not hold), and a rollback to an
    earlier signed state (an external checkpoint the chain no longer matches)."""
    keys = verification_keys()
    report = Report(external=len(external or []))
    stored = [Checkpoint(c.length, c.chain_hash, stamp(c.created_at), c.key_id, c.signature)
              for c in AuditCheckpoint.objects.order_by("length")]
    report.checkpoints = len(stored)
    every = stored + list(external or [])
    good, first, problems, last_position, last_hash, hashes = _walk(batch_size, {c.length for c in every})
    report.sealed, report.first_broken, report.problems = good, first, problems

    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.count == 0:
        if last_position:
            report.problems.append(Problem("head_mismatch", f"the head says the chain is empty, but it has "
                                                            f"{last_position} sealed events"))
    else:
        report.head_length, report.head_key_id = head.count, head.key_id
        if head.sealed_at is None or not audit_signing.verify(keys, head.key_id, head.signature, "head", head.count,
                                                              head.last_hash, stamp(head.sealed_at)):
            report.problems.append(Problem("head_signature", "the chain head's signature does not verify "
                                                             "(forged or moved head)"))
        if last_position < head.count:
            report.problems.append(Problem("truncated", f"the chain ends at position {last_position} but the "
                                                        f"signed head says {head.count}: the newest events were "
                                                        "removed"))
        elif last_position > head.count or head.last_hash != last_hash:
            report.problems.append(Problem("head_mismatch", f"the chain ends at position {last_position} with a "
                                                            f"hash the head (position {head.count}) does not have"))

    stored_set = set(stored)
    for source, checkpoints in (("checkpoint", stored), ("exported checkpoint", external or [])):
        for cp in checkpoints:
            where = f"{source} at length {cp.length} ({cp.created_at})"
            if not cp.valid(keys):
                report.problems.append(Problem("checkpoint_signature", f"the {where} has no valid signature by a "
                                                                       "configured audit key"))
            elif cp.length > last_position:
                report.problems.append(Problem("truncated", f"the {where} is longer than the chain "
                                                            f"({last_position} events): events were removed"))
            elif hashes.get(cp.length) != cp.chain_hash:
                report.problems.append(Problem("checkpoint_mismatch", f"the chain no longer matches the {where}: "
                                                                      "events up to it were changed"))
            elif source == "exported checkpoint" and cp not in stored_set:
                report.problems.append(Problem("checkpoint_missing", f"the {where} is missing from the database"))

    unsealed = AuditEvent.objects.filter(position__isnull=True)
    report.unsealed = unsealed.count()
    oldest = unsealed.order_by("created_at").values_list("created_at", flat=True).first()
    lag = timedelta(seconds=max(60, 10 * settings.MAZEVAULT_AUDIT_SEAL_SECONDS))
    if oldest is not None and timezone.now() - oldest > lag:
        report.warnings.append(f"{report.unsealed} events are not sealed, the oldest since {stamp(oldest)}: "
                               "is the sealer (Celery worker and beat) running?")
    return report


def verify_chain(batch_size: int = 2000) -> tuple[int, AuditEvent | None]:
    """Walk the sealed log in order; return (events whose link holds, first event whose link is broken)."""
    good, first, *_ = _walk(batch_size, set())
    return good, first


def export() -> dict[str, Any]:
    """Every stored checkpoint, with the public keys that verify them, for storage off-site."""
    keys = verification_keys()
    checkpoints = [Checkpoint(c.length, c.chain_hash, stamp(c.created_at), c.key_id, c.signature)
                   for c in AuditCheckpoint.objects.order_by("length")]
    used = {c.key_id for c in checkpoints} | {signing_key().key_id}
    return {
        "format": EXPORT_FORMAT,
        "exported_at": stamp(timezone.now()),
        "signature_scheme": "Ed25519 over mazevault/audit_signing.py message('checkpoint', length, chain_hash, "
                            "created_at)",
        "public_keys": {kid: base64.b64encode(audit_signing.public_bytes(pub)).decode()
                        for kid, pub in keys.items() if kid in used},
        "checkpoints": [c.as_dict() for c in checkpoints],
    }


def load_export(text: str) -> list[Checkpoint]:
    """Parse an export made by ``export()``; ValueError naming what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not a {EXPORT_FORMAT} export")
    items = data.get("checkpoints")
    if not isinstance(items, list):
        raise ValueError("no checkpoints list")
    out = []
    for index, item in enumerate(items):
        try:
            out.append(Checkpoint(length=int(item["length"]), chain_hash=str(item["chain_hash"]),
                                  created_at=str(item["created_at"]), key_id=str(item["key_id"]),
                                  signature=str(item["signature"])))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"checkpoint #{index} lacks length/chain_hash/created_at/key_id/signature") from None
    return out
