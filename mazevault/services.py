"""Core workflows: organizations, projects, role assignments, API tokens, and the generic audited
create/update/delete every app uses for plain objects.

The core imports no app (apps import the core): these helpers know models only through Django's
``Model`` API.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError
from django.utils import timezone

from . import audit, cache
from .errors import Conflict, DuplicateName, PermissionDenied, ValidationFailed, is_unique_violation
from .models import TOKEN_PREFIX, ApiToken, Organization, Project, RoleAssignment, Severity, hash_token
from .rbac import PERMISSIONS, Role

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@contextmanager
def unique_or_duplicate(message: str, *, field: str = "name") -> Iterator[None]:
    """Run the block in a savepoint; a uniqueness violation in it becomes 409 ``DUPLICATE_NAME``.

    Checking a name and then inserting is a race (two requests both see it free); the database's
    unique constraint decides, and this turns its refusal into the client error it is. Other
    integrity errors are bugs and propagate unchanged.
    """
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise DuplicateName(message, details={"field": field}) from None
        raise


def create_object(obj: Model, *, actor: Any, action: str, details: dict[str, Any] | None = None) -> Model:
    """Insert ``obj`` and audit ``action`` in one transaction; a duplicate name is a 409."""
    with transaction.atomic():
        with unique_or_duplicate("An object with this name already exists."):
            obj.save(force_insert=True)
        audit.record(action, actor=actor, entity=obj, details=details or {"name": str(obj)})
    return obj


def update_object(obj: Model, changes: dict[str, Any], *, actor: Any, action: str,
                  severity: str = Severity.INFO) -> Model:
    """Apply plain field changes and audit them (old and new values) in one transaction.

    Nothing is written (and nothing audited) when no value actually changes.
    """
    diff = {}
    for name, value in changes.items():
        old = getattr(obj, name)
        if old != value:
            diff[name] = {"old": old, "new": value}
            setattr(obj, name, value)
    if not diff:
        return obj
    fields = [*diff.keys()]
    if any(f.name == "updated_at" for f in obj._meta.concrete_fields):
        fields.append("updated_at")
    with transaction.atomic():
        with unique_or_duplicate("The change conflicts with an existing object (duplicate name)."):
            obj.save(update_fields=fields)
        audit.record(action, actor=actor, entity=obj, severity=severity, details={"changes": diff})
    return obj


def delete_object(obj: Model, *, actor: Any, action: str) -> None:
    """Delete ``obj`` and audit it (the event outlives the row); an object still referenced is a 409."""
    entity = (obj._meta.model_name, obj.pk)
    org_id, project_id = getattr(obj, "organization_id", None), getattr(obj, "project_id", None)
    with transaction.atomic():
        try:
            with transaction.atomic():
                obj.delete()
        except ProtectedError:
            raise Conflict("The object is still in use.") from None
        audit.record(action, actor=actor, entity=entity, severity=Severity.WARNING,
                     organization_id=org_id, project_id=project_id, details={"name": str(obj)})


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
                 duration: str | None = None, creator: Any = None) -> tuple[ApiToken, str]:
    """Mint a token; the raw value is returned once and only its SHA-256 is stored.

    Invariants: every token expires, ``MAZEVAULT_DEFAULT_TOKEN_DAYS`` after creation unless a
    ``duration`` says otherwise, and never later than ``MAZEVAULT_MAX_TOKEN_DAYS``. A token minted
    by another token (``creator``, the caller's credential: anything with ``pk``, ``scopes`` and
    ``expires_at``) holds at most the creator's scopes (a
    scoped creator cannot mint an unscoped token, which would mean "all of the user's
    permissions") and expires no later than the creator: a credential cannot outgrow itself.
    """
    scopes = list(dict.fromkeys(scopes or []))
    unknown = [s for s in scopes if s not in PERMISSIONS]
    if unknown:
        raise ValidationFailed("Unknown scopes.", details={"field": "scopes", "unknown": unknown})
    if creator is not None and creator.scopes:
        wider = [s for s in scopes if s not in creator.scopes] if scopes else ["*"]
        if wider:
            raise PermissionDenied("A scoped token can only mint tokens with a subset of its scopes.",
                                   details={"permission": "token:scopes", "reason": "scopes_exceed_creator",
                                            "field": "scopes", "not_held": wider})
    now = timezone.now()
    maximum = timedelta(days=settings.MAZEVAULT_MAX_TOKEN_DAYS)
    lifetime = parse_duration(duration) if duration else timedelta(days=settings.MAZEVAULT_DEFAULT_TOKEN_DAYS)
    if lifetime > maximum:
        raise ValidationFailed(f"Tokens live at most {settings.MAZEVAULT_MAX_TOKEN_DAYS} days.",
                               details={"field": "duration", "reason": "exceeds_maximum"})
    expires_at = now + lifetime
    if creator is not None and creator.expires_at is not None and expires_at > creator.expires_at:
        if duration:
            raise ValidationFailed("A token cannot outlive the token that creates it.",
                                   details={"field": "duration", "reason": "exceeds_creator_token",
                                            "creator_expires_at": creator.expires_at.isoformat()})
        expires_at = creator.expires_at  # the default lifetime, shortened to the creator's
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, token_hash=hash_token(raw), token_prefix=raw[:12],
                                        scopes=scopes, expires_at=expires_at)
        audit.record("auth.token.created", actor=actor, entity=token,
                     details={"name": name, "scopes": scopes, "expires_at": expires_at, "user": user.get_username(),
                              "creator_token_id": str(creator.pk) if creator is not None else None})
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
