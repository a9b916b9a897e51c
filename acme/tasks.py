"""ACME tasks (queue ``acme``): ids in, idempotent, state checked again on every run."""
from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from . import services
from .models import Challenge, ChallengeStatus


@shared_task(name="acme.validate_challenge", acks_late=True)
def validate_challenge(*, challenge_id: str) -> str:
    """Validate a ``processing`` challenge with bounded retries, then settle it. A challenge that is not
    processing any more (validated by an earlier run, or never answered) is left alone."""
    attempts = max(1, settings.MAZEVAULT_ACME_VALIDATION_ATTEMPTS)
    failure = None
    for attempt in range(attempts):
        challenge = Challenge.objects.select_related("authorization__account").filter(pk=challenge_id).first()
        if challenge is None or challenge.status != ChallengeStatus.PROCESSING:
            return "skipped"
        failure = services.check_challenge(challenge)
        if failure is None:
            break
        if attempt + 1 < attempts:
            time.sleep(settings.MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS)
    services.record_validation(challenge_id, failure)
    return "valid" if failure is None else "invalid"


@shared_task(name="acme.clean_up")
def clean_up() -> dict[str, int]:
    """Beat: expired nonces deleted, stale orders and authorizations expired."""
    return services.clean_up()
