from celery import shared_task

from . import idempotency, throttling


@shared_task(name="mazevault.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Hourly clean-up of short-lived rows: expired Idempotency-Key records, and database rate
    counters whose window ended more than a day ago (Redis counters expire by themselves)."""
    return idempotency.purge_expired() + throttling.purge_stale()
