"""Reactions to certificate events (``certificates.signals``, sent after commit): keep CRLs fresh."""
from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
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
    """A new CA publishes its first (empty) unsharded CRLs at once: relying parties must never get a 404.
    Shards (if configured) follow from the refresh task, so a CA with many shards is not created in the
    request. A failure here is logged, never raised into the committed request; the beat catches up."""
    try:
        ca = CertificateAuthority.objects.select_related("key").get(pk=ca_id)
        services.publish_all(ca, shards=False)
        if ca.crl_shards:
            services.request_refresh(ca.pk)
    except Exception:
        log.exception("First CRL publication failed for CA %s (the beat task retries)", ca_id)


@receiver(post_save, sender=CertificateAuthority, dispatch_uid="crl.ca_saved")
def _ca_saved(sender: Any, *, instance: CertificateAuthority, update_fields=None, created: bool = False,
              **kwargs: Any) -> None:
    """More shards configured: publish the new shards' first CRLs soon after the change commits (new
    certificates already point at them)."""
    if not created and update_fields and "crl_shards" in update_fields and instance.crl_shards:
        transaction.on_commit(lambda: services.request_refresh(instance.pk))
