"""OCSP test helpers: issue a certificate through the real service, build real OCSP requests."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certificates import services as cert_services
from certificates.models import Certificate
from certificates.services import RequestInput
from crl import ocsp as ocsp_service
from tests.conftest import make_csr


@pytest.fixture(autouse=True)
def _fresh_ocsp_process_state():
    """Each test starts as a fresh process would: the per-process CA index and responder keys
    (correct across tests only within one database) are emptied."""
    ocsp_service.CA_INDEX.clear()
    ocsp_service._RESPONDERS.clear()
    yield
    ocsp_service.CA_INDEX.clear()
    ocsp_service._RESPONDERS.clear()


def issue(tenant, cn: str = "client-1") -> Certificate:
    """An active certificate from the tenant's issuing CA (auto-approved client-auth template)."""
    return cert_services.submit_request(
        RequestInput(mode="uploaded_csr", csr_pem=make_csr(cn)), actor=tenant.admin, project=tenant.project,
        template=tenant.templates["client-auth"])


def leaf_and_issuer(cert: Certificate) -> tuple[x509.Certificate, x509.Certificate]:
    return (x509.load_pem_x509_certificate(cert.certificate_pem.encode()),
            x509.load_pem_x509_certificate(cert.ca.certificate_pem.encode()))


def request_der(cert: Certificate, *, algorithm=None, nonce: bytes | None | bool = True) -> bytes:
    leaf, issuer = leaf_and_issuer(cert)
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm or hashes.SHA1())
    if nonce is True:
        nonce = os.urandom(16)
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def post(client, der: bytes, path: str = "/api/v1/ocsp", content_type: str = "application/ocsp-request"):
    return client.generic("POST", path, der, content_type=content_type)


def parse(response) -> ocsp.OCSPResponse:
    assert response.status_code in (200, 429, 503), response.status_code
    assert response["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)



def revoke(cert: Certificate, reason=None, *, actor) -> Certificate:
    """Revoke through the revocation service (a current Revocation row in the CA's history)."""
    from certificates.models import RevocationReason
    from certificates.revocation import revoke_certificate

    return revoke_certificate(cert, actor=actor, reason=RevocationReason.UNSPECIFIED if reason is None else reason)


def release(cert: Certificate, *, actor) -> Certificate:
    """Release a certificateHold (unrevoke) through the revocation service."""
    from certificates.revocation import unrevoke_certificate

    return unrevoke_certificate(cert, actor=actor)
