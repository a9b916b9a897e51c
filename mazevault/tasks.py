from typing import Any

from celery import shared_task
from celery.signals import task_postrun

from . import audit, idempotency, throttling


@shared_task(name="mazevault.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Hourly clean-up of short-lived rows: expired Idempotency-Key records, and database rate
    counters whose window ended more than a day ago (Redis counters expire by themselves)."""
    return idempotency.purge_expired() + throttling.purge_stale()


@shared_task(name="mazevault.seal_audit_log")
def seal_audit_log() -> int:
    """Chain the committed, unsealed audit events (idempotent: a run with nothing to do seals 0)."""
    return audit.seal()


@task_postrun.connect(weak=False, dispatch_uid="mazevault.audit_seal_after_eager_task")
def _seal_after_eager_task(*args: Any, **kwargs: Any) -> None:
    """Eager mode only: the commits of the task that just ran were left for one seal here."""
    audit.seal_deferred()
