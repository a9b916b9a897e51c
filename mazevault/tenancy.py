"""Who may do what where: a request's roles resolved once, and queryset scoping from them.

A user's role assignments are read once per process and kept (``mazevault.cache``) until the cache
stamp moves: any change to a role assignment, a user or a project moves it, so a role removed in
one replica stops granting anything in every replica within ``cache.POLL_SECONDS``.

An object belongs to an organization and, optionally, one project. A role on the organization
covers every project in it; a role on a project covers that project and lets its holder see
(never change) the organization-wide objects of its organization, such as shared templates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from django.db.models import Q

from . import cache
from .rbac import ROLE_PERMISSIONS


@dataclass
class Access:
    user_id: int | None
    is_superuser: bool = False
    scopes: frozenset[str] | None = None
    org_roles: dict[UUID, set[str]] = field(default_factory=dict)
    project_roles: dict[UUID, set[str]] = field(default_factory=dict)
    project_org: dict[UUID, UUID] = field(default_factory=dict)

    @classmethod
    def for_user(cls, user, scopes: list[str] | None = None) -> "Access":
        if user is None or not user.is_authenticated:
            return cls(user_id=None)
        org_roles, project_roles, project_org = cache.memo("roles", user.pk, lambda: _load_roles(user.pk))
        # The dicts are shared with other requests of this process: Access only reads them.
        return cls(user_id=user.pk, is_superuser=user.is_superuser, scopes=frozenset(scopes) if scopes else None,
                   org_roles=org_roles, project_roles=project_roles, project_org=project_org)

    def sees(self, permission: str, *, organization_id: UUID | None, project_id: UUID | None,
             org_wide_visible: bool = False) -> bool:
        """The Python twin of ``scope_q``: whether an object owned by (organization_id,
        project_id) is in the caller's view with ``permission``, without a query."""
        if not self._scoped(permission):
            return False
        if self.is_superuser:
            return True
        if organization_id in self.org_ids(permission):
            return True
        projects = self.project_ids(permission)
        if project_id is not None:
            return project_id in projects
        return org_wide_visible and organization_id in {self.project_org[p] for p in projects}

    def in_scope(self, permission: str) -> bool:
        """The token's scopes (if any) allow ``permission``."""
        return self.scopes is None or permission in self.scopes

    _scoped = in_scope

    def visible_organization_ids(self, permission: str = "organization:read") -> set[UUID]:
        """Organizations with a role granting ``permission`` on them or on one of their projects."""
        if not self._scoped(permission):
            return set()
        return self.org_ids(permission) | {self.project_org[p] for p in self.project_ids(permission)}

    def sees_organization(self, organization_id: UUID) -> bool:
        """An existing organization the caller may see (an unknown id is never "seen", even by a superuser)."""
        if self.is_superuser:
            from .models import Organization

            return self.in_scope("organization:read") and Organization.objects.filter(pk=organization_id).exists()
        return organization_id in self.visible_organization_ids()

    def _roles_grant(self, roles: set[str], permission: str) -> bool:
        return any(permission in ROLE_PERMISSIONS.get(role, ()) for role in roles)

    def has(self, permission: str, *, organization_id: UUID | None, project_id: UUID | None = None) -> bool:
        """True when a role on the organization, or on the given project, grants ``permission``."""
        if not self._scoped(permission):
            return False
        if self.is_superuser:
            return True
        if organization_id is not None and self._roles_grant(self.org_roles.get(organization_id, set()), permission):
            return True
        if project_id is not None and self._roles_grant(self.project_roles.get(project_id, set()), permission):
            return True
        return False

    def has_anywhere(self, permission: str) -> bool:
        if not self._scoped(permission):
            return False
        return self.is_superuser or any(
            self._roles_grant(roles, permission)
            for roles in (*self.org_roles.values(), *self.project_roles.values()))

    def org_ids(self, permission: str) -> set[UUID]:
        return {org for org, roles in self.org_roles.items() if self._roles_grant(roles, permission)}

    def project_ids(self, permission: str) -> set[UUID]:
        return {p for p, roles in self.project_roles.items() if self._roles_grant(roles, permission)}

    def scope_q(self, permission: str, *, org_field: str = "organization_id", project_field: str | None = "project_id",
                org_wide_visible: bool = False) -> Q | None:
        """A filter for objects the holder may see with ``permission``; None means everything."""
        if not self._scoped(permission):
            return Q(pk__in=[])
        if self.is_superuser:
            return None
        q = Q(**{f"{org_field}__in": self.org_ids(permission)})
        if project_field is not None:
            projects = self.project_ids(permission)
            q |= Q(**{f"{project_field}__in": projects})
            if org_wide_visible:
                orgs = {self.project_org[p] for p in projects}
                q |= Q(**{f"{project_field}__isnull": True, f"{org_field}__in": orgs})
        return q


def cached_project(project_id: UUID):
    """The project with its organization, read once per process and cache stamp (shared: read-only)."""
    from .models import Project

    return cache.memo("project", project_id,
                      lambda: Project.objects.select_related("organization").filter(pk=project_id).first())


def _load_roles(user_id: int) -> tuple[dict, dict, dict]:
    """(org_roles, project_roles, project_org) of a user: one query."""
    from .models import RoleAssignment

    org_roles: dict[UUID, set[str]] = {}
    project_roles: dict[UUID, set[str]] = {}
    project_org: dict[UUID, UUID] = {}
    rows = RoleAssignment.objects.filter(user_id=user_id).values_list(
        "role", "organization_id", "project_id", "project__organization_id")
    for role, org_id, project_id, project_org_id in rows:
        if org_id is not None:
            org_roles.setdefault(org_id, set()).add(role)
        else:
            project_roles.setdefault(project_id, set()).add(role)
            project_org[project_id] = project_org_id
    return org_roles, project_roles, project_org


def get_access(request) -> Access:
    """The request's Access, built once (one query) and cached on the request."""
    cached = getattr(request, "_mv_access", None)
    if cached is not None:
        return cached
    token = getattr(request, "auth", None)
    scopes = getattr(token, "scopes", None) if token is not None and hasattr(token, "token_hash") else None
    access = Access.for_user(request.user, scopes)
    request._mv_access = access
    return access
