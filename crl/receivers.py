"""Reactions to certificate events (``certificates.signals``, sent after commit): keep CRLs fresh."""
from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from certificates import signals
from certificates.models import CertificateAuthority

from . import services

log = logging.getLogger(__name__)


@receiver(signals.revocation_changed, dispatch_uid="crl.revocation_changed")
def _revocation_changed(sender: Any, *, ca_id: Any, **kwargs: Any) -> None:
    services.request_refresh(ca_id)


@receiver(signals.ca_created, dispatch_uid="crl.ca_created")
def _ca_created(sender: Any, *, ca_id: Any, **kwargs: Any) -> None:
    """A new CA publishes its first (empty) CRLs at once: relying parties must never get a 404.
    A failure here is logged, never raised into the committed request; the beat catches up."""
    try:
        ca = CertificateAuthority.objects.select_related("key").get(pk=ca_id)
        services.publish_all(ca)
    except Exception:
        log.exception("First CRL publication failed for CA %s (the beat task retries)", ca_id)
