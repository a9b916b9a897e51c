"""Bearer API tokens (``mv_pat_…``, stored as SHA-256) and session auth for the admin/browsable API."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import TOKEN_PREFIX, ApiToken, hash_token


class AuthExpired(exceptions.AuthenticationFailed):
    default_code = "AUTH_EXPIRED"
    default_detail = "The API token has expired."


class AuthInvalid(exceptions.AuthenticationFailed):
    default_code = "AUTH_INVALID"
    default_detail = "The API token is not valid."


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise AuthInvalid()
        token = (ApiToken.objects.select_related("user").filter(token_hash=hash_token(parts[1])).first())
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise AuthInvalid()
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise AuthExpired()
        touch = timedelta(seconds=settings.MAZEVAULT_TOKEN_TOUCH_SECONDS)
        if token.last_used_at is None or now - token.last_used_at > touch:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="mazevault"'


class CsrfSessionAuthentication(authentication.SessionAuthentication):
    """Session auth (admin users in the browsable API), CSRF-checked as DRF does."""
