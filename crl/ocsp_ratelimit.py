"""The OCSP rate limit's counter: one fixed window per client, shared by every replica.

``mazevault/throttling.py`` offers DRF throttle classes only (a timestamp list per client, read and
rewritten on every request), which would cost the OCSP hot path several cache round trips and does
not fit a plain Django view; its counter is being rewritten elsewhere. This module is the minimum the
responder needs, with the signature that rewrite is to expose: ``hit(key, limit, window)``. When
``mazevault.throttling`` gains it, this module's body can become a call to it.

The counter lives where ``DESIGN.md`` puts rate counters: Redis when ``REDIS_URL`` is set (INCR and
EXPIRE pipelined in one round trip, atomic), else Django's cache (the database cache in the embedded
mode: ``add`` then ``incr``; approximate under concurrency, which a rate limit tolerates). A counter
that cannot be reached lets the request through: the limit protects the responder, it is not worth
refusing status answers for.
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_redis_client = None
_redis_lock = threading.Lock()


@functools.lru_cache(maxsize=16)
def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"1000/min"`` -> (1000, 60), in DRF's rate-string syntax (unit by its first letter);
    empty or None -> None (no limit)."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    unit = _UNITS.get(period.strip()[:1].lower())
    if unit is None or not count.strip().isdigit():
        raise ValueError(f"invalid rate {rate!r}: expected '<n>/<s|m|h|d>'")
    return int(count), unit


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        with _redis_lock:
            if _redis_client is None:
                _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5,
                                                     socket_connect_timeout=0.5)
    return _redis_client


def hit(key: str, limit: int, window: int) -> tuple[bool, int, int]:
    """Count one request for ``key`` in the current ``window``-second window.

    Returns (allowed, remaining, retry_after_seconds): allowed while at most ``limit`` requests
    were counted in this window; ``retry_after`` is the time until the window ends.
    """
    now = time.time()
    bucket = int(now // window)
    counter = f"mv:rl:ocsp:{key}:{bucket}"
    retry_after = max(1, math.ceil((bucket + 1) * window - now))
    try:
        if settings.REDIS_URL:
            pipe = _redis().pipeline(transaction=False)
            pipe.incr(counter)
            pipe.expire(counter, window + 1)
            count = int(pipe.execute()[0])
        else:
            cache.add(counter, 0, timeout=window + 1)
            count = cache.incr(counter)
    except Exception:  # noqa: BLE001 - fail open: an unreachable counter must not block OCSP
        logger.warning("OCSP rate-limit counter unavailable; request let through", exc_info=True)
        return True, limit, retry_after
    return count <= limit, max(0, limit - count), retry_after
