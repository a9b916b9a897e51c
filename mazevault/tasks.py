from celery import shared_task

from . import audit, idempotency


@shared_task(name="mazevault.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    return idempotency.purge_expired()


@shared_task(name="mazevault.seal_audit_log")
def seal_audit_log() -> int:
    """Chain the committed, unsealed audit events (idempotent: a run with nothing to do seals 0)."""
    return audit.seal()
