"""certificates.services.issue_certificate: the one issuance service every protocol calls."""
from __future__ import annotations

import pytest

from certificates import services
from certificates.models import Certificate, CertificateSource, CertificateStatus
from certificates.states import InvalidTransition, initial
from mazevault.errors import ValidationFailed
from tests.conftest import make_csr


def _input(cn: str) -> services.RequestInput:
    return services.RequestInput(mode="uploaded_csr", csr_pem=make_csr(cn))


def test_source_and_predecessor_are_recorded(tenant):
    first = services.issue_certificate(_input("a.example.com"), source=CertificateSource.ACME, actor=tenant.admin,
                                       project=tenant.project, template=tenant.templates["client-auth"])
    renewed = services.issue_certificate(_input("a.example.com"), source=CertificateSource.RENEWAL,
                                         actor=tenant.admin, project=tenant.project,
                                         template=tenant.templates["client-auth"], predecessor=first)
    first.refresh_from_db()
    renewed.refresh_from_db()
    assert (first.source, first.status) == (CertificateSource.ACME, CertificateStatus.ACTIVE)
    assert renewed.source == CertificateSource.RENEWAL and renewed.predecessor_id == first.pk
    assert renewed.serial_number != first.serial_number
    assert list(first.successors.all()) == [renewed]


def test_submit_request_is_the_rest_source(tenant):
    cert = services.submit_request(_input("b.example.com"), actor=tenant.admin, project=tenant.project,
                                   template=tenant.templates["client-auth"])
    assert Certificate.objects.get(pk=cert.pk).source == CertificateSource.REQUEST


def test_unknown_source_is_refused_before_anything_is_written(tenant):
    with pytest.raises(ValidationFailed):
        services.issue_certificate(_input("c.example.com"), source="fax", actor=tenant.admin,
                                   project=tenant.project, template=tenant.templates["client-auth"])
    assert not Certificate.objects.exists()


def test_pending_requests_are_inserted_pending_and_issued_through_the_state_machine(tenant):
    cert = services.issue_certificate(_input("d.example.com"), source=CertificateSource.REQUEST,
                                      actor=tenant.admin, project=tenant.project,
                                      template=tenant.templates["web-server"])
    assert cert.status == CertificateStatus.PENDING_APPROVAL and not cert.serial_number
    assert not cert.certificate_pem


def test_rows_are_created_only_pending_or_active():
    assert initial(CertificateStatus.ACTIVE) == CertificateStatus.ACTIVE
    assert initial(CertificateStatus.PENDING_APPROVAL) == CertificateStatus.PENDING_APPROVAL
    with pytest.raises(InvalidTransition):
        initial(CertificateStatus.REVOKED)
