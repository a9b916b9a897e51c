"""Bearer API tokens (``mv_pat_…``, stored as SHA-256), session auth for the admin/browsable API,
and the throttled admin login.

A token found in the database is kept in this process's memory (``mazevault.cache``, keyed by its
hash) together with its user, so an authenticated request normally reads nothing from the
database to authenticate. Revoking the token, deactivating the user or changing either moves the
cache stamp: every process stops accepting the token within ``cache.POLL_SECONDS`` (the process
that revoked it at once). Expiry is checked on every request against the clock.

Failed attempts are limited per client address (``MAZEVAULT_RATE_LIMIT_AUTH``): a token that is not
in memory is looked up only if the client still has attempts left, and a lookup that fails counts
one. A token already in memory is known to be genuine, so it skips the limiter entirely (guessing
one is what the limiter bounds, and a guess is never in memory). Admin logins are limited per client
address and per user name; every attempt is audited.
"""
from __future__ import annotations

import copy
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from rest_framework import authentication, exceptions

from . import audit, cache, throttling
from .middleware import client_ip
from .models import TOKEN_PREFIX, ApiToken, Severity, hash_token


class AuthExpired(exceptions.AuthenticationFailed):
    default_code = "AUTH_EXPIRED"
    default_detail = "The API token has expired."


class AuthInvalid(exceptions.AuthenticationFailed):
    default_code = "AUTH_INVALID"
    default_detail = "The API token is not valid."


def _load_token(digest: str) -> ApiToken | None:
    """The token with this hash and its user (one query); None when it does not exist."""
    return ApiToken.objects.select_related("user").filter(token_hash=digest).first()


def _private_copy(token: ApiToken) -> ApiToken:
    """A per-request copy of a cached token and its user, so that no request can alter the shared
    instances (or see another request's changes to them)."""
    user = copy.copy(token.user)
    user._state = copy.copy(user._state)
    user._state.fields_cache = {}
    mine = copy.copy(token)
    mine._state = copy.copy(token._state)
    mine._state.fields_cache = {"user": user}
    return mine


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        client = client_ip(request)
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            self._refuse(client, AuthInvalid())
        digest = hash_token(parts[1])

        def checked_load() -> ApiToken | None:
            # Only tokens not in memory get here: a guess always does. Refuse before looking it up
            # once the client used up its failed attempts (fails closed: see throttling.py).
            blocked = throttling.auth_failure_blocked(client)
            if blocked is not None:
                raise exceptions.Throttled(wait=blocked.retry_after)
            found = _load_token(digest)
            # Only usable tokens are cached; a revoked token or inactive user is re-read (and
            # counted as a failure) every time.
            if found is None or found.revoked_at is not None or not found.user.is_active:
                return None
            return found

        shared = cache.memo("token", digest, checked_load)
        if shared is None:
            self._refuse(client, AuthInvalid())
        now = timezone.now()
        if shared.expires_at is not None and shared.expires_at <= now:
            self._refuse(client, AuthExpired())
        touch = timedelta(seconds=settings.MAZEVAULT_TOKEN_TOUCH_SECONDS)
        if shared.last_used_at is None or now - shared.last_used_at > touch:
            ApiToken.objects.filter(pk=shared.pk).update(last_used_at=now)
            shared.last_used_at = now  # this process touches it again only after ``touch``
        token = _private_copy(shared)
        return token.user, token

    @staticmethod
    def _refuse(client: str | None, error: exceptions.AuthenticationFailed) -> None:
        throttling.record_auth_failure(client)
        audit.record("auth.token.failed", actor="anonymous", severity=Severity.WARNING,
                     details={"reason": error.default_code})
        raise error

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mazevault"'


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """Session auth (admin users in the browsable API), CSRF-checked as DRF does."""


# --- The admin login, throttled and audited ----------------------------------------------------
@never_cache
@csrf_protect
def admin_login(request: HttpRequest) -> HttpResponse:
    """The console's login page (``admin.site.login``) with failed attempts limited per client
    address and per user name (``MAZEVAULT_RATE_LIMIT_AUTH``) and every attempt audited:
    ``auth.login.succeeded`` (info), ``auth.login.failed`` and ``auth.login.throttled`` (warning)."""
    if request.method != "POST" or (request.user.is_authenticated and request.user.is_staff):
        return admin.site.login(request)
    client = client_ip(request)
    username = str(request.POST.get("username", ""))[:150]
    blocked = throttling.auth_failure_blocked(client, username)
    if blocked is not None:
        audit.record("auth.login.throttled", actor="anonymous", severity=Severity.WARNING,
                     details={"username": username, "retry_after_seconds": int(blocked.retry_after) + 1})
        return _throttled_page(request, username, blocked.retry_after)
    response = admin.site.login(request)
    if request.user.is_authenticated and request.user.is_staff:
        audit.record("auth.login.succeeded", actor=request.user, details={"username": username})
    else:
        throttling.record_auth_failure(client, username)
        audit.record("auth.login.failed", actor="anonymous", severity=Severity.WARNING,
                     details={"username": username})
    return response


def _throttled_page(request: HttpRequest, username: str, retry_after: float) -> HttpResponse:
    """The login page again, with the refusal as the form's error, as a 429 with Retry-After."""
    seconds = throttling.retry_after_header(retry_after)
    form = AdminAuthenticationForm(request)
    form._errors = ErrorDict({"__all__": ErrorList([
        f"Too many failed sign-in attempts. Try again in {seconds} seconds."])})
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": username,
        "form": form,
        REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME, request.GET.get(REDIRECT_FIELD_NAME, "")),
    }
    response = TemplateResponse(request, "admin/login.html", context, status=429)
    response["Retry-After"] = seconds
    return response
