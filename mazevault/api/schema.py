"""OpenAPI generation: the Bearer scheme, filter bounds, and an AutoSchema that documents the error
envelope, rate-limit headers and empty query values on every operation.

Extensions register on import; ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` points here, so this module is
loaded before any schema is generated.
"""
from __future__ import annotations

from http import HTTPStatus

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer mv_pat_…`` (mazevault.authentication.BearerTokenAuthentication)."""

    target_class = "mazevault.authentication.BearerTokenAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "mv_pat_…",
                "description": "An API token (`mv_pat_…`) from `/api/v1/users/tokens` or `manage.py create_token`."}


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter parameters, plus the bounds the filters enforce (min_value/max_value, max_length)."""

    priority = 1

    def resolve_filter_field(self, auto_schema, model, filterset_class, field_name, filter_field):
        parameters = super().resolve_filter_field(auto_schema, model, filterset_class, field_name, filter_field)
        extra = filter_field.extra
        for parameter in parameters:
            schema = parameter["schema"]
            if schema.get("type") in {"integer", "number"}:
                for option, keyword in (("min_value", "minimum"), ("max_value", "maximum")):
                    if extra.get(option) is not None:
                        schema.setdefault(keyword, extra[option])
            elif schema.get("type") == "string" and extra.get("max_length"):
                schema.setdefault("maxLength", extra["max_length"])
        return parameters


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Stable UPPER_SNAKE error code, e.g. VALIDATION_ERROR.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(help_text="Machine-readable details (fields, violations, …).")


_ERRORS = {
    "400": "Malformed input (VALIDATION_ERROR; INVALID_FORMAT for an unparsable CSR or a bad signature, "
           "details.reason says which). An unknown query parameter of a list is a VALIDATION_ERROR naming it.",
    "401": "Missing, invalid or expired credentials (AUTH_REQUIRED, AUTH_INVALID, AUTH_EXPIRED).",
    "403": "The token lacks the permission (PERMISSION_DENIED).",
    "404": "Unknown id, or an object of another tenant (RESOURCE_NOT_FOUND).",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "429": "Rate limited (RATE_LIMITED); see Retry-After.",
}
_WRITE_ERRORS = {
    "409": "State conflict or duplicate (RESOURCE_CONFLICT, DUPLICATE_NAME).",
    "413": "Payload too large (PAYLOAD_TOO_LARGE).",
    "415": "Unsupported media type.",
    "422": "Policy violation (POLICY_VIOLATION: a weak or unsupported key or any template rule; "
           "details.violations lists each with its field and stable code, docs/errors.md).",
}


_PUBLIC_SKIPS = {"401", "403"}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"},
                          "description": "Requests allowed per window (absent when the limit is switched off)."},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "Requests left in the current window."},
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}


class AutoSchema(SpectacularAutoSchema):
    """Adds the error envelope (every operation; no 401/403 on public ones), rate-limit headers (throttled
    views), Retry-After (429), allowEmptyValue on optional query parameters, and status phrases as the
    description of responses that have none."""

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        ref = self.resolve_serializer(ErrorSerializer, "response").ref
        errors = dict(_ERRORS)
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
            errors.update(_WRITE_ERRORS)
        public = not any(requirement for requirement in operation.get("security", []))
        throttled = bool(getattr(self.view, "throttle_classes", None))
        if not throttled:
            errors.pop("429")
        for parameter in operation.get("parameters", []):
            # Filters and pagination treat ``?name=`` like an absent parameter.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        responses = operation.setdefault("responses", {})
        for code, description in errors.items():
            if public and code in _PUBLIC_SKIPS:
                continue
            responses.setdefault(code, {"content": {"application/json": {"schema": ref}}, "description": description})
        for code, response in responses.items():
            if not response.get("description") and code.isdigit():
                response["description"] = HTTPStatus(int(code)).phrase
        if throttled:
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                for name, header in _RATE_HEADERS.items():
                    headers.setdefault(name, dict(header))
                if code == "429":
                    headers.update(_RETRY_AFTER)
        return operation

