"""The whole ACME flow through the views with real JWS: account with EAB, order, http-01 against a local
server, finalize, download, revoke; and the audit trail it leaves."""
from __future__ import annotations

import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme.jws import key_authorization
from acme.models import Account
from certificates.models import Certificate, CertificateSource, CertificateStatus
from mazevault.models import AuditEvent

pytestmark = pytest.mark.django_db


def csr_der(names: list[str], key=None, cn: str | None = None) -> str:
    """base64url DER of a CSR for ``names`` (DNS names or IP addresses), CN ``cn`` or the first name."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])]))
    general = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(der).rstrip(b"=").decode()


def solve_http01(client, order_body, responder, capture):
    for authz_url in order_body["authorizations"]:
        authz = client.post(client.path(authz_url)).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[challenge["token"]] = key_authorization(challenge["token"], client.signer.jwk)
        with capture(execute=True):
            response = client.post(client.path(challenge["url"]), {})
        assert response.status_code == 200, response.content


def test_full_flow_with_http01(acme, http01, dns, django_capture_on_commit_callbacks):
    client = acme.client()
    response = client.register(contact=["mailto:ops@acme.test"])
    assert response.status_code == 201, response.content
    assert response["Replay-Nonce"] and 'rel="index"' in response["Link"]
    account = Account.objects.get()
    assert account.project_id == acme.tenant.project.pk and account.contact == ["mailto:ops@acme.test"]

    names = ["app.acme.internal", "api.acme.internal"]
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": n} for n in names]})
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["status"] == "pending" and len(order["authorizations"]) == 2
    order_path = client.path(response["Location"])

    solve_http01(client, order, http01, django_capture_on_commit_callbacks)
    # The validator asked for the token with the identifier as Host, on the configured port.
    assert {host for host, _ in http01.requests} == {f"{n}:{http01.port}" for n in names}
    order = client.post(order_path).json()
    assert order["status"] == "ready", order

    response = client.post(client.path(order["finalize"]), {"csr": csr_der(names)})
    assert response.status_code == 200, response.content
    order = response.json()
    # Internal names skip approval: the certificate is issued at once.
    assert order["status"] == "valid" and order["certificate"]
    response = client.post(client.path(order["certificate"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pem-certificate-chain"
    chain = x509.load_pem_x509_certificates(response.content)
    assert len(chain) == 3
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    cert = Certificate.objects.get()
    assert cert.source == CertificateSource.ACME and cert.status == CertificateStatus.ACTIVE

    der = chain[0].public_bytes(serialization.Encoding.DER)
    response = client.post("/api/acme/revoke-cert", {"certificate": base64.urlsafe_b64encode(der).rstrip(b"=").decode(),
                                                      "reason": 4})
    assert response.status_code == 200, response.content
    cert.refresh_from_db()
    assert cert.status == CertificateStatus.REVOKED and cert.revocation_reason == 4
    response = client.post("/api/acme/revoke-cert", {"certificate": base64.urlsafe_b64encode(der).rstrip(b"=").decode()})
    assert response.status_code == 400
    assert response.json()["type"] == "urn:ietf:params:acme:error:alreadyRevoked"

    actions = list(AuditEvent.objects.filter(action__startswith="acme.").values_list("action", flat=True))
    for action in ("acme.credential.created", "acme.account.created", "acme.order.created", "acme.challenge.responded",
                   "acme.challenge.validated", "acme.order.finalized"):
        assert action in actions
    assert AuditEvent.objects.filter(action="cert.revoked", actor_name=f"acme:{account.pk}").exists()
