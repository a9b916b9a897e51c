"""The compiled certificate renderers (certificates/api/serializers.py) answer exactly what DRF's
serializers answer, for certificates in every shape the API shows: pending with approvals,
issued at once, rejected, revoked, with and without a generated key, labels, contacts."""
from __future__ import annotations

from django.utils import timezone

from certificates.api.serializers import (CertificateDetailSerializer, CertificateListSerializer,
                                          render_certificate, render_certificate_list)
from certificates.models import Certificate, RevocationReason
from tests.conftest import make_csr


def _submit(tenant, client, template: str, cn: str, **extra) -> dict:
    body = {"template_id": str(tenant.templates[template].pk), "project_id": str(tenant.project.pk),
            "csr_source_mode": "uploaded_csr", "csr_pem": make_csr(cn, dns=[cn]), **extra}
    response = client.post("/api/v1/certificates/csr", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_renderers_equal_drf_serializers(tenant):
    requester_user, _, requester = tenant.user("user")
    _submit(tenant, requester, "client-auth", "plain.example.com")
    _submit(tenant, requester, "client-auth", "labelled.example.com", labels={"team": "a"},
            owner_contacts=["ops@example.com"], name="n", description="d")
    pending = _submit(tenant, requester, "web-server", "pending.example.com")
    approved = _submit(tenant, requester, "web-server", "approved.example.com")
    assert tenant.client().post(f"/api/v1/certificates/{approved['id']}/approve", {"comment": "ok"},
                                format="json").status_code == 200
    rejected = _submit(tenant, requester, "web-server", "rejected.example.com")
    assert tenant.client().post(f"/api/v1/certificates/{rejected['id']}/reject", {"reason": "no"},
                                format="json").status_code == 200
    generated = requester.post("/api/v1/certificates/csr", {
        "template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "mazevault_generated", "requested_cn": "gen.example.com"}, format="json")
    assert generated.status_code == 201, generated.json()
    Certificate.objects.filter(common_name="plain.example.com").update(
        status="revoked", revoked_at=timezone.now(), revoked_by=tenant.admin,
        revocation_reason=RevocationReason.KEY_COMPROMISE, revocation_comment="lost")

    certs = list(Certificate.objects.with_detail().prefetch_related("approvals__approver"))
    assert len(certs) == 6 and pending["status"] == "pending_approval"
    for cert in certs:
        assert render_certificate(cert) == CertificateDetailSerializer(cert).data
    assert render_certificate_list(certs) == CertificateListSerializer(certs, many=True).data
    # Without annotations (a row a service just wrote) the related objects are used.
    plain = Certificate.objects.select_related("requested_by", "revoked_by", "request").get(
        common_name="plain.example.com")
    plain._prefetched_objects_cache = {"approvals": plain.approvals.all()}
    assert render_certificate(plain) == CertificateDetailSerializer(plain).data
    assert render_certificate(plain)["revoked_by"] == tenant.admin.username
    assert render_certificate(plain)["requested_by"] == requester_user.username
