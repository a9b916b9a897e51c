"""REST endpoints for tenancy, approval policies, API tokens, audit logs and health."""
from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mazevault import health, services
from mazevault.errors import NotFound, PermissionDenied
from mazevault.filters import AuditEventFilter, ProjectFilter
from mazevault.models import ApiToken, ApprovalPolicy, AuditEvent, Organization, Project
from mazevault.throttling import AuthRateThrottle

from .serializers import (ApprovalPolicySerializer, AuditEventSerializer, HealthSerializer, OrganizationSerializer,
                          ProjectSerializer, ProjectUpdateSerializer, TokenCreatedSerializer,
                          TokenCreateSerializer, TokenSerializer)
from .views import RateLimitHeadersMixin, ScopedViewSet, deny


@extend_schema_view(
    list=extend_schema(summary="List organizations", tags=["tenancy"]),
    create=extend_schema(summary="Create an organization (platform administrators)", tags=["tenancy"]),
    retrieve=extend_schema(summary="Get an organization", tags=["tenancy"]),
    update=extend_schema(summary="Update an organization", tags=["tenancy"]),
)
class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                          mixins.UpdateModelMixin, ScopedViewSet):
    queryset = Organization.objects.all()
    serializer_class = OrganizationSerializer
    read_permission = "organization:read"
    http_method_names = ["get", "post", "put", "head", "options"]

    def get_queryset(self):
        access = self.access
        queryset = Organization.objects.all()
        if access.is_superuser and access.in_scope(self.read_permission):
            return queryset
        return queryset.filter(pk__in=access.visible_organization_ids(self.read_permission))

    def create(self, request: Request, *args, **kwargs) -> Response:
        if not (request.user.is_superuser and self.access.in_scope("organization:write")):
            raise deny(request, "organization:write")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = services.create_organization(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(org).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        org = self.get_object()
        self.require("organization:write", organization_id=org.pk)
        serializer = self.get_serializer(org, data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_object(org, serializer.validated_data, actor=request.user, action="organization.updated")
        return Response(self.get_serializer(org).data)


@extend_schema_view(
    list=extend_schema(summary="List projects", tags=["tenancy"]),
    create=extend_schema(summary="Create a project", tags=["tenancy"]),
    retrieve=extend_schema(summary="Get a project", tags=["tenancy"]),
    update=extend_schema(summary="Update a project", tags=["tenancy"], request=ProjectUpdateSerializer),
    destroy=extend_schema(summary="Delete a project (only when it holds nothing)", tags=["tenancy"]),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                     mixins.UpdateModelMixin, mixins.DestroyModelMixin, ScopedViewSet):
    queryset = Project.objects.all()
    serializer_class = ProjectSerializer
    read_permission = "project:read"
    project_field = "id"
    http_method_names = ["get", "post", "put", "delete", "head", "options"]

    filterset_class = ProjectFilter

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        org = Organization.objects.filter(pk=data["organization_id"]).first()
        if org is None or not self.access.sees_organization(org.pk):
            raise NotFound("Organization not found.", details={"field": "organization_id"})
        self.require("project:write", organization_id=org.pk)
        project = services.create_project(organization=org, name=data["name"], environment=data["environment"],
                                          description=data.get("description", ""), actor=request.user)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        project = self.get_object()
        self.require("project:write", organization_id=project.organization_id, project_id=project.pk)
        serializer = ProjectUpdateSerializer(project, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        services.update_object(project, serializer.validated_data, actor=request.user, action="project.updated")
        return Response(self.get_serializer(project).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        project = self.get_object()
        self.require("project:write", organization_id=project.organization_id)
        services.delete_object(project, actor=request.user, action="project.deleted")
        return Response(status=status.HTTP_204_NO_CONTENT)


_PROJECT_PK = OpenApiParameter("project_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The project's id.")


@extend_schema_view(
    list=extend_schema(summary="List a project's approval policies", tags=["tenancy"], parameters=[_PROJECT_PK]),
    create=extend_schema(summary="Create an approval policy", tags=["tenancy"], parameters=[_PROJECT_PK]),
    retrieve=extend_schema(summary="Get an approval policy", tags=["tenancy"], parameters=[_PROJECT_PK]),
    update=extend_schema(summary="Update an approval policy", tags=["tenancy"], parameters=[_PROJECT_PK]),
    destroy=extend_schema(summary="Delete an approval policy", tags=["tenancy"], parameters=[_PROJECT_PK]),
)
class ApprovalPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            mixins.UpdateModelMixin, mixins.DestroyModelMixin, ScopedViewSet):
    queryset = ApprovalPolicy.objects.select_related("project")
    serializer_class = ApprovalPolicySerializer
    read_permission = "project:read"
    org_field = "project__organization_id"
    http_method_names = ["get", "post", "put", "delete", "head", "options"]

    def _project(self) -> Project:
        project_id = self.kwargs["project_pk"]
        q = self.access.scope_q("project:read", project_field="id")
        queryset = Project.objects.all() if q is None else Project.objects.filter(q)
        project = queryset.filter(pk=project_id).first()
        if project is None:
            raise NotFound("Project not found.")
        return project

    def get_queryset(self):
        return super().get_queryset().filter(project_id=self.kwargs["project_pk"])

    def list(self, request: Request, *args, **kwargs) -> Response:
        self._project()  # another tenant's (or an unknown) project answers 404, not an empty list
        return super().list(request, *args, **kwargs)

    def _require_write(self, project: Project) -> None:
        self.require("project:write", organization_id=project.organization_id, project_id=project.pk)

    def create(self, request: Request, *args, **kwargs) -> Response:
        project = self._project()
        self._require_write(project)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.create_object(ApprovalPolicy(project=project, **serializer.validated_data), actor=request.user,
                               action="approval_policy.created", details=serializer.data)
        return Response(self.get_serializer(policy).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        policy = self.get_object()
        self._require_write(policy.project)
        serializer = self.get_serializer(policy, data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_object(policy, serializer.validated_data, actor=request.user, action="approval_policy.updated")
        return Response(self.get_serializer(policy).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        policy = self.get_object()
        self._require_write(policy.project)
        services.delete_object(policy, actor=request.user, action="approval_policy.deleted")
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List your API tokens", tags=["auth"]),
    create=extend_schema(summary="Create an API token (returned once)", tags=["auth"],
                         request=TokenCreateSerializer, responses={201: TokenCreatedSerializer}),
    destroy=extend_schema(summary="Revoke an API token", tags=["auth"], responses={204: None}),
)
class TokenViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                   ScopedViewSet):
    serializer_class = TokenSerializer
    queryset = ApiToken.objects.all()

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.action == "create":
            throttles.append(AuthRateThrottle())
        return throttles

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The calling credential, when it is a token (session logins have none): duck-typed, so a
        # cached token object of the authentication layer serves as well as the model row.
        auth = request.auth
        creator = auth if auth is not None and hasattr(auth, "scopes") and hasattr(auth, "expires_at") else None
        try:
            token, raw = services.create_token(user=request.user, name=data["name"], scopes=data["scopes"],
                                               duration=data["duration"], actor=request.user, creator=creator)
        except PermissionDenied:
            deny(request, "token:scopes")  # audit the refusal like every other denial
            raise
        body = TokenSerializer(token).data
        body["token"] = raw
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.revoke_token(self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="Search audit events", tags=["audit"]),
    retrieve=extend_schema(summary="Get an audit event", tags=["audit"]),
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    read_permission = "audit:read"
    lookup_field = "id"

    def initial(self, request: Request, *args, **kwargs) -> None:
        """Without audit:read anywhere, list and get both answer 403 (audited); with it, events
        outside the caller's tenants stay invisible (404)."""
        super().initial(request, *args, **kwargs)
        if not self.access.has_anywhere(self.read_permission):
            raise deny(request, self.read_permission)


class HealthView(RateLimitHeadersMixin, APIView):
    """Liveness plus the state of the database and the broker; no authentication."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(summary="Service health", tags=["health"], auth=[],
                   responses={200: HealthSerializer, 503: HealthSerializer},
                   description="503 when this process cannot serve (the database is unreachable); a failing "
                               "non-essential component (broker, key store) is 200 with status degraded.")
    def get(self, request: Request) -> Response:
        components = {"database": _check_database(), "broker": _check_broker()}
        for name, check in health.registered().items():
            components[name] = _timed(check)
        healthy = all(c["status"] == "ok" for c in components.values())
        body = {"status": "ok" if healthy else "degraded", "version": settings.VERSION, "components": components}
        # DESIGN.md: load balancers route on this, so only "cannot serve at all" is a 503.
        return Response(body, status=503 if components["database"]["status"] != "ok" else 200)


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
    except health.ComponentDown as exc:
        return {"status": "down", "error": exc.reason}
    except Exception as exc:  # the edge: a health probe reports, never raises
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2), **detail}


def _check_database() -> dict:
    def check():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"vendor": connection.vendor}
    return _timed(check)


def _check_broker() -> dict:
    def check():
        from mazevault.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else "custom"}
    return _timed(check)
