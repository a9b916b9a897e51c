"""``Idempotency-Key`` for POSTs: a retry with the same key and body gets the first answer again.

Invariants:
- At most one request per (user, key) does the work. A claim row is committed before the work
  runs, so a concurrent request with the same key sees it and gets 409 (in progress).
- The answer is recorded in the work's own transaction (the work runs inside an outer
  ``atomic``, and the record is updated by compare-and-set on the claim before COMMIT). So there
  is no window in which the work is committed but the key still looks "in progress": either both
  commit, or neither does.
- A claim whose work never committed (a crash, a killed worker, a lost connection) expires at
  ``locked_until`` (``MAZEVAULT_IDEMPOTENCY_LEASE_SECONDS``); the next request with the key
  takes it over. If the original was only slow and finishes after the takeover, its
  compare-and-set finds its claim gone and its work is rolled back (409): still one winner.
- A replay goes only to the credential that made the first request (the same token, or a session
  of the same user), and only while it may still see what was created: the view passes a
  ``may_replay`` check (e.g. "the certificate is still visible to this caller"); a refusal answers
  404 like any object the caller cannot see, and the stored body never leaves.
- The same key with a different body is 409. Failed attempts (exceptions and non-2xx answers)
  release the key so a corrected retry can use it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from .errors import Conflict, NotFound, ValidationFailed
from .models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
IN_PROGRESS = 0


def _fingerprint(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except TypeError:
        body = repr(request.data)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def principal_of(request: Request) -> str:
    """The credential behind ``request``: ``token:<id>`` for an API token, else ``session``."""
    token_id = getattr(request.auth, "pk", None) if request.auth is not None else None
    return f"token:{token_id}" if token_id is not None else "session"


def _replay(existing: IdempotencyRecord, request: Request, fingerprint: str,
            may_replay: Callable[[Any], bool] | None) -> Response:
    if existing.request_hash != fingerprint:
        raise Conflict("This Idempotency-Key was used with a different request.",
                       details={"reason": "idempotency_key_reused"})
    if existing.status_code == IN_PROGRESS:
        raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.",
                       details={"reason": "idempotency_key_in_progress"})
    if existing.principal != principal_of(request):
        raise Conflict("This Idempotency-Key was used by another credential of this user.",
                       details={"reason": "idempotency_key_other_credential"})
    if may_replay is not None and not may_replay(existing.response_body):
        raise NotFound("Not found.")
    response = Response(existing.response_body, status=existing.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _claim(request: Request, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """A new claim on (user, key), or None when a live record already holds it."""
    now = timezone.now()
    lease = timedelta(seconds=settings.MAZEVAULT_IDEMPOTENCY_LEASE_SECONDS)
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user=request.user, key=key, method=request.method, path=request.path, request_hash=fingerprint,
                principal=principal_of(request), status_code=IN_PROGRESS, response_body={},
                locked_until=now + lease)
    except IntegrityError:
        return None


def _record_answer(record: IdempotencyRecord, response: Response) -> None:
    """Store the answer on our claim (inside the work's transaction), by compare-and-set."""
    body = json.loads(json.dumps(response.data, default=str))
    stored = IdempotencyRecord.objects.filter(pk=record.pk, status_code=IN_PROGRESS).update(
        status_code=response.status_code, response_body=body, locked_until=None)
    if not stored:
        # Our lease expired and another request took the key over: it does the work.
        raise Conflict("This request took too long and was superseded by a retry with the same "
                       "Idempotency-Key.", details={"reason": "idempotency_key_superseded"})


def idempotent(request: Request, work: Callable[[], Response], *,
               may_replay: Callable[[Any], bool] | None = None) -> Response:
    """Run ``work`` once per (user, Idempotency-Key); see the module docstring for the guarantees."""
    key = request.META.get(HEADER)
    if key is None:
        return work()
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.",
                               details={"field": "Idempotency-Key"})
    fingerprint = _fingerprint(request)
    now = timezone.now()
    horizon = now - timedelta(hours=settings.MAZEVAULT_IDEMPOTENCY_TTL_HOURS)
    records = IdempotencyRecord.objects.filter(user=request.user, key=key)
    records.filter(created_at__lt=horizon).delete()
    # A claim past its lease belongs to work that never committed (its answer would have been
    # written with it): release it so that this request can do the work.
    records.filter(status_code=IN_PROGRESS, locked_until__lt=now).delete()
    record = _claim(request, key, fingerprint)
    if record is None:
        existing = records.first()
        if existing is None:  # released between our insert and our read: treat as in progress
            raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.",
                           details={"reason": "idempotency_key_in_progress"})
        return _replay(existing, request, fingerprint, may_replay)
    try:
        with transaction.atomic():
            response = work()
            if 200 <= response.status_code < 300:
                _record_answer(record, response)
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk, status_code=IN_PROGRESS).delete()
        raise
    if not 200 <= response.status_code < 300:
        IdempotencyRecord.objects.filter(pk=record.pk, status_code=IN_PROGRESS).delete()
    return response


def purge_expired() -> int:
    horizon = timezone.now() - timedelta(hours=settings.MAZEVAULT_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=horizon).delete()
    return deleted
