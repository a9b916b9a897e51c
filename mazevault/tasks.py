from celery import shared_task

from . import idempotency


@shared_task(name="mazevault.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    return idempotency.purge_expired()
