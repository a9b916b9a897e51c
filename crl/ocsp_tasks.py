"""OCSP housekeeping on the ``crl`` queue (routed by the ``crl.*`` name): idempotent, no arguments."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="crl.renew_ocsp_responders")
def renew_ocsp_responders() -> int:
    """Issue a delegated responder for every CA whose current one is due for renewal (or missing);
    a no-op when all are fresh, so retries and overlapping runs are harmless."""
    from . import ocsp

    return ocsp.renew_responders()


@shared_task(name="crl.purge_ocsp_cache")
def purge_ocsp_cache() -> int:
    """Drop pre-signed responses that are no longer reusable."""
    from . import ocsp

    return ocsp.purge_cache()
