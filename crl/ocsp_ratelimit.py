"""The OCSP rate limit's counter: one fixed window per client, shared by every replica.

A thin face over ``mazevault.throttling.hit`` (Redis INCR+EXPIRE in one round trip when ``REDIS_URL``
is set, one database upsert otherwise). It fails open: the limit protects the responder, an
unreachable counter is not worth refusing status answers for.
"""
from __future__ import annotations

import functools
import math

from mazevault import throttling


@functools.lru_cache(maxsize=16)
def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"1000/min"`` -> (1000, 60), in DRF's rate-string syntax; empty or None -> None (no limit).
    A rate that does not parse is a configuration error (ValueError), not a silent default."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    if not count.strip().isdigit() or period.strip()[:1].lower() not in "smhd" or not period.strip():
        raise ValueError(f"invalid rate {rate!r}: expected '<n>/<s|m|h|d>'")
    return throttling.parse_rate(rate)


def hit(key: str, limit: int, window: int) -> tuple[bool, int, int]:
    """Count one request for ``key``: (allowed, remaining, retry_after_seconds)."""
    counted = throttling.hit(f"ocsp:{key}", limit, window, fail_open=True)
    return counted.allowed, counted.remaining, 0 if counted.allowed else max(1, math.ceil(counted.retry_after))
