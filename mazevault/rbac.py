"""Built-in roles and the permission strings they grant (one table; docs/permissions.md mirrors it)."""
from __future__ import annotations

from django.db import models

PERMISSIONS: tuple[str, ...] = (
    "organization:read", "organization:write",
    "project:read", "project:write",
    "ca:read", "ca:write", "ca:admin",
    "template:read", "template:write",
    "certificate:read", "certificate:request", "certificate:write", "certificate:approve",
    "certificate:revoke", "certificate:import", "certificate:archive", "certificate:permanent_delete",
    "rotation:read", "rotation:write", "rotation:execute",
    "audit:read",
)

_READ = frozenset(p for p in PERMISSIONS if p.endswith(":read") and p != "audit:read")


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    PROJECT_ADMIN = "project_admin", "Project admin"
    CERTIFICATE_MANAGER = "certificate_manager", "Certificate manager"
    USER = "user", "User"
    AUDITOR = "auditor", "Auditor"
    VIEWER = "viewer", "Viewer"


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ADMIN: frozenset(PERMISSIONS),
    Role.PROJECT_ADMIN: frozenset({
        "organization:read", "project:read", "project:write",
        "ca:read", "ca:write", "ca:admin", "template:read", "template:write",
        "certificate:read", "rotation:read",
    }),
    Role.CERTIFICATE_MANAGER: frozenset({
        "organization:read", "project:read", "ca:read", "template:read",
        "certificate:read", "certificate:request", "certificate:write", "certificate:approve",
        "certificate:revoke", "certificate:import", "certificate:archive",
        "rotation:read", "rotation:write", "rotation:execute",
    }),
    Role.USER: frozenset({
        "organization:read", "project:read", "ca:read", "template:read",
        "certificate:read", "certificate:request",
    }),
    Role.AUDITOR: _READ | {"audit:read"},
    Role.VIEWER: _READ,
}


def role_grants(role: str, permission: str) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
