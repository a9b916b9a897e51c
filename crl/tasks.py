"""CRL tasks (queue ``crl``): ids in, a service call; idempotent and safe to retry."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="crl.refresh_ca_crls")
def refresh_ca_crls(ca_id: str) -> int:
    """After revocations (coalesced by ``services.request_refresh``): new full and delta CRLs of every
    scope of the CA. Returns how many CRLs it published."""
    return services.refresh_after_revocations(ca_id)


@shared_task(name="crl.publish_due")
def publish_due() -> int:
    """Beat: publish every CRL whose interval passed or whose nextUpdate comes near."""
    return services.publish_due()
