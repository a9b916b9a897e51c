"""THE error handler: every REST error leaves as ``{"error": CODE, "message": text, "details": {…}}``.

DRF exceptions, ``DomainError`` from services, Django's model ``ValidationError`` (a rule in a
model's ``clean()``) and a unique-constraint race all map here, and nowhere else. Apps whose
layers raise errors of their own (the certificates app's pure PKI layer) register a translator
into a ``DomainError`` with ``register_translator`` when they load: the core imports no app.
Anything unexpected becomes a 500 with a generic message (the detail goes to the log, never to
the client), but client input must never reach that branch. A ``DomainError`` with a 5xx status
(a server fault such as a KEK that opens no key) is logged, and its message is generic.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import (PermissionDenied as DjangoPermissionDenied, RequestDataTooBig,
                                    SuspiciousOperation, ValidationError as DjangoValidationError)
from django.db import IntegrityError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from mazevault.errors import Conflict, DomainError, ValidationFailed, is_unique_violation

from .parsers import PayloadTooLarge

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ParseError: ("INVALID_FORMAT", "The request body is not valid JSON."),
    exceptions.NotAuthenticated: ("AUTH_REQUIRED", "Authentication is required."),
    exceptions.PermissionDenied: ("PERMISSION_DENIED", "You do not have permission to perform this action."),
    exceptions.NotFound: ("RESOURCE_NOT_FOUND", "Not found."),
    exceptions.MethodNotAllowed: ("METHOD_NOT_ALLOWED", None),
    exceptions.NotAcceptable: ("NOT_ACCEPTABLE", None),
    exceptions.UnsupportedMediaType: ("UNSUPPORTED_MEDIA_TYPE", None),
    exceptions.Throttled: ("RATE_LIMITED", None),
}

_TRANSLATORS: list[tuple[type[BaseException], Callable[[Any], DomainError]]] = []


def register_translator(exc_type: type[BaseException], translate: Callable[[Any], DomainError]) -> None:
    """Render ``exc_type`` (and subclasses) as the ``DomainError`` that ``translate`` returns."""
    if all(klass is not exc_type for klass, _ in _TRANSLATORS):
        _TRANSLATORS.append((exc_type, translate))


def _translated(exc: Exception) -> Exception:
    for klass, translate in _TRANSLATORS:
        if isinstance(exc, klass):
            return translate(exc)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            fields = {name: [str(m) for m in messages] for name, messages in exc.message_dict.items()}
        else:
            fields = {"non_field_errors": [str(m) for m in exc.messages]}
        first = next(iter(fields))
        return ValidationFailed(f"{first}: {fields[first][0]}", details={"fields": fields})
    if isinstance(exc, IntegrityError) and is_unique_violation(exc):
        # The backstop for a uniqueness race a service did not name (services use
        # unique_or_duplicate to say which field): two writers, one wins, the other is told.
        return Conflict("The request conflicts with an existing object.", details={"reason": "unique_violation"})
    return exc


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details or {}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested ValidationError detail as ``{"field.sub[0]": ["message", …]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else "non_field_errors"
            out.update(_flatten(value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    out.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request was malformed.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    exc = _translated(exc)

    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        body, code = error_body(exc.code, exc.message, exc.details), exc.status
        if code >= 500:
            logger.error("server fault answered %s %s: %s", code, exc.code, exc.message)
            headers["Retry-After"] = "30"
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields), "")
        message = f"{first}: {fields[first][0]}" if first else "Invalid input."
        body, code = error_body("VALIDATION_ERROR", message, {"fields": fields}), status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.AuthenticationFailed):
        err = getattr(exc, "default_code", "AUTH_INVALID")
        err = err if err in {"AUTH_INVALID", "AUTH_EXPIRED"} else "AUTH_INVALID"
        body, code = error_body(err, str(exc.detail)), status.HTTP_401_UNAUTHORIZED
    elif isinstance(exc, exceptions.APIException):
        err, message = _DRF_CODES.get(type(exc), (None, None))
        if err is None:
            for klass, (candidate, text) in _DRF_CODES.items():
                if isinstance(exc, klass):
                    err, message = candidate, text
                    break
        err = err or str(getattr(exc, "default_code", "ERROR")).upper()
        if isinstance(exc, exceptions.ParseError) and message is not None:
            message = str(exc.detail) if str(exc.detail) != exceptions.ParseError.default_detail else message
        body, code = error_body(err, message or str(exc.detail)), exc.status_code
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
            body["details"] = {"retry_after_seconds": int(exc.wait) + 1}
    else:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__ if context else "?")
        set_rollback()
        return Response(error_body("INTERNAL_ERROR", "An internal error occurred."), status=500)

    if code == status.HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="mazevault"')
    set_rollback()
    return Response(body, status=code, headers=headers)


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("RESOURCE_NOT_FOUND", "Not found."), status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(error_body("INTERNAL_ERROR", "An internal error occurred."), status=500)


def json_400(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("INVALID_FORMAT", "Bad request."), status=400)


def json_403(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("PERMISSION_DENIED", "Forbidden."), status=403)
