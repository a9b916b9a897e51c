"""Tenancy and credential workflows: organizations, projects, role assignments, API tokens."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import audit, cache
from .errors import Conflict, DuplicateName, ValidationFailed
from .models import TOKEN_PREFIX, ApiToken, Organization, Project, RoleAssignment, Severity, hash_token
from .rbac import PERMISSIONS, Role

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"24h"``, ``"30d"``, ``"90m"`` → timedelta (the product's token duration syntax)."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValidationFailed("duration must look like 30m, 24h, 30d or 4w.", details={"field": "duration"})
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def create_organization(*, name: str, actor: Any, description: str = "") -> Organization:
    """Create an organization; its creator becomes its admin."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                org = Organization.objects.create(name=name, description=description)
        except IntegrityError:
            raise DuplicateName("An organization with this name already exists.", details={"field": "name"}) from None
        if getattr(actor, "is_authenticated", False):
            RoleAssignment.objects.create(user=actor, role=Role.ADMIN, organization=org)
        audit.record("organization.created", actor=actor, entity=org, details={"name": name})
    return org


def create_project(*, organization: Organization, name: str, environment: str, actor: Any,
                   description: str = "") -> Project:
    with transaction.atomic():
        try:
            with transaction.atomic():
                project = Project.objects.create(organization=organization, name=name, environment=environment,
                                                 description=description)
        except IntegrityError:
            raise DuplicateName("A project with this name already exists in the organization.",
                                details={"field": "name"}) from None
        audit.record("project.created", actor=actor, entity=project, details={"name": name, "environment": environment})
    return project


def assign_role(*, user: Any, role: str, actor: Any, organization: Organization | None = None,
                project: Project | None = None) -> RoleAssignment:
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role}.", details={"field": "role", "allowed": list(Role.values)})
    with transaction.atomic():
        assignment, created = RoleAssignment.objects.get_or_create(user=user, role=role, organization=organization,
                                                                   project=project)
        if created:
            audit.record("rbac.role.assigned", actor=actor, entity=("user", user.pk), severity=Severity.WARNING,
                         organization_id=organization.pk if organization else project.organization_id,
                         project_id=project.pk if project else None,
                         details={"user": user.get_username(), "role": role})
    return assignment


def create_token(*, user: Any, name: str, actor: Any, scopes: list[str] | None = None,
                 duration: str | None = None) -> tuple[ApiToken, str]:
    """Mint a token; the raw value is returned once and only its SHA-256 is stored."""
    scopes = list(dict.fromkeys(scopes or []))
    unknown = [s for s in scopes if s not in PERMISSIONS]
    if unknown:
        raise ValidationFailed("Unknown scopes.", details={"field": "scopes", "unknown": unknown})
    expires_at = None
    if duration:
        lifetime = parse_duration(duration)
        if lifetime > timedelta(days=settings.MAZEVAULT_MAX_TOKEN_DAYS):
            raise ValidationFailed(f"Tokens live at most {settings.MAZEVAULT_MAX_TOKEN_DAYS} days.",
                                   details={"field": "duration"})
        expires_at = timezone.now() + lifetime
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, token_hash=hash_token(raw), token_prefix=raw[:12],
                                        scopes=scopes, expires_at=expires_at)
        audit.record("auth.token.created", actor=actor, entity=token,
                     details={"name": name, "scopes": scopes, "expires_at": expires_at, "user": user.get_username()})
    return token, raw


def revoke_token(token: ApiToken, *, actor: Any) -> ApiToken:
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if not updated:
            raise Conflict("The token is already revoked.")
        cache.bump()  # QuerySet.update() sends no signal: every process drops the cached token
        token.refresh_from_db()
        audit.record("auth.token.revoked", actor=actor, entity=token, severity=Severity.WARNING,
                     details={"name": token.name})
    return token
