"""CRL distribution (public), forced regeneration (ca:admin) and a certificate's revocation status.

CRLs are served from the stored, signed bytes (never built on the request path), with an ETag (the
DER's SHA-256), Last-Modified (thisUpdate) and a Cache-Control max-age that ends before nextUpdate.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from certificates.api.serializers import RevocationReasonField
from certificates.models import Certificate, CertificateAuthority, CertificateStatus, Revocation
from mazevault.api.strict import StrictSerializer
from mazevault.api.views import RateLimitHeadersMixin, ScopedViewSet
from mazevault.errors import NotFound, ValidationFailed

from . import services
from .models import CRL, CRLKind

MAX_SHARD = 1023  # crl_shards is at most 1024
_CRL_BODY = "The CRL: DER (application/pkix-crl) by default, PEM with ?format=pem."

# Stored CRL bytes per process, keyed by row id and the DER's SHA-256 (from the metadata query), so a
# cached entry can only ever be the very bytes the database holds; bounded by total size so that a CA
# with a million entries does not pin many copies.
_DER_CACHE: OrderedDict[tuple[int, str], bytes] = OrderedDict()
_DER_CACHE_BYTES = 64 * 1024 * 1024
_DER_LOCK = threading.Lock()


def _der(crl: services.CRLMeta) -> bytes:
    key = (crl.pk, crl.sha256)
    with _DER_LOCK:
        der = _DER_CACHE.get(key)
        if der is not None:
            _DER_CACHE.move_to_end(key)
            return der
    der = services.crl_der(crl)
    with _DER_LOCK:
        _DER_CACHE[key] = der
        while sum(len(v) for v in _DER_CACHE.values()) > _DER_CACHE_BYTES and len(_DER_CACHE) > 1:
            _DER_CACHE.popitem(last=False)
    return der


def _pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n"


_CRL_PARAMETERS = [
    OpenApiParameter("type", str, OpenApiParameter.QUERY, enum=["full", "delta"],
                     description="full (default) or delta (the …/crl/delta paths are always delta)."),
    OpenApiParameter("format", str, OpenApiParameter.QUERY, enum=["der", "pem"],
                     description="der (default): application/pkix-crl; pem: application/x-pem-file."),
]
_CRL_RESPONSES = {
    (200, "application/pkix-crl"): OpenApiResponse(OpenApiTypes.BINARY, description=_CRL_BODY),
    (200, "application/x-pem-file"): OpenApiResponse(OpenApiTypes.STR, description=_CRL_BODY),
    304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
}


class CRLView(RateLimitHeadersMixin, APIView):
    """RFC 5280 4.2.1.13 CRL distribution point: anyone may fetch it, so no authentication."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    kind: str | None = None  # fixed by the URL (…/crl/delta), else ?type=

    def perform_content_negotiation(self, request, force=False):
        # ?format=pem selects the body below, not a DRF renderer.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(summary="Download a CA's CRL (DER; ?format=pem; ?type=delta)", tags=["crl"], auth=[],
                   parameters=_CRL_PARAMETERS, responses=_CRL_RESPONSES)
    def get(self, request: Request, pk, shard: int | None = None) -> HttpResponse:
        asked = request.query_params.get("type")
        kind = self.kind or asked or CRLKind.FULL
        if kind not in CRLKind.values or (asked is not None and asked != kind):
            raise ValidationFailed("type must be full or delta (and delta on the …/delta paths).",
                                   details={"field": "type"})
        if shard is not None and shard > MAX_SHARD:
            raise NotFound("This CA publishes no such CRL shard.", details={"field": "shard"})
        body_format = request.query_params.get("format") or "der"
        if body_format not in {"der", "pem"}:
            raise ValidationFailed("format must be der or pem.", details={"field": "format"})
        crl = services.latest_crl(pk, kind, shard)
        if crl is None:
            if not CertificateAuthority.objects.filter(pk=pk).exists():
                raise NotFound("Certificate authority not found.")
            raise NotFound("This CA has published no such CRL yet.", details={"type": kind, "shard": shard})
        etag = f'"{crl.sha256}{"-pem" if body_format == "pem" else ""}"'
        remaining = int((crl.next_update - timezone.now()).total_seconds())
        headers = {
            "ETag": etag,
            "Last-Modified": http_date(crl.this_update.timestamp()),
            "Expires": http_date(crl.next_update.timestamp()),
            "Cache-Control": f"public, max-age={max(0, min(remaining, settings.MAZEVAULT_CRL_MAX_AGE_SECONDS))}, "
                             "no-transform",
        }
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            response = HttpResponseNotModified()
        else:
            der = _der(crl)
            response = (HttpResponse(_pem(der), content_type="application/x-pem-file") if body_format == "pem"
                        else HttpResponse(der, content_type="application/pkix-crl"))
        for name, value in headers.items():
            response[name] = value
        return response


class CRLShardView(CRLView):
    @extend_schema(summary="Download one shard's CRL of a sharded CA (DER; ?format=pem; ?type=delta)", tags=["crl"],
                   auth=[], responses=_CRL_RESPONSES,
                   parameters=[*_CRL_PARAMETERS, OpenApiParameter("shard", {"type": "integer", "minimum": 0,
                                                                            "maximum": MAX_SHARD}, OpenApiParameter.PATH)])
    def get(self, request: Request, pk, shard: int | None = None) -> HttpResponse:
        return super().get(request, pk, shard)


class RegenerateSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=CRLKind.values, default=CRLKind.FULL)
    shard = serializers.IntegerField(required=False, allow_null=True, min_value=0, default=None,
                                     help_text="A shard of a sharded CA; omitted: the unsharded CRL.")


class CRLInfoSerializer(serializers.ModelSerializer):
    ca_id = serializers.UUIDField(read_only=True)
    type = serializers.CharField(source="kind", read_only=True)

    class Meta:
        model = CRL
        fields = ("ca_id", "number", "type", "shard", "base_number", "entry_count", "this_update", "next_update",
                  "size", "sha256")
        read_only_fields = fields


class CRLAdminViewSet(ScopedViewSet):
    queryset = CertificateAuthority.objects.select_related("key")
    serializer_class = RegenerateSerializer
    read_permission = "ca:read"
    org_wide_visible = True

    @extend_schema(summary="Force CRL regeneration (full or delta) for a CA", tags=["crl"],
                   request=RegenerateSerializer, responses={201: CRLInfoSerializer})
    @action(detail=True, methods=["post"])
    def regenerate(self, request: Request, pk=None) -> Response:
        ca = self.get_object()
        self.require("ca:admin", obj=ca)
        serializer = RegenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        crl = services.publish_crl(ca, kind=serializer.validated_data["type"],
                                   shard=serializer.validated_data["shard"], actor=request.user)
        return Response(CRLInfoSerializer(crl).data, status=201)


class RevocationStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    revoked = serializers.BooleanField()
    reason = RevocationReasonField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by = serializers.CharField(allow_null=True)
    invalidity_date = serializers.DateTimeField(allow_null=True)
    crl_number = serializers.IntegerField(allow_null=True, help_text="The first CRL (full or delta) that lists "
                                                                     "the revocation; null until one is published.")
    crl_url = serializers.CharField(allow_null=True)
    ocsp_url = serializers.CharField(allow_null=True)


class CertificateStatusViewSet(ScopedViewSet):
    queryset = Certificate.objects.select_related("ca", "revoked_by")
    serializer_class = RevocationStatusSerializer
    read_permission = "certificate:read"

    @extend_schema(summary="Get a certificate's revocation status", tags=["certificates"],
                   responses={200: RevocationStatusSerializer})
    @action(detail=True, methods=["get"])
    def status(self, request: Request, pk=None) -> Response:
        cert = self.get_object()
        revoked = cert.status == CertificateStatus.REVOKED or (
            cert.status == CertificateStatus.ARCHIVED and cert.status_before_archive == CertificateStatus.REVOKED)
        crl_number = None
        if revoked and cert.ca_id is not None and cert.serial_number:
            row = Revocation.objects.filter(ca_id=cert.ca_id, serial_number=cert.serial_number, current=True) \
                .values_list("id", "shard").first()
            if row is not None:
                crl_number = CRL.objects.filter(ca_id=cert.ca_id, shard=row[1], max_revocation_id__gte=row[0]) \
                    .order_by("number").values_list("number", flat=True).first()
        ca = cert.ca
        data: dict[str, Any] = {
            "id": cert.pk, "status": cert.status, "revoked": revoked,
            "reason": cert.revocation_reason if revoked else None,
            "revoked_at": cert.revoked_at if revoked else None,
            "revoked_by": cert.revoked_by.username if revoked and cert.revoked_by_id else None,
            "invalidity_date": cert.invalidity_date if revoked else None,
            "crl_number": crl_number,
            "crl_url": ca.crl_urls(cert.crl_shard)[0] if ca else None,
            "ocsp_url": ca.ocsp_urls()[0] if ca else None,
        }
        return Response(RevocationStatusSerializer(data).data)

