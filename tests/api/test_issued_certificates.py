"""What gets issued: chains that openssl verifies, the extensions DESIGN.md lists, validity from the
template clipped to the CA, random serials."""
from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from rest_framework.test import APIClient

from certificates import services
from certificates.models import CertificateTemplate
from certificates.stock import STOCK_TEMPLATES
from tests.conftest import make_csr
from tests.factories import issued, pending

PUBLIC = "https://pki.acme.example"


def approve_as_manager(tenant, cert_id) -> dict:
    _, _, manager = tenant.user("certificate_manager")
    response = manager.post(f"/api/v1/certificates/{cert_id}/approve", {}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def openssl_verify(tmp_path, root_pem: str, issuing_pem: str, leaf_pem: str, purpose: str) -> None:
    (tmp_path / "root.pem").write_text(root_pem)
    (tmp_path / "issuing.pem").write_text(issuing_pem)
    (tmp_path / "leaf.pem").write_text(leaf_pem)
    result = subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", tmp_path / "root.pem",
                             "-untrusted", tmp_path / "issuing.pem", tmp_path / "leaf.pem"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_approved_web_server_certificate(tenant, tmp_path, settings):
    settings.MAZEVAULT_PUBLIC_URL = PUBLIC
    waiting = pending(tenant.client(), tenant, cn="www.acme.test",
                      csr_pem=make_csr("www.acme.test", dns=["www.acme.test", "api.acme.test"], key_type="rsa-2048",
                                       ip_addresses=["192.0.2.10"]))
    body = approve_as_manager(tenant, waiting["id"])
    root_pem = APIClient().get(f"/api/v1/ca/{tenant.root.pk}/certificate", {"format": "pem"}).content.decode()
    issuing_pem = body["chain_pem"].split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    openssl_verify(tmp_path, root_pem, issuing_pem, body["certificate_pem"], "sslserver")

    leaf, issuing = load(body["certificate_pem"]), load(tenant.issuing.certificate_pem)
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment
    assert not ku.value.key_cert_sign and not ku.value.crl_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.acme.test", "api.acme.test"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    base = f"{PUBLIC}/api/v1/ca/{tenant.issuing.pk}"
    crl_dp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for dp in crl_dp for n in dp.full_name] == [f"{base}/crl"]
    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP] == \
        [f"{base}/ocsp"]
    ca_issuers = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    assert ca_issuers == [f"{base}/certificate"]
    # The caIssuers URL serves the issuer, in DER.
    served = APIClient().get(ca_issuers[0].removeprefix(PUBLIC))
    assert x509.load_der_x509_certificate(served.content) == issuing
    assert leaf.issuer == issuing.subject
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=365) <= lifetime <= timedelta(days=365, minutes=10)


def test_auto_approved_client_certificate(tenant, tmp_path):
    body = issued(tenant.client(), tenant, cn="device-42",
                  csr_pem=make_csr("device-42", email_addresses=["dev@acme.test"]))
    openssl_verify(tmp_path, tenant.root.certificate_pem, tenant.issuing.certificate_pem, body["certificate_pem"],
                   "sslclient")
    leaf = load(body["certificate_pem"])
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name) == ["dev@acme.test"]
    assert body["chain_pem"] == tenant.issuing.certificate_pem + tenant.root.certificate_pem


def test_validity_is_clipped_to_the_issuing_ca(tenant, tmp_path):
    short = services.create_ca(services.CASpec(name="Short", key_type="ec-p256", path_length=0, validity_days=30,
                                               subject={"common_name": "Short-lived CA"}),
                               actor=tenant.admin, organization=tenant.org, project=tenant.project,
                               parent=tenant.root)
    tenant.templates["short"] = CertificateTemplate.objects.create(
        organization=tenant.org, project=tenant.project, name="short", ca=short,
        **{**STOCK_TEMPLATES["client-auth"], "validity_days": 365})
    body = issued(tenant.client(), tenant, "short", cn="clipped")
    leaf = load(body["certificate_pem"])
    assert leaf.not_valid_after_utc == short.not_after
    assert body["not_after"] == short.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert leaf.not_valid_before_utc >= short.not_before
    openssl_verify(tmp_path, tenant.root.certificate_pem, short.certificate_pem, body["certificate_pem"], "sslclient")


def test_serials_are_random_positive_and_unique(tenant):
    serials = [load(issued(tenant.client(), tenant, cn=f"serial-{i}")["certificate_pem"]).serial_number
               for i in range(4)]
    assert len(set(serials)) == 4
    assert all(0 < s < 2 ** 159 for s in serials)
    assert all(s.bit_length() > 64 for s in serials)


@pytest.mark.parametrize("key_type", ["ec-p384", "ed25519"])
def test_other_leaf_key_types_chain(tenant, tmp_path, key_type):
    body = issued(tenant.client(), tenant, cn=f"leaf-{key_type}", csr_pem=make_csr(f"leaf-{key_type}",
                                                                                    key_type=key_type))
    openssl_verify(tmp_path, tenant.root.certificate_pem, tenant.issuing.certificate_pem, body["certificate_pem"],
                   "sslclient")
