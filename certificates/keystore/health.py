"""The key store's health: can this process open the keys it signs with?

Two signals, both cheap enough for a load balancer's probe:
- a decryption failure seen by this process in the last ``FAILURE_WINDOW_SECONDS`` (a KEK that
  does not open a key: wrong ``MAZEVAULT_KEK``, a rotated-out KEK missing from
  ``MAZEVAULT_OLD_KEKS``, or a damaged row);
- a CA key sealed under a KEK id that none of the configured KEKs has (one indexed query over the
  CA keys, which are few), caught before the first signature fails.
Either makes the ``keystore`` component ``down`` (health answers 200 ``degraded``: the process
still serves reads, it cannot sign).
"""
from __future__ import annotations

import threading
import time

from django.conf import settings

from certificates.pki import envelope
from mazevault.health import ComponentDown

FAILURE_WINDOW_SECONDS = 300

_lock = threading.Lock()
_last_failure: tuple[float, str] | None = None


def note_failure(reason: str) -> None:
    """Remember that a key could not be used (``reason``: a lower_snake code, never key material)."""
    global _last_failure
    with _lock:
        _last_failure = (time.monotonic(), reason)


def reset() -> None:
    global _last_failure
    with _lock:
        _last_failure = None


def configured_kek_ids() -> set[str]:
    return {envelope.kek_id_for(kek) for kek in (settings.MAZEVAULT_KEK, *settings.MAZEVAULT_OLD_KEKS)}


def check() -> dict:
    """Details when the key store works; ``ComponentDown`` naming the reason when it does not."""
    from certificates.models import StoredKey

    with _lock:
        failure = _last_failure
    if failure is not None and time.monotonic() - failure[0] < FAILURE_WINDOW_SECONDS:
        raise ComponentDown(failure[1])
    unopenable = (StoredKey.objects.filter(ca__isnull=False, storage=StoredKey.Storage.LOCAL)
                  .exclude(kek_id__in=configured_kek_ids()).exists())
    if unopenable:
        raise ComponentDown("ca_key_under_unknown_kek")
    return {"kek_id": envelope.kek_id_for(settings.MAZEVAULT_KEK)}
