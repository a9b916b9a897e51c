"""``Idempotency-Key`` for POSTs: a retry with the same key and body gets the first answer again.

A placeholder row is claimed before the work runs, so two concurrent requests with the same key
cannot both act: the second sees the claim and gets 409. The key is scoped to the user; a body
that differs from the first use of the key is a 409 too. Failed attempts (4xx/5xx) release the
key so a corrected retry can use it.
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from .errors import Conflict, ValidationFailed
from .models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
IN_PROGRESS = 0


def _fingerprint(request: Request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except TypeError:
        body = repr(request.data)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request: Request, work: Callable[[], Response]) -> Response:
    key = request.META.get(HEADER)
    if key is None:
        return work()
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.",
                               details={"field": "Idempotency-Key"})
    fingerprint = _fingerprint(request)
    horizon = timezone.now() - timedelta(hours=settings.MAZEVAULT_IDEMPOTENCY_TTL_HOURS)
    IdempotencyRecord.objects.filter(user=request.user, key=key, created_at__lt=horizon).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(user=request.user, key=key, method=request.method,
                                                      path=request.path, request_hash=fingerprint,
                                                      status_code=IN_PROGRESS, response_body={})
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if existing is None:
            raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.") from None
        if existing.request_hash != fingerprint:
            raise Conflict("This Idempotency-Key was used with a different request.",
                           details={"reason": "idempotency_key_reused"}) from None
        if existing.status_code == IN_PROGRESS:
            raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.",
                           details={"reason": "idempotency_key_in_progress"}) from None
        response = Response(existing.response_body, status=existing.status_code)
        response["Idempotent-Replayed"] = "true"
        return response
    try:
        response = work()
    except BaseException:
        record.delete()
        raise
    if 200 <= response.status_code < 300:
        IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=response.status_code,
                                                              response_body=json.loads(json.dumps(response.data, default=str)))
    else:
        record.delete()
    return response


def purge_expired() -> int:
    horizon = timezone.now() - timedelta(hours=settings.MAZEVAULT_IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=horizon).delete()
    return deleted
