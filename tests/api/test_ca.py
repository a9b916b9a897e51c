"""/api/v1/ca: create a root or an intermediate under one of ours, list, get, update; the public
certificate download; the private key never leaves."""
from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from rest_framework.test import APIClient

from certificates.models import CertificateAuthority
from tests.factories import assert_denied, assert_error, events_since, issued, last_seq, unchanged

URL = "/api/v1/ca"


def root_body(tenant, name="Second Root", **extra):
    return {"name": name, "organization_id": str(tenant.org.pk), "key_type": "ec-p256",
            "subject": {"common_name": f"{name} CA", "organization": "Acme", "country": "US"}, **extra}


def assert_no_private_key(response) -> None:
    text = response.content.decode()
    assert "PRIVATE KEY" not in text
    assert "sealed" not in text and "key_id" not in text


def test_create_root_and_intermediate(tenant, tmp_path):
    client = tenant.client()
    seq = last_seq()
    response = client.post(URL, root_body(tenant, path_length=1, validity_days=3650), format="json")
    assert response.status_code == 201, response.json()
    assert_no_private_key(response)
    root = response.json()
    assert (root["kind"], root["parent_id"], root["key_type"], root["path_length"]) == ("root", None, "ec-p256", 1)
    root_cert = x509.load_pem_x509_certificate(root["certificate_pem"].encode())
    assert root_cert.subject == root_cert.issuer
    assert root_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    response = client.post(URL, {"name": "Second Issuing", "kind": "intermediate", "parent_id": root["id"],
                                 "path_length": 0, "validity_days": 1000,
                                 "subject": {"common_name": "Second Issuing CA"}}, format="json")
    assert response.status_code == 201, response.json()
    assert_no_private_key(response)
    inter = response.json()
    assert (inter["kind"], inter["parent_id"], inter["organization_id"]) == ("intermediate", root["id"],
                                                                             str(tenant.org.pk))
    (tmp_path / "root.pem").write_text(root["certificate_pem"])
    (tmp_path / "inter.pem").write_text(inter["certificate_pem"])
    result = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "root.pem", tmp_path / "inter.pem"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    inter_cert = x509.load_pem_x509_certificate(inter["certificate_pem"].encode())
    crl_dp = inter_cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert crl_dp[0].full_name[0].value == root["crl_distribution_url"]
    created = events_since(seq, action="ca.created")
    assert [e.entity_id for e in created] == [root["id"], inter["id"]]
    assert all(e.severity == "warning" and e.actor_id == tenant.admin.pk for e in created)


def test_list_get_are_scoped_and_never_show_the_key(tenant, other_tenant):
    client = tenant.client()
    response = client.get(URL)
    assert response.status_code == 200
    assert_no_private_key(response)
    assert {c["name"] for c in response.json()["data"]} == {"Acme Root", "Acme Issuing"}
    assert [c["name"] for c in client.get(URL, {"kind": "intermediate"}).json()["data"]] == ["Acme Issuing"]
    detail = client.get(f"{URL}/{tenant.issuing.pk}")
    assert detail.status_code == 200
    assert_no_private_key(detail)
    assert detail.json()["parent_id"] == str(tenant.root.pk)
    assert_error(client.get(f"{URL}/{other_tenant.root.pk}"), 404, "RESOURCE_NOT_FOUND")


def test_intermediate_under_another_tenants_ca_is_404(tenant, other_tenant):
    with unchanged():
        response = tenant.client().post(URL, {"name": "Sneaky", "kind": "intermediate",
                                              "parent_id": str(other_tenant.issuing.pk),
                                              "subject": {"common_name": "Sneaky CA"}}, format="json")
    assert_error(response, 404, "RESOURCE_NOT_FOUND", "parent_id")


def test_root_in_another_tenants_organization_is_404(tenant, other_tenant):
    with unchanged():
        response = tenant.client().post(URL, root_body(other_tenant), format="json")
    assert_error(response, 404, "RESOURCE_NOT_FOUND", "organization_id")


def test_create_denied_without_ca_admin(tenant):
    user, _, client = tenant.user("certificate_manager")
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = client.post(URL, root_body(tenant), format="json")
    assert_denied(response, "ca:admin", user, seq)


@pytest.mark.parametrize("change, field", [
    ({"key_type": "dsa-1024"}, "key_type"),
    ({"key_type": "ed25519"}, "key_type"),
    ({"subject": {"common_name": ""}}, "subject"),
    ({"subject": {"common_name": "X", "favourite_colour": "blue"}}, "subject"),
    ({"subject": {"common_name": "X", "country": "USA"}}, "subject.country"),
    ({"subject": "CN=X"}, "subject"),
    ({"kind": "intermediate"}, "parent_id"),
    ({"kind": "sub"}, "kind"),
    ({"validity_days": 0}, "validity_days"),
    ({"validity_days": "ten"}, "validity_days"),
    ({"path_length": -1}, "path_length"),
    ({"crl_url": "not a url"}, "crl_url"),
    ({"organization_id": "nope"}, "organization_id"),
    ({"name": ""}, "name"),
])
def test_bad_create_input_names_the_field(tenant, change, field):
    with unchanged():
        response = tenant.client().post(URL, {**root_body(tenant), **change}, format="json")
    assert_error(response, 400, "VALIDATION_ERROR", field)


def test_duplicate_name_is_409(tenant):
    with unchanged():
        assert_error(tenant.client().post(URL, root_body(tenant, name="Acme Root"), format="json"), 409,
                     "DUPLICATE_NAME")


def test_update_name_urls_and_crl_settings(tenant):
    seq = last_seq()
    response = tenant.client().put(f"{URL}/{tenant.issuing.pk}", {
        "name": "Acme Issuing 2", "crl_url": "https://crl.acme.test/issuing.crl",
        "ocsp_url": "https://ocsp.acme.test", "crl_full_validity_hours": 48, "crl_delta_validity_hours": 6,
    }, format="json")
    assert response.status_code == 200, response.json()
    assert_no_private_key(response)
    body = response.json()
    assert body["crl_distribution_url"] == "https://crl.acme.test/issuing.crl"
    assert body["ocsp_responder_url"] == "https://ocsp.acme.test"
    ca = CertificateAuthority.objects.get(pk=tenant.issuing.pk)
    assert (ca.name, ca.crl_full_validity_hours, ca.crl_delta_validity_hours) == ("Acme Issuing 2", 48, 6)
    assert ca.certificate_pem == tenant.issuing.certificate_pem
    [event] = events_since(seq, action="ca.updated")
    assert set(event.details["changes"]) == {"name", "crl_url", "ocsp_url", "crl_full_validity_hours",
                                             "crl_delta_validity_hours"}


def test_update_denied_other_tenant_and_bad_input(tenant, other_tenant):
    user, _, client = tenant.user("user")
    seq = last_seq()
    with unchanged(tenant.issuing, audit=("rbac.permission.denied",)):
        response = client.put(f"{URL}/{tenant.issuing.pk}", {"name": "Mine"}, format="json")
    assert_denied(response, "ca:admin", user, seq)
    admin = tenant.client()
    with unchanged(tenant.issuing, other_tenant.issuing):
        assert_error(admin.put(f"{URL}/{other_tenant.issuing.pk}", {"name": "Mine"}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
        for body, field in (({"crl_url": "ftp//nope"}, "crl_url"), ({"crl_full_validity_hours": 0}, "crl_full_validity_hours"),
                            ({"status": "melted"}, "status"), ({"name": "Acme Root"}, None)):
            response = admin.put(f"{URL}/{tenant.issuing.pk}", body, format="json")
            if field is None:
                assert_error(response, 409, "DUPLICATE_NAME")
            else:
                assert_error(response, 400, "VALIDATION_ERROR", field)


def test_update_cannot_touch_key_or_certificate(tenant):
    with unchanged(tenant.issuing, audit=()):
        response = tenant.client().put(f"{URL}/{tenant.issuing.pk}", {"certificate_pem": "x", "key_type": "rsa-4096"},
                                       format="json")
    # Unknown (read-only) properties are ignored: the CA keeps its key and certificate.
    assert response.status_code == 200
    assert response.json()["key_type"] == "ec-p256"
    assert response.json()["certificate_pem"] == tenant.issuing.certificate_pem


def test_public_certificate_download(tenant):
    anonymous = APIClient()
    response = anonymous.get(f"{URL}/{tenant.issuing.pk}/certificate")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-cert"
    der = x509.load_der_x509_certificate(response.content)
    assert der == x509.load_pem_x509_certificate(tenant.issuing.certificate_pem.encode())
    pem = anonymous.get(f"{URL}/{tenant.issuing.pk}/certificate", {"format": "pem"})
    assert pem.content.decode() == tenant.issuing.certificate_pem
    assert_error(anonymous.get(f"{URL}/00000000-0000-4000-8000-000000000000/certificate"), 404,
                 "RESOURCE_NOT_FOUND")


def test_ca_url_overrides_reach_issued_certificates(tenant):
    tenant.client().put(f"{URL}/{tenant.issuing.pk}", {"crl_url": "https://crl.acme.test/i.crl",
                                                       "ocsp_url": "https://ocsp.acme.test/"}, format="json")
    body = issued(tenant.client(), tenant, cn="override-client")
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    crl_dp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert [n.value for n in crl_dp[0].full_name] == ["https://crl.acme.test/i.crl"]
    aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    ocsp = [d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP]
    assert ocsp == ["https://ocsp.acme.test/"]
