"""REST endpoints for CAs, templates and certificates. Thin: parse, check, call a service, render."""
from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from certificates import revocation, services
from certificates.models import Approval, CAStatus, Certificate, CertificateAuthority, CertificateTemplate
from mazevault import audit
from mazevault.api.views import RateLimitHeadersMixin, ScopedViewSet
from mazevault.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from mazevault.idempotency import idempotent
from mazevault.models import ApprovalPolicy, Organization, Project, Severity

from .filters import CAFilter, CertificateFilter, TemplateFilter
from .serializers import (CRL_SETTING_FIELDS, ApproveSerializer, CACreateSerializer, CASerializer,
                          CAUpdateSerializer, CertificateDetailSerializer, CertificateListSerializer, CertificateUpdateSerializer,
                          CSRSubmitSerializer, RejectSerializer, RevocationResultSerializer, RevokeSerializer,
                          TemplateSerializer, UnrevokeSerializer, check_crl_intervals)


def _visible(view: ScopedViewSet, model, pk, permission: str, *, org_wide: bool = False, field: str = "",
             related: tuple[str, ...] = ()):
    """Load ``pk`` of ``model`` if the caller may see it with ``permission``; else a 404 naming ``field``.
    ``related`` is passed to ``select_related`` (same query)."""
    q = view.access.scope_q(permission, org_wide_visible=org_wide)
    queryset = model.objects.all() if q is None else model.objects.filter(q)
    obj = queryset.select_related(*related).filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"{model._meta.verbose_name.capitalize()} not found.", details={"field": field})
    return obj


def _visible_project(view: ScopedViewSet, pk, field: str = "project_id") -> Project:
    q = view.access.scope_q("project:read", project_field="id")
    queryset = Project.objects.all() if q is None else Project.objects.filter(q)
    project = queryset.select_related("organization").filter(pk=pk).first()
    if project is None:
        raise NotFound("Project not found.", details={"field": field})
    return project


# --- CAs -------------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(summary="List certificate authorities", tags=["ca"]),
    retrieve=extend_schema(summary="Get a certificate authority", tags=["ca"]),
    create=extend_schema(summary="Create a root CA, or an intermediate under one of ours", tags=["ca"],
                         request=CACreateSerializer, responses={201: CASerializer}),
    update=extend_schema(summary="Update a CA's name, status, CRL/OCSP URL overrides and CRL settings", tags=["ca"],
                         request=CAUpdateSerializer, responses={200: CASerializer}),
)
class CAViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = CertificateAuthority.objects.all()
    serializer_class = CASerializer
    filterset_class = CAFilter
    read_permission = "ca:read"
    org_wide_visible = True
    http_method_names = ["get", "post", "put", "head", "options"]

    def create(self, request: Request) -> Response:
        serializer = CACreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        parent = None
        if data.get("parent_id"):
            parent = _visible(self, CertificateAuthority, data["parent_id"], "ca:read", org_wide=True,
                              field="parent_id")
        project = None
        if data.get("project_id"):
            project = _visible_project(self, data["project_id"])
            organization = project.organization
        elif data.get("organization_id"):
            if not self.access.sees_organization(data["organization_id"]):
                raise NotFound("Organization not found.", details={"field": "organization_id"})
            organization = Organization.objects.get(pk=data["organization_id"])
        else:
            organization = parent.organization
        if parent is not None and parent.organization_id != organization.pk:
            raise NotFound("Parent CA not found.", details={"field": "parent_id"})
        self.require("ca:admin", organization_id=organization.pk, project_id=project.pk if project else None)
        spec = services.CASpec(
            name=data["name"], subject=data["subject"], key_type=data["key_type"],
            validity_days=data["validity_days"], path_length=data.get("path_length"),
            crl_url=data.get("crl_url", ""), ocsp_url=data.get("ocsp_url", ""),
            **{name: data[name] for name in CRL_SETTING_FIELDS},
        )
        ca = services.create_ca(spec, actor=request.user, organization=organization, project=project, parent=parent)
        return Response(CASerializer(ca).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk=None) -> Response:
        ca = self.get_object()
        self.require("ca:admin", obj=ca)
        serializer = CAUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_crl_intervals(serializer.validated_data, ca)
        if ca.status == CAStatus.REVOKED and serializer.validated_data.get("status", ca.status) != ca.status:
            raise Conflict("A revoked CA stays revoked.", details={"current_status": ca.status})
        services.update_object(ca, serializer.validated_data, actor=request.user, action="ca.updated",
                               severity=Severity.WARNING)
        return Response(CASerializer(ca).data)

    @extend_schema(summary="Revoke an intermediate CA's certificate (listed in its parent's CRL; the CA "
                           "stops issuing)", tags=["ca"], request=RevokeSerializer, responses={200: CASerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk=None) -> Response:
        ca = self.get_object()
        self.require("ca:admin", obj=ca)
        serializer = RevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ca = revocation.revoke_ca(ca, actor=request.user, reason=data["reason"], comment=data["comment"],
                                  invalidity_date=data["invalidity_date"])
        return Response(CASerializer(ca).data)


_CA_CERT_BODY = "The CA certificate: DER by default, PEM with ?format=pem."


class CACertificateView(RateLimitHeadersMixin, APIView):
    """The CA certificate in DER (RFC 5280 4.2.2.1 caIssuers); public, like the AIA URL pointing here."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):
        # ?format=pem selects the body below, not a DRF renderer (which would answer 404).
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(summary="Download a CA certificate (DER; ?format=pem for PEM)", tags=["ca"], auth=[],
                   parameters=[OpenApiParameter("format", str, OpenApiParameter.QUERY, enum=["der", "pem"],
                                                description="der (default): application/pkix-cert; "
                                                            "pem: application/x-pem-file.")],
                   responses={(200, "application/pkix-cert"): OpenApiResponse(OpenApiTypes.BINARY,
                                                                               description=_CA_CERT_BODY),
                              (200, "application/x-pem-file"): OpenApiResponse(OpenApiTypes.STR,
                                                                                description=_CA_CERT_BODY)})
    def get(self, request: Request, pk) -> HttpResponse:
        body_format = request.query_params.get("format") or "der"
        if body_format not in {"der", "pem"}:
            raise ValidationFailed("format must be der or pem.", details={"field": "format"})
        ca = CertificateAuthority.objects.filter(pk=pk).first()
        if ca is None:
            raise NotFound("Certificate authority not found.")
        cert = services.ca_certificate(ca)
        if body_format == "pem":
            return HttpResponse(ca.certificate_pem, content_type="application/x-pem-file")
        return HttpResponse(cert.public_bytes(Encoding.DER), content_type="application/pkix-cert")


# --- Templates -------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(summary="List certificate templates", tags=["templates"]),
    retrieve=extend_schema(summary="Get a certificate template", tags=["templates"]),
    create=extend_schema(summary="Create a certificate template", tags=["templates"]),
    update=extend_schema(summary="Replace a certificate template", tags=["templates"]),
    partial_update=extend_schema(summary="Change some fields of a certificate template", tags=["templates"]),
    destroy=extend_schema(summary="Delete a template no certificate uses (else disable it)", tags=["templates"]),
)
class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.UpdateModelMixin, mixins.DestroyModelMixin, ScopedViewSet):
    queryset = CertificateTemplate.objects.all()
    serializer_class = TemplateSerializer
    filterset_class = TemplateFilter
    read_permission = "template:read"
    org_wide_visible = True

    def _resolve(self, data: dict, instance: CertificateTemplate | None = None) -> dict:
        """Turn the ids in ``data`` into visible objects of one organization."""
        project = instance.project if instance else None
        organization_id = instance.organization_id if instance else None
        if instance is None:
            if data.get("project_id"):
                project = _visible_project(self, data["project_id"])
                organization_id = project.organization_id
            elif data.get("organization_id"):
                if not self.access.sees_organization(data["organization_id"]):
                    raise NotFound("Organization not found.", details={"field": "organization_id"})
                organization_id = data["organization_id"]
            else:
                raise NotFound("organization_id or project_id is required.", details={"field": "organization_id"})
        resolved = {k: v for k, v in data.items() if k not in {"organization_id", "project_id", "ca_id",
                                                               "approval_policy_id"}}
        if "ca_id" in data:
            ca = _visible(self, CertificateAuthority, data["ca_id"], "ca:read", org_wide=True, field="ca_id")
            if ca.organization_id != organization_id or (ca.project_id and ca.project_id != getattr(project, "pk", None)):
                raise NotFound("CA not found in this template's scope.", details={"field": "ca_id"})
            resolved["ca"] = ca
        if data.get("approval_policy_id"):
            policy = ApprovalPolicy.objects.filter(pk=data["approval_policy_id"],
                                                   project__organization_id=organization_id).first()
            if policy is None or (project is not None and policy.project_id != project.pk):
                raise NotFound("Approval policy not found.", details={"field": "approval_policy_id"})
            resolved["approval_policy"] = policy
        elif "approval_policy_id" in data:
            resolved["approval_policy"] = None
        resolved["organization_id"] = organization_id
        resolved["project"] = project
        return resolved

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        resolved = self._resolve(serializer.validated_data)
        self.require("template:write", organization_id=resolved["organization_id"],
                     project_id=resolved["project"].pk if resolved["project"] else None)
        template = services.create_object(CertificateTemplate(**resolved), actor=request.user,
                                          action="template.created")
        return Response(self.get_serializer(template).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        template = self.get_object()
        self.require("template:write", obj=template)
        serializer = self.get_serializer(template, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        resolved = self._resolve(serializer.validated_data, instance=template)
        resolved.pop("organization_id")
        resolved.pop("project")
        services.update_object(template, resolved, actor=request.user, action="template.updated")
        return Response(self.get_serializer(template).data)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        template = self.get_object()
        self.require("template:write", obj=template)
        if template.certificates.exists():
            from mazevault.errors import Conflict
            raise Conflict("Certificates were issued from this template; disable it (is_active=false) instead.")
        services.delete_object(template, actor=request.user, action="template.deleted")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Certificates ----------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(summary="List certificates", tags=["certificates"]),
    retrieve=extend_schema(summary="Get certificate details", tags=["certificates"],
                           responses=CertificateDetailSerializer),
    update=extend_schema(summary="Update certificate properties (name, description, labels, owner contacts, "
                                 "auto-renew)", tags=["certificates"], request=CertificateUpdateSerializer,
                         responses=CertificateDetailSerializer),
)
class CertificateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Certificate.objects.all()
    serializer_class = CertificateListSerializer
    filterset_class = CertificateFilter
    read_permission = "certificate:read"
    http_method_names = ["get", "post", "put", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            return queryset.only("id", "common_name", "serial_number", "status", "issuer_cn", "not_before",
                                 "not_after", "key_type", "san", "project_id", "ca_id", "template_id",
                                 "requested_at")
        return queryset.select_related("requested_by", "rejected_by", "revoked_by", "request").prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("approver")))

    def get_serializer_class(self):
        return CertificateListSerializer if self.action == "list" else CertificateDetailSerializer

    def _detail(self, cert: Certificate, code: int = 200) -> Response:
        fresh = self.get_queryset().model.objects.select_related(
            "requested_by", "rejected_by", "revoked_by", "request").prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("approver"))).get(pk=cert.pk)
        return Response(CertificateDetailSerializer(fresh).data, status=code)

    def _created(self, cert: Certificate) -> Response:
        """The 201 for a request ``submit_request`` just stored, rendered from that instance: it holds
        every column as written (its CSR row and requester are cached on it), and a new request has
        no approvals yet, so re-reading it (as ``_detail`` does) would return the same thing."""
        cert._prefetched_objects_cache = {"approvals": Approval.objects.none()}
        return Response(CertificateDetailSerializer(cert).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Submit a certificate signing request", tags=["certificates"],
                   request=CSRSubmitSerializer, responses={201: CertificateDetailSerializer},
                   parameters=[
                       OpenApiParameter("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255},
                                        OpenApiParameter.HEADER,
                                        description="Optional. A retry with the same key and body returns the "
                                                    "first result; the same key with another body answers 409."),
                       OpenApiParameter("Idempotent-Replayed", {"type": "string", "enum": ["true"]},
                                        OpenApiParameter.HEADER, response=[201],
                                        description="Present when this is the stored answer to an earlier request "
                                                    "with the same Idempotency-Key."),
                   ],
                   description="Modes uploaded_csr (alias uploaded) and mazevault_generated (key_storage_mode "
                               "local). A request its template auto-approves comes back issued (status active). "
                               "Supports the Idempotency-Key header.")
    @action(detail=False, methods=["post"], url_path="csr")
    def csr(self, request: Request) -> Response:
        return idempotent(request, lambda: self._submit(request))

    def _submit(self, request: Request) -> Response:
        serializer = CSRSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = _visible_project(self, data["project_id"])
        if data.get("organization_id") and data["organization_id"] != project.organization_id:
            raise NotFound("Project not found in this organization.", details={"field": "project_id"})
        template = _visible(self, CertificateTemplate, data["template_id"], "template:read", org_wide=True,
                            field="template_id", related=("ca", "ca__key", "approval_policy"))
        self.require("certificate:request", organization_id=project.organization_id, project_id=project.pk)
        request_input = services.RequestInput(
            mode=data["csr_source_mode"], csr_pem=data.get("csr_pem", ""), requested_cn=data.get("requested_cn", ""),
            requested_subject=data.get("requested_subject"), requested_san=data.get("requested_san"),
            requested_key_algorithm=data.get("requested_key_algorithm", ""),
            requested_key_size=data.get("requested_key_size"), key_storage_mode=data.get("key_storage_mode", ""),
            agent_id=data.get("agent_id"), generation_reference=data.get("generation_reference", ""),
            name=data.get("name", ""), description=data.get("description", ""), labels=data.get("labels"),
            owner_contacts=data.get("owner_contacts"), auto_renew=data.get("auto_renew", False),
        )
        cert = services.submit_request(request_input, actor=request.user, project=project, template=template)
        return self._created(cert)

    def update(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        self.require("certificate:write", obj=cert)
        serializer = CertificateUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.update_certificate(cert, serializer.validated_data, actor=request.user)
        return self._detail(cert)

    def _guarded(self, request: Request, permission: str, cert: Certificate, call):
        """Run a service call; a refusal it raises (self-approval, approver role) is audited too."""
        try:
            return call()
        except PermissionDenied as exc:
            audit.record("rbac.permission.denied", actor=request.user, entity=cert, severity=Severity.WARNING,
                         details={"permission": permission, "reason": exc.message, "path": request.path})
            raise

    @extend_schema(summary="Approve a pending request (issues once enough approvals are in)",
                   tags=["certificates"], request=ApproveSerializer, responses={200: CertificateDetailSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        self.require("certificate:approve", obj=cert)
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cert = self._guarded(request, "certificate:approve", cert, lambda: services.approve_certificate(
            cert, actor=request.user, access=self.access, comment=serializer.validated_data["comment"]))
        return self._detail(cert)

    @extend_schema(summary="Reject a pending request", tags=["certificates"], request=RejectSerializer,
                   responses={200: CertificateDetailSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        self.require("certificate:approve", obj=cert)
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cert = services.reject_certificate(cert, actor=request.user, reason=serializer.validated_data["reason"])
        return self._detail(cert)

    @extend_schema(summary="Revoke a certificate (RFC 5280 reason; certificateHold can be undone)",
                   tags=["certificates"], request=RevokeSerializer, responses={200: RevocationResultSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        self.require("certificate:revoke", obj=cert)
        serializer = RevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        cert = revocation.revoke_certificate(cert, actor=request.user, reason=data["reason"],
                                             comment=data["comment"], invalidity_date=data["invalidity_date"])
        return Response(RevocationResultSerializer(cert).data)

    @extend_schema(summary="Release a certificate from certificateHold (back to active)", tags=["certificates"],
                   request=UnrevokeSerializer, responses={200: CertificateDetailSerializer})
    @action(detail=True, methods=["post"])
    def unrevoke(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        self.require("certificate:revoke", obj=cert)
        serializer = UnrevokeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        cert = revocation.unrevoke_certificate(cert, actor=request.user, comment=serializer.validated_data["comment"])
        return self._detail(cert)
