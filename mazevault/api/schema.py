"""drf-spectacular AutoSchema that documents the error envelope on every operation."""
from __future__ import annotations

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


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="Stable UPPER_SNAKE error code, e.g. VALIDATION_ERROR.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(help_text="Machine-readable details (fields, violations, …).")


_ERRORS = {
    "400": "Malformed input (VALIDATION_ERROR, INVALID_FORMAT, INVALID_CSR).",
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
    "422": "Policy violation (POLICY_VIOLATION, WEAK_KEY, UNSUPPORTED_KEY).",
}


class AutoSchema(SpectacularAutoSchema):
    public_operation = False

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        ref = self.resolve_serializer(ErrorSerializer, "response").ref
        errors = dict(_ERRORS)
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
            errors.update(_WRITE_ERRORS)
        responses = operation.setdefault("responses", {})
        for code, description in errors.items():
            responses.setdefault(code, {"content": {"application/json": {"schema": ref}}, "description": description})
        return operation
