"""The operators' console (Django admin): tenancy, roles, tokens and the audit log.

Who may do what is decided by MazeVault's roles (``rbac.ROLE_PERMISSIONS`` through ``Access``),
exactly as in the API, not by Django's per-model permissions: a staff user with no role sees
nothing, and every queryset is scoped to the user's tenants (superusers see everything). Every
change goes through the service functions or ``audit.record`` in the same transaction, so the
console leaves the same audit trail as the API; the audit log itself can only be read.
"""
from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html


from . import audit, services
from .errors import DomainError
from .models import ApiToken, ApprovalPolicy, AuditEvent, Environment, Organization, Project, RoleAssignment, Severity
from .rbac import Role
from .tenancy import Access, get_access

admin.site.site_header = "MazeVault Certificates"
admin.site.site_title = "MazeVault Certificates"
admin.site.index_title = "Operators' console"


# --- Shared machinery -------------------------------------------------------------------------
def audit_denied(request: HttpRequest, permission: str, *, obj: Any = None, reason: str = "",
                 organization_id: Any = None, project_id: Any = None) -> None:
    """Record ``rbac.permission.denied`` the way the API does for the same refusal."""
    if obj is not None:
        organization_id = getattr(obj, "organization_id", organization_id)
        project_id = getattr(obj, "project_id", project_id)
    details = {"permission": permission, "method": request.method, "path": request.path}
    if reason:
        details["reason"] = reason
    audit.record("rbac.permission.denied", actor=request.user, entity=obj, severity=Severity.WARNING,
                 details=details, organization_id=organization_id, project_id=project_id)


def adopt(target: Model, saved: Model) -> None:
    """Make the admin's unsaved ``target`` stand for ``saved`` (created by a service), so the
    admin's own bookkeeping (change message, redirect) refers to the stored row."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


def changed_values(form: forms.ModelForm, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The cleaned values of the fields the operator actually changed."""
    return {name: form.cleaned_data[name] for name in form.changed_data
            if name in form.cleaned_data and (fields is None or name in fields)}


def reload(obj: Model) -> Model:
    """A fresh copy of ``obj`` as stored: the form has already written the new values onto
    ``obj``, and ``update_object`` needs the old ones to compute (and audit) the difference."""
    return type(obj)._default_manager.get(pk=obj.pk)


class ScopedAdmin(admin.ModelAdmin):
    """Tenant scoping and role-based permissions for one model.

    ``read_permission`` decides what is listed (through ``Access.scope_q``, so another tenant's
    object is simply absent: its URL answers "not found"); ``write_permission`` is checked on the
    object's own organization/project.
    """

    read_permission = ""
    write_permission = ""
    org_field = "organization_id"
    project_field: str | None = "project_id"
    org_wide_visible = False
    list_per_page = 50

    class Media:
        css = {"all": ("mazevault/admin.css",)}

    def access(self, request: HttpRequest) -> Access:
        return get_access(request)

    def scope(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        q = self.access(request).scope_q(self.read_permission, org_field=self.org_field,
                                         project_field=self.project_field, org_wide_visible=self.org_wide_visible)
        return queryset if q is None else queryset.filter(q)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request))

    def object_scope(self, obj: Any) -> tuple[UUID | None, UUID | None]:
        """(organization id, project id) the object's permissions are checked on."""
        return getattr(obj, "organization_id", None), getattr(obj, "project_id", None)

    def allows(self, request: HttpRequest, permission: str, obj: Any = None) -> bool:
        if not permission:
            return False
        access = self.access(request)
        if obj is None:
            return access.has_anywhere(permission)
        organization_id, project_id = self.object_scope(obj)
        return access.has(permission, organization_id=organization_id, project_id=project_id)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Objects reach the admin only through the scoped queryset, so holding the read
        # permission anywhere is enough once the object was found.
        return self.allows(request, self.read_permission) or self.has_change_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allows(request, self.write_permission, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.allows(request, self.write_permission)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # A refused write is audited (``rbac.permission.denied``) like the API's, not just answered 403.
    # The console never offers a form it would refuse, so these are forged or stale requests.
    def _refuse(self, request: HttpRequest, verb: str, obj: Any = None) -> None:
        permission = self.write_permission or f"{self.opts.app_label}.{verb}_{self.opts.model_name}"
        audit_denied(request, permission, obj=obj)
        raise DjangoPermissionDenied

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            if object_id is None:
                if not self.has_add_permission(request):
                    self._refuse(request, "add")
            else:
                obj = self.get_object(request, unquote(object_id))
                if obj is not None and not self.has_change_permission(request, obj):
                    self._refuse(request, "change", obj)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
                    ) -> HttpResponse:
        if request.method == "POST":
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and not self.has_delete_permission(request, obj):
                self._refuse(request, "delete", obj)
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # One audited service call per object, never a bulk DELETE that would skip the audit.
        for obj in queryset:
            self.delete_model(request, obj)


class PrettyJSONField(forms.JSONField):
    """JSON edited as indented text, so that policies and labels are readable in a textarea."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


def unique_name_error(queryset: QuerySet, instance: Model, name: str, message: str) -> forms.ValidationError | None:
    """A form error when another row of ``queryset`` already has ``name`` (checked before the
    service runs, because a uniqueness conflict must come back as a form error, not a 500)."""
    if not instance._state.adding:
        queryset = queryset.exclude(pk=instance.pk)
    if queryset.filter(name=name).exists():
        return forms.ValidationError({"name": message})
    return None


# --- Organizations ------------------------------------------------------------------------------
@admin.register(Organization)
class OrganizationAdmin(ScopedAdmin):
    read_permission = "organization:read"
    write_permission = "organization:write"
    list_display = ("name", "description", "created_at")
    search_fields = ("name",)
    fields = ("id", "name", "description", "created_at", "updated_at")
    readonly_fields = ("id", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        access = self.access(request)
        queryset = Organization.objects.all()
        if access.is_superuser:
            return queryset
        return queryset.filter(pk__in=access.visible_organization_ids(self.read_permission))

    def object_scope(self, obj: Organization) -> tuple[UUID | None, UUID | None]:
        return obj.pk, None

    def has_add_permission(self, request: HttpRequest) -> bool:
        # As in the API: organizations are created by platform administrators only.
        return request.user.is_superuser

    def save_model(self, request: HttpRequest, obj: Organization, form: forms.ModelForm, change: bool) -> None:
        if change:
            services.update_object(reload(obj), changed_values(form, ("name", "description")), actor=request.user,
                          action="organization.updated")
        else:
            created = services.create_organization(name=form.cleaned_data["name"],
                                                   description=form.cleaned_data["description"], actor=request.user)
            adopt(obj, created)


# --- Projects -----------------------------------------------------------------------------------
class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("organization", "name", "environment", "description")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        organization_id = self.instance.organization_id if not self.instance._state.adding else getattr(
            data.get("organization"), "pk", None)
        if organization_id and data.get("name"):
            error = unique_name_error(Project.objects.filter(organization_id=organization_id), self.instance,
                                      data["name"], "A project with this name already exists in the organization.")
            if error:
                raise error
        return data


@admin.register(Project)
class ProjectAdmin(ScopedAdmin):
    form = ProjectForm
    read_permission = "project:read"
    write_permission = "project:write"
    project_field = "id"
    list_display = ("name", "organization", "environment", "created_at")
    list_filter = ("environment", ("organization", RelatedOnlyFieldListFilter))
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name")

    def object_scope(self, obj: Project) -> tuple[UUID | None, UUID | None]:
        return obj.organization_id, obj.pk

    def _org_ids_for_write(self, request: HttpRequest) -> set[UUID] | None:
        access = self.access(request)
        return None if access.is_superuser else access.org_ids("project:write")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A project is created in an organization: that needs the permission on the organization.
        org_ids = self._org_ids_for_write(request)
        return org_ids is None or bool(org_ids)

    def has_delete_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return self.access(request).has("project:write", organization_id=obj.organization_id)

    def get_fields(self, request: HttpRequest, obj: Project | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("organization", "name", "environment", "description")
        return ("id", "organization", "name", "environment", "description", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Project | None = None) -> tuple[str, ...]:
        return () if obj is None else ("id", "organization", "created_at", "updated_at")

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "organization":
            org_ids = self._org_ids_for_write(request)
            kwargs["queryset"] = Organization.objects.all() if org_ids is None else Organization.objects.filter(
                pk__in=org_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Project, form: forms.ModelForm, change: bool) -> None:
        if change:
            services.update_object(reload(obj), changed_values(form, ("name", "environment", "description")),
                          actor=request.user, action="project.updated")
        else:
            data = form.cleaned_data
            created = services.create_project(organization=data["organization"], name=data["name"],
                                              environment=data["environment"], description=data["description"],
                                              actor=request.user)
            adopt(obj, created)

    def delete_model(self, request: HttpRequest, obj: Project) -> None:
        services.delete_object(obj, actor=request.user, action="project.deleted")


# --- Approval policies --------------------------------------------------------------------------
class ApprovalPolicyForm(forms.ModelForm):
    required_approvals = forms.IntegerField(min_value=1, max_value=10, initial=1)
    approver_role = forms.ChoiceField(choices=[("", "Anyone holding certificate:approve"), *Role.choices],
                                      required=False)
    environments = forms.MultipleChoiceField(
        choices=Environment.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Environments the policy covers; none selected means every environment.")

    class Meta:
        model = ApprovalPolicy
        fields = ("project", "name", "required_approvals", "approver_role", "environments")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        adding = self.instance._state.adding
        project_id = getattr(data.get("project"), "pk", None) if adding else self.instance.project_id
        if project_id and data.get("name"):
            error = unique_name_error(ApprovalPolicy.objects.filter(project_id=project_id), self.instance,
                                      data["name"], "An approval policy with this name already exists in the project.")
            if error:
                raise error
        return data


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ScopedAdmin):
    form = ApprovalPolicyForm
    read_permission = "project:read"
    write_permission = "project:write"
    org_field = "project__organization_id"
    list_display = ("name", "project", "required_approvals", "approver_role", "environments_display")
    list_filter = (("project", RelatedOnlyFieldListFilter), "approver_role")
    list_select_related = ("project", "project__organization")
    search_fields = ("name", "project__name")

    @admin.display(description="Environments")
    def environments_display(self, obj: ApprovalPolicy) -> str:
        return ", ".join(obj.environments) if obj.environments else "all"

    def object_scope(self, obj: ApprovalPolicy) -> tuple[UUID | None, UUID | None]:
        return obj.project.organization_id, obj.project_id

    def has_delete_permission(self, request: HttpRequest, obj: ApprovalPolicy | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: ApprovalPolicy | None = None) -> tuple[str, ...]:
        return () if obj is None else ("project",)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "project":
            q = self.access(request).scope_q("project:write", project_field="id")
            projects = Project.objects.select_related("organization")
            kwargs["queryset"] = projects if q is None else projects.filter(q)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApprovalPolicy, form: forms.ModelForm, change: bool) -> None:
        fields = ("name", "required_approvals", "approver_role", "environments")
        if change:
            services.update_object(reload(obj), changed_values(form, fields), actor=request.user,
                          action="approval_policy.updated")
        else:
            services.create_object(obj, actor=request.user, action="approval_policy.created",
                          details={name: form.cleaned_data[name] for name in fields})

    def delete_model(self, request: HttpRequest, obj: ApprovalPolicy) -> None:
        services.delete_object(obj, actor=request.user, action="approval_policy.deleted")


# --- Role assignments ---------------------------------------------------------------------------
class RoleAssignmentForm(forms.ModelForm):
    # A user name, not a list of every account: operators should not browse other tenants' users.
    user = forms.CharField(label="Username", max_length=150)

    class Meta:
        model = RoleAssignment
        fields = ("user", "role", "organization", "project")
        help_texts = {"organization": "Either an organization (the role covers all its projects) …",
                      "project": "… or one project."}

    access: Access  # set by RoleAssignmentAdmin.get_form

    def clean_user(self) -> str:
        return self.cleaned_data["user"].strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # The username becomes a User below, once the scope is known; until then it is kept out of
        # cleaned_data so that the model form never assigns a bare string to the foreign key.
        username = data.pop("user", None)
        organization, project = data.get("organization"), data.get("project")
        if (organization is None) == (project is None):
            raise forms.ValidationError("Choose either an organization or a project, not both.")
        org_id = organization.pk if organization else project.organization_id
        if not self.access.has("organization:write", organization_id=org_id,
                               project_id=project.pk if project else None):
            raise forms.ValidationError("You cannot assign roles in this scope.")
        if username:
            user = assignable_users(self.access, org_id).filter(username=username).first()
            if user is None:
                # The same answer for "no such account" and "an account of another tenant": the
                # form must not tell one organization's admin who exists elsewhere.
                self.add_error("user", "No user with this username in this organization (a platform "
                                       "administrator gives a user in another organization their first role here).")
                return data
            data["user"] = user
        user, role = data.get("user"), data.get("role")
        if user is not None and role and RoleAssignment.objects.filter(
                user=user, role=role, organization=organization, project=project).exists():
            raise forms.ValidationError("This user already holds this role in this scope.")
        return data


def assignable_users(access: Access, organization_id: UUID) -> QuerySet:
    """The accounts an operator may look up by name to give a role in ``organization_id``.

    A superuser sees every account. Anyone else sees the organization's members (a role on it or on
    one of its projects) and accounts that belong to no organization yet (new sign-ups, never
    superusers): not the members of other organizations, whose usernames stay invisible."""
    users = get_user_model().objects.all()
    if access.is_superuser:
        return users
    members = RoleAssignment.objects.filter(Q(organization_id=organization_id)
                                            | Q(project__organization_id=organization_id)).values("user_id")
    return users.filter(Q(pk__in=members) | (Q(role_assignments__isnull=True) & Q(is_superuser=False))).distinct()


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(ScopedAdmin):
    form = RoleAssignmentForm
    read_permission = "organization:read"
    write_permission = "organization:write"
    list_display = ("user", "role", "organization", "project", "created_at")
    list_filter = ("role",)
    list_select_related = ("user", "organization", "project", "project__organization")
    search_fields = ("user__username", "organization__name", "project__name")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        access = self.access(request)
        queryset = RoleAssignment.objects.all()
        if access.is_superuser:
            return queryset
        orgs = access.org_ids("organization:read")
        projects = access.project_ids("project:read")
        return queryset.filter(Q(organization_id__in=orgs) | Q(project__organization_id__in=orgs)
                               | Q(project_id__in=projects))

    def object_scope(self, obj: RoleAssignment) -> tuple[UUID | None, UUID | None]:
        return (obj.organization_id or obj.project.organization_id), obj.project_id

    def has_change_permission(self, request: HttpRequest, obj: RoleAssignment | None = None) -> bool:
        # An assignment is granted or removed, never edited in place (each is one audit event).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RoleAssignment | None = None) -> bool:
        return self.allows(request, self.write_permission, obj)

    def get_form(self, request: HttpRequest, obj: RoleAssignment | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.access = self.access(request)
        return form

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        access = self.access(request)
        if db_field.name == "organization":
            kwargs["queryset"] = Organization.objects.all() if access.is_superuser else Organization.objects.filter(
                pk__in=access.org_ids("organization:write"))
        elif db_field.name == "project":
            q = access.scope_q("organization:write", project_field="id")
            projects = Project.objects.select_related("organization")
            kwargs["queryset"] = projects if q is None else projects.filter(q)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: RoleAssignment, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        assignment = services.assign_role(user=data["user"], role=data["role"], actor=request.user,
                                          organization=data.get("organization"), project=data.get("project"))
        adopt(obj, assignment)

    def delete_model(self, request: HttpRequest, obj: RoleAssignment) -> None:
        org_id, project_id = self.object_scope(obj)
        with transaction.atomic():
            obj.delete()
            audit.record("rbac.role.removed", actor=request.user, entity=("user", obj.user_id),
                         severity=Severity.WARNING, organization_id=org_id, project_id=project_id,
                         details={"user": obj.user.get_username(), "role": obj.role})


# --- API tokens ---------------------------------------------------------------------------------
@admin.register(ApiToken)
class ApiTokenAdmin(ScopedAdmin):
    """Tokens are listed and revoked here, never created (the raw value is shown once, by the API
    or the CLI) and never shown: only the prefix, never the hash."""

    list_display = ("name", "user", "token_prefix", "state", "scopes_display", "created_at", "expires_at",
                    "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    list_select_related = ("user",)
    search_fields = ("name", "token_prefix", "user__username")
    fields = ("id", "name", "user", "token_prefix", "state", "scopes_display", "created_at", "expires_at",
              "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke_selected",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = ApiToken.objects.all()
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def has_view_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="State")
    def state(self, obj: ApiToken) -> str:
        if obj.revoked_at:
            return "revoked"
        if obj.expires_at and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    @admin.display(description="Scopes")
    def scopes_display(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes) if obj.scopes else "all of the user's permissions"

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for token in queryset.select_related("user"):
            try:
                services.revoke_token(token, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"Token “{token}”: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"Token “{token}” of {token.user} revoked.", messages.SUCCESS)


# --- Audit log ----------------------------------------------------------------------------------
@admin.register(AuditEvent)
class AuditEventAdmin(ScopedAdmin):
    """Read-only for everyone, superusers included: the log is append-only and hash-chained."""

    read_permission = "audit:read"
    list_display = ("created_at", "action", "severity", "actor_name", "entity_type", "entity_id", "ip_address")
    list_filter = ("severity", "action", "entity_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=entity_id", "^actor_name", "=request_id")
    date_hierarchy = "created_at"
    fields = ("seq", "id", "created_at", "action", "severity", "actor_name", "actor", "entity_type", "entity_id",
              "organization_id", "project_id", "ip_address", "request_id", "details_display", "prev_hash",
              "chain_hash")
    readonly_fields = fields
    show_full_result_count = False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    @admin.display(description="Details")
    def details_display(self, obj: AuditEvent) -> str:
        return format_html("<pre class=\"mv-pre\">{}</pre>",
                           json.dumps(obj.details, indent=2, sort_keys=True, ensure_ascii=False))
