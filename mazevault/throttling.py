"""Rate limits from ``MAZEVAULT_RATE_LIMIT_*`` (DRF rate strings; empty switches a limit off).

One primitive, ``hit(key, limit, window)``: a fixed-window counter shared by every replica and
incremented atomically in **one round trip** —

- Redis (``REDIS_URL`` set): ``INCR`` and, on the window's first event, ``EXPIRE``, in one server-side
  script (``EVALSHA``: one command, one reply, atomic) on the key of the current window;
- otherwise the database: one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on ``RateCounter``
  (one row per key, reset when a new window starts), on PostgreSQL and SQLite alike.

When Redis cannot be reached (docs/performance.md, "failure direction"):

- **API limits fail open** (``fail_open=True``): the request is allowed, without a counter, and a
  warning is logged (at most once per ``_LOG_EVERY`` seconds per process). A cache outage must not
  take the API down; the limit protects capacity, not secrets.
- **Authentication limits fail closed** (``fail_open=False``): they count in the database instead,
  and if that fails too the attempt is refused. A limit that guards credentials is never skipped.

Responses carry ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; a refusal is a 429 with
``Retry-After``. Failed sign-ins (admin console and API tokens) are limited per client address and,
where there is one, per user name: ``auth_failure_blocked`` / ``record_auth_failure``.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections, router
from rest_framework.throttling import BaseThrottle

from .middleware import client_ip

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}
_LOG_EVERY = 10.0
_REDIS_TIMEOUT = 0.25  # seconds: an unreachable Redis must not stall requests


@dataclass(frozen=True)
class Hit:
    """The state of one counter after (or, for ``peek``, without) counting a request."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until the window resets (0 when allowed)


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"100/min"`` -> (100, 60); empty -> None (limit off). Same syntax as DRF's rates."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS.get(period.strip().lower(), _PERIODS.get(period.strip()[:1].lower(), 60))


# --- The stores ---------------------------------------------------------------------------------
class StoreUnavailable(Exception):
    """The counter store could not be reached."""


_redis_lock = threading.Lock()
_redis_client = None
_incr_script = None
_last_warning = 0.0

# INCR, and EXPIRE when this INCR created the key: the counter cannot outlive its window, even if
# the client dies between the two (they run as one script, atomically).
_INCR_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


def _redis():
    global _redis_client, _incr_script
    if _redis_client is None:
        with _redis_lock:
            if _redis_client is None:
                import redis

                client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=_REDIS_TIMEOUT,
                                              socket_connect_timeout=_REDIS_TIMEOUT)
                _incr_script = client.register_script(_INCR_LUA)  # EVALSHA, loading it on NOSCRIPT
                _redis_client = client
    return _redis_client


def _redis_count(key: str, window: int, bucket: int, increment: bool) -> int:
    name = f"mv:rl:{key}:{bucket}"
    try:
        client = _redis()
        if not increment:
            value = client.get(name)
            return int(value or 0)
        return int(_incr_script(keys=[name], args=[window + 1]))
    except Exception as exc:  # redis raises several families (connection, timeout, response)
        raise StoreUnavailable(str(exc)) from exc


def _db_count(key: str, bucket: int, increment: bool) -> int:
    from .models import RateCounter

    alias = router.db_for_write(RateCounter)
    connection = connections[alias]
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    try:
        with connection.cursor() as cursor:
            if not increment:
                cursor.execute(f"SELECT count FROM {table} WHERE key = %s AND window_start = %s", [key, bucket])
                row = cursor.fetchone()
                return row[0] if row else 0
            cursor.execute(
                f"INSERT INTO {table} (key, window_start, count) VALUES (%s, %s, 1) "
                f"ON CONFLICT (key) DO UPDATE SET count = CASE WHEN {table}.window_start = excluded.window_start "
                f"THEN {table}.count + 1 ELSE 1 END, window_start = excluded.window_start RETURNING count",
                [key, bucket])
            return cursor.fetchone()[0]
    except DatabaseError as exc:
        raise StoreUnavailable(str(exc)) from exc


def _warn(message: str) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _LOG_EVERY:
        _last_warning = now
        logger.warning(message)


def _count(key: str, limit: int, window: int, *, fail_open: bool, increment: bool) -> Hit:
    now = time.time()
    bucket = int(now // window) * window  # the window's start, in epoch seconds
    reset_in = bucket + window - now
    try:
        if settings.REDIS_URL:
            try:
                count = _redis_count(key, window, bucket, increment)
            except StoreUnavailable as exc:
                if fail_open:
                    _warn(f"rate limit store (Redis) unreachable, API limits not counted: {exc}")
                    return Hit(True, limit, limit, 0.0)
                _warn(f"rate limit store (Redis) unreachable, authentication limits count in the database: {exc}")
                count = _db_count(key, bucket, increment)
        else:
            count = _db_count(key, bucket, increment)
    except StoreUnavailable as exc:
        if fail_open:
            _warn(f"rate limit store unreachable, API limits not counted: {exc}")
            return Hit(True, limit, limit, 0.0)
        _warn(f"rate limit store unreachable, refusing authentication attempts: {exc}")
        return Hit(False, limit, 0, reset_in)
    allowed = count <= limit if increment else count < limit
    return Hit(allowed, limit, max(0, limit - count), 0.0 if allowed else reset_in)


def hit(key: str, limit: int, window: int, *, fail_open: bool = True) -> Hit:
    """Count one event on ``key`` in the current ``window``-second window; allowed while the count
    is at most ``limit``. One atomic round trip to Redis (or one statement on the database)."""
    return _count(key, limit, window, fail_open=fail_open, increment=True)


def peek(key: str, limit: int, window: int, *, fail_open: bool = True) -> Hit:
    """Whether one more event on ``key`` would be allowed, without counting it (one read)."""
    return _count(key, limit, window, fail_open=fail_open, increment=False)


def purge_stale(older_than_seconds: int = 86400) -> int:
    """Delete database counters whose window started more than ``older_than_seconds`` ago (Redis
    keys expire by themselves)."""
    from .models import RateCounter

    return RateCounter.objects.filter(window_start__lt=int(time.time()) - older_than_seconds).delete()[0]


# --- DRF throttles ---------------------------------------------------------------------------------
class _SettingsRateThrottle(BaseThrottle):
    scope = ""
    setting_name = ""
    fail_open = True

    def get_ident_key(self, request, view) -> str:
        """What one counter counts; subclasses narrow it (per token, per client address)."""
        return f"ip:{client_ip(request) or 'unknown'}"

    def allow_request(self, request, view) -> bool:
        rate = parse_rate(getattr(settings, self.setting_name))
        if rate is None:
            return True
        limit, window = rate
        result = hit(f"{self.scope}:{self.get_ident_key(request, view)}", limit, window, fail_open=self.fail_open)
        self._wait = result.retry_after
        request._mv_ratelimit = (limit, result.remaining)
        return result.allowed

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class ApiRateThrottle(_SettingsRateThrottle):
    """Per token (or per user for session calls, per client address otherwise). Fails open."""

    scope = "api"
    setting_name = "MAZEVAULT_RATE_LIMIT_API"

    def get_ident_key(self, request, view) -> str:
        token = getattr(request, "auth", None)
        if token is not None and hasattr(token, "pk"):
            return f"token:{token.pk}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"ip:{client_ip(request) or 'unknown'}"


class AuthRateThrottle(_SettingsRateThrottle):
    """Per client address, for endpoints that mint credentials. Fails closed."""

    scope = "mint"
    setting_name = "MAZEVAULT_RATE_LIMIT_AUTH"
    fail_open = False

    def get_ident_key(self, request, view) -> str:
        return f"ip:{client_ip(request) or 'unknown'}"


# --- Failed sign-ins ---------------------------------------------------------------------------------
def _auth_keys(client: str | None, username: str | None) -> list[str]:
    keys = [f"authfail:ip:{client or 'unknown'}"]
    if username:
        keys.append(f"authfail:user:{username.strip().lower()[:150]}")
    return keys


def auth_failure_blocked(client: str | None, username: str | None = None) -> Hit | None:
    """The refusal when the client, or the user name, used up its failed attempts in this window
    (``MAZEVAULT_RATE_LIMIT_AUTH``); None when another attempt may proceed. Fails closed."""
    rate = parse_rate(settings.MAZEVAULT_RATE_LIMIT_AUTH)
    if rate is None:
        return None
    limit, window = rate
    for key in _auth_keys(client, username):
        result = peek(key, limit, window, fail_open=False)
        if not result.allowed:
            return result
    return None


def record_auth_failure(client: str | None, username: str | None = None) -> None:
    """Count one failed attempt against the client and (if given) the user name."""
    rate = parse_rate(settings.MAZEVAULT_RATE_LIMIT_AUTH)
    if rate is None:
        return
    limit, window = rate
    for key in _auth_keys(client, username):
        hit(key, limit, window, fail_open=False)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
