"""Celery tasks: ids in, a service call, idempotent (safe to retry)."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="certificates.sweep_expired")
def sweep_expired() -> int:
    """Beat task: active certificates past notAfter become expired."""
    return services.expire_certificates()
