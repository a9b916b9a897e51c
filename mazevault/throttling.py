"""Rate limits from ``MAZEVAULT_RATE_LIMIT_*`` (DRF rate strings; empty switches a limit off).

Counters live in Django's cache: the database cache in the embedded mode, Redis when
``REDIS_URL`` is set, so that every web replica shares them. Responses carry
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; a refusal is a 429 with ``Retry-After``.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    setting_name = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.setting_name) or None

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        if self.rate is not None and self.key is not None:
            remaining = max(0, self.num_requests - len(self.history))
            request._mv_ratelimit = (self.num_requests, remaining)
        return allowed


class ApiRateThrottle(_SettingsRateThrottle):
    """Per token (or per client address for unauthenticated calls)."""

    scope = "api"
    setting_name = "MAZEVAULT_RATE_LIMIT_API"

    def get_cache_key(self, request, view) -> str:
        token = getattr(request, "auth", None)
        if token is not None and hasattr(token, "pk"):
            ident = f"token:{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AuthRateThrottle(_SettingsRateThrottle):
    """Per client address, for endpoints that mint credentials."""

    scope = "auth"
    setting_name = "MAZEVAULT_RATE_LIMIT_AUTH"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
