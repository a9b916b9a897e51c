"""The base viewset: tenant scoping in ``get_queryset`` and audited permission checks."""
from __future__ import annotations

from typing import Any
from uuid import UUID

from rest_framework import viewsets
from rest_framework.request import Request

from mazevault import audit
from mazevault.errors import PermissionDenied
from mazevault.models import Severity
from mazevault.tenancy import Access, get_access


def deny(request: Request, permission: str, *, organization_id: Any = None, project_id: Any = None,
         entity: Any = None) -> PermissionDenied:
    """Audit a refusal (``rbac.permission.denied``) and return the error to raise."""
    audit.record("rbac.permission.denied", actor=request.user, entity=entity, severity=Severity.WARNING,
                 details={"permission": permission, "method": request.method, "path": request.path},
                 organization_id=organization_id, project_id=project_id)
    return PermissionDenied(f"Missing permission {permission}.", details={"permission": permission})


class RateLimitHeadersMixin:
    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        limit = getattr(request, "_mv_ratelimit", None)
        if limit is not None:
            response["X-RateLimit-Limit"] = str(limit[0])
            response["X-RateLimit-Remaining"] = str(limit[1])
        return response


class ScopedViewSet(RateLimitHeadersMixin, viewsets.GenericViewSet):
    """Objects another tenant owns never reach a view: they are filtered out, so they answer 404.

    ``read_permission`` scopes the queryset; ``require()`` checks an action's permission on the
    object's own organization/project and audits a refusal.
    """

    read_permission = ""
    org_field = "organization_id"
    project_field: str | None = "project_id"
    org_wide_visible = False
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @property
    def access(self) -> Access:
        return get_access(self.request)

    def get_queryset(self):
        queryset = super().get_queryset()
        q = self.access.scope_q(self.read_permission, org_field=self.org_field, project_field=self.project_field,
                                org_wide_visible=self.org_wide_visible)
        return queryset if q is None else queryset.filter(q)

    def get_object(self):
        value = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        try:
            UUID(str(value))
        except ValueError:
            from mazevault.errors import NotFound
            raise NotFound("Not found.") from None
        return super().get_object()

    def require_ca_use(self, ca: Any, *, field: str) -> None:
        """Using ``ca`` to sign (as a new CA's parent, as a template's issuer) needs ``ca:admin`` on the
        CA's own organization/project: holding it on some project of the organization is not enough
        for an organization-wide CA. A refusal is audited and names ``field``."""
        if not self.access.has("ca:admin", organization_id=ca.organization_id, project_id=ca.project_id):
            error = deny(self.request, "ca:admin", organization_id=ca.organization_id, project_id=ca.project_id,
                         entity=ca)
            error.details["field"] = field
            error.details["reason"] = "ca_outside_your_ca_admin_scope"
            raise error

    def require(self, permission: str, *, obj: Any = None, organization_id: Any = None,
                project_id: Any = None) -> None:
        if obj is not None:
            organization_id = getattr(obj, "organization_id", organization_id)
            project_id = getattr(obj, "project_id", project_id)
        if not self.access.has(permission, organization_id=organization_id, project_id=project_id):
            raise deny(self.request, permission, organization_id=organization_id, project_id=project_id, entity=obj)
