"""EAB credential endpoints: /api/v1/organizations/:id/acme-credentials (ca:write to create and revoke,
ca:read to list). Another tenant's organization or credential answers 404."""
from __future__ import annotations

from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from certificates.models import CertificateTemplate
from certificates.services import template_usable
from mazevault.api.views import ScopedViewSet
from mazevault.errors import NotFound, ValidationFailed
from mazevault.models import Organization, Project

from .. import services
from ..models import EabCredential
from .serializers import CredentialCreatedSerializer, CredentialCreateSerializer, CredentialSerializer

_ORG = OpenApiParameter("org_pk", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The organization's id.")


@extend_schema_view(
    list=extend_schema(summary="List EAB credentials", tags=["acme"], parameters=[_ORG]),
    retrieve=extend_schema(summary="Get an EAB credential and the ACME accounts it bound", tags=["acme"],
                           parameters=[_ORG]),
    create=extend_schema(summary="Create an EAB credential (the HMAC key is shown once)", tags=["acme"],
                         parameters=[_ORG], request=CredentialCreateSerializer,
                         responses={201: CredentialCreatedSerializer}),
    destroy=extend_schema(summary="Revoke an EAB credential: no new accounts or orders through it", tags=["acme"],
                          parameters=[_ORG], responses={204: None}),
)
class CredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = EabCredential.objects.prefetch_related("accounts").order_by("-created_at", "-id")
    serializer_class = CredentialSerializer
    read_permission = "ca:read"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def _organization(self) -> Organization:
        org_pk = UUID(self.kwargs["org_pk"])  # the route's regex admits only UUIDs
        if not self.access.sees_organization(org_pk):
            raise NotFound("Organization not found.")
        return Organization.objects.get(pk=org_pk)

    def get_queryset(self):
        return super().get_queryset().filter(organization_id=self.kwargs["org_pk"])

    def list(self, request: Request, *args, **kwargs) -> Response:
        self._organization()
        return super().list(request, *args, **kwargs)

    def create(self, request: Request, org_pk=None) -> Response:
        organization = self._organization()
        serializer = CredentialCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The path's organization is the resource (404 when not visible); ids in the body that name nothing
        # usable in it are invalid input (400), the same answer whether they exist elsewhere or not.
        q = self.access.scope_q("project:read", project_field="id")
        projects = Project.objects.all() if q is None else Project.objects.filter(q)
        project = projects.filter(pk=data["project_id"], organization=organization).first()
        if project is None:
            raise ValidationFailed("No such project in this organization.", details={"field": "project_id"})
        q = self.access.scope_q("template:read", org_wide_visible=True)
        templates = CertificateTemplate.objects.all() if q is None else CertificateTemplate.objects.filter(q)
        template = templates.filter(pk=data["default_template_id"]).first()
        if template is None or not template_usable(template, project):
            raise ValidationFailed("No such template usable by this project.", details={"field": "default_template_id"})
        self.require("ca:write", organization_id=organization.pk, project_id=project.pk)
        credential, hmac_key = services.create_credential(services.CredentialSpec(
            project=project, default_template=template, cluster_label=data["cluster_label"],
            allowed_identifiers=tuple(data["allowed_identifiers"]), max_accounts=data["max_accounts"],
            expires_at=data["expires_at"]), actor=request.user, organization=organization)
        body = CredentialCreatedSerializer(credential, context={"eab_hmac_key": hmac_key}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, org_pk=None, pk=None) -> Response:
        credential = self.get_object()
        self.require("ca:write", obj=credential)
        services.revoke_credential(credential, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
