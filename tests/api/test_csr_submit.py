"""POST /api/v1/certificates/csr: both modes, every field of the seed's table, template policy
(422 listing every violation), malformed input (400 naming the field), permissions, tenancy."""
from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from certificates.keystore.db import load_private_key
from certificates.models import Certificate, CertificateSigningRequest, CertificateTemplate
from certificates.stock import STOCK_TEMPLATES
from tests.conftest import cached_key, make_csr
from tests.factories import (assert_denied, assert_error, csr_body, events_since, issued, last_seq, pending, submit,
                             unchanged)

URL = "/api/v1/certificates/csr"
SERIAL = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){7,19}$")
ALL_SUBJECT = {"common_name": "svc.acme.test", "organization": "Acme", "organizational_unit": "Platform",
               "locality": "Springfield", "state": "Oregon", "country": "US", "email_address": "pki@acme.test"}
ALL_SANS = {"dns_names": ["svc.acme.test", "svc-internal.acme.test"], "ip_addresses": ["10.1.2.3", "2001:db8::1"],
            "email_addresses": ["ops@acme.test"], "uris": ["spiffe://acme.test/svc"]}


@pytest.fixture
def open_template(tenant):
    """Every subject field and SAN type allowed, auto-approved."""
    template = CertificateTemplate.objects.create(
        organization=tenant.org, project=tenant.project, name="open", ca=tenant.issuing,
        key_algorithms=["rsa-2048", "rsa-3072", "ec-p256", "ec-p384", "ed25519"], default_key_type="ec-p256",
        subject_policy={k: {} for k in ALL_SUBJECT}, san_types=list(ALL_SANS), key_usage=["digitalSignature"],
        extended_key_usage=["serverAuth", "clientAuth"], auto_approve=True)
    tenant.templates["open"] = template
    return template


def test_uploaded_auto_approved_is_issued_at_once(tenant):
    seq = last_seq()
    response = submit(tenant.client(), tenant, cn="client-7", csr_source_mode="uploaded_csr")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active"
    assert SERIAL.match(body["serial_number"]), body["serial_number"]
    assert body["ca_id"] == str(tenant.issuing.pk) and body["project_id"] == str(tenant.project.pk)
    assert body["requested_by"] == tenant.admin.username and body["requested_at"]
    assert body["csr_source_mode"] == "uploaded_csr" and body["has_private_key"] is False
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == cached_key().public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    assert body["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    actions = [(e.action, e.entity_id) for e in events_since(seq)]
    assert actions == [("cert.requested", body["id"]), ("cert.issued", body["id"])]


def test_approval_required_stays_pending(tenant):
    seq = last_seq()
    body = pending(tenant.client(), tenant, cn="www.acme.test")
    assert body["serial_number"] is None and body["certificate_pem"] == "" and body["not_after"] is None
    assert body["required_approvals"] == 1 and body["approvals"] == []
    assert body["san"] == ["www.acme.test"]
    assert [e.action for e in events_since(seq)] == ["cert.requested"]


def test_mazevault_generated_with_every_seed_field(tenant, open_template):
    seq = last_seq()
    response = tenant.client().post(URL, {
        "template_id": str(open_template.pk), "project_id": str(tenant.project.pk),
        "organization_id": str(tenant.org.pk), "csr_source_mode": "mazevault_generated",
        "requested_cn": "svc.acme.test", "requested_subject": ALL_SUBJECT, "requested_san": ALL_SANS,
        "requested_key_algorithm": "ECDSA", "requested_key_size": 384, "key_storage_mode": "local",
        "create_new_secret": False, "generation_reference": "ticket-42", "agent_id": "550e8400-e29b-41d4-a716-446655440099",
        "name": "svc", "description": "the service", "labels": {"team": "platform"},
        "owner_contacts": ["ops@acme.test"], "auto_renew": True,
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["key_type"], body["has_private_key"]) == ("active", "ECDSA-P384", True)
    assert "PRIVATE KEY" not in response.content.decode()
    assert (body["name"], body["labels"], body["owner_contacts"], body["auto_renew"]) == (
        "svc", {"team": "platform"}, ["ops@acme.test"], True)
    cert = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    subject = {a.oid._name: a.value for a in cert.subject}
    assert subject == {"countryName": "US", "stateOrProvinceName": "Oregon", "localityName": "Springfield",
                       "organizationName": "Acme", "organizationalUnitName": "Platform",
                       "commonName": "svc.acme.test", "emailAddress": "pki@acme.test"}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ALL_SANS["dns_names"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ALL_SANS["ip_addresses"]
    assert san.get_values_for_type(x509.RFC822Name) == ALL_SANS["email_addresses"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ALL_SANS["uris"]
    stored = Certificate.objects.get(pk=body["id"])
    request = CertificateSigningRequest.objects.get(certificate=stored)
    assert (request.mode, request.key_storage_mode, request.generation_reference, str(request.agent_id)) == (
        "mazevault_generated", "local", "ticket-42", "550e8400-e29b-41d4-a716-446655440099")
    # The key is sealed at rest (no PEM/DER in the row) and opens to the certificate's key.
    sealed = bytes(stored.private_key.sealed)
    assert b"PRIVATE KEY" not in sealed
    private = load_private_key(stored.private_key)
    assert private.public_key() == cert.public_key()
    assert [e.action for e in events_since(seq)] == ["cert.requested", "cert.issued"]


@pytest.mark.parametrize("algorithm, size, key_type", [("RSA", 2048, "RSA-2048"), ("Ed25519", None, "Ed25519"),
                                                        ("EC", None, "ECDSA-P256"), (None, None, "ECDSA-P256")])
def test_generated_key_algorithms(tenant, open_template, algorithm, size, key_type):
    fields = {"requested_key_algorithm": algorithm} if algorithm else {}
    if size:
        fields["requested_key_size"] = size
    body = issued(tenant.client(), tenant, "open", csr_source_mode="mazevault_generated", requested_cn="gen.acme.test",
                  **fields)
    assert body["key_type"] == key_type


def test_every_violation_is_listed(tenant):
    template = tenant.templates["client-auth"]
    template.san_patterns = {"dns_names": [r"[a-z0-9-]+\.acme\.test"]}
    template.save()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = make_csr("x.acme.test", key=weak, subject={"locality": "Springfield"},
                   dns=["*.acme.test", "www.evil.test"], ip_addresses=["10.0.0.1"])
    with unchanged():
        response = submit(tenant.client(), tenant, csr_pem=csr)
    body = assert_error(response, 422, "POLICY_VIOLATION")
    violations = {v["field"]: v["message"] for v in body["details"]["violations"]}
    assert set(violations) == {"csr_pem", "requested_subject.locality", "requested_san.dns_names[0]",
                               "requested_san.dns_names[1]", "requested_san.ip_addresses"}
    assert "2048" in violations["csr_pem"]
    assert "wildcard" in violations["requested_san.dns_names[0]"]
    assert "pattern" in violations["requested_san.dns_names[1]"]


def test_key_type_not_allowed_and_required_subject_missing(tenant):
    with unchanged():
        response = submit(tenant.client(), tenant, "code-signing", csr_source_mode="mazevault_generated",
                          requested_cn="Signer", requested_key_algorithm="Ed25519")
    body = assert_error(response, 422, "POLICY_VIOLATION")
    assert {v["field"] for v in body["details"]["violations"]} == {"requested_key_algorithm",
                                                                   "requested_subject.organization"}
    ed_csr = make_csr("alice", key=ed25519.Ed25519PrivateKey.generate(), email_addresses=["alice@acme.test"])
    with unchanged():
        response = submit(tenant.client(), tenant, "email", csr_pem=ed_csr)
    body = assert_error(response, 422, "POLICY_VIOLATION", "csr_pem")
    assert "Ed25519" in body["details"]["violations"][0]["message"]


def test_rsa_below_template_minimum_is_a_violation(tenant):
    with unchanged():
        response = submit(tenant.client(), tenant, "code-signing", csr_source_mode="mazevault_generated",
                          requested_subject={"common_name": "Signer", "organization": "Acme"},
                          requested_key_algorithm="RSA", requested_key_size=2048)
    assert_error(response, 422, "POLICY_VIOLATION", "requested_key_size")


def test_subject_pattern_and_required_san(tenant):
    tenant.templates["web-server"].subject_policy = {**STOCK_TEMPLATES["web-server"]["subject_policy"],
                                                     "organization": {"pattern": "Acme( Inc)?"}}
    tenant.templates["web-server"].save()
    with unchanged():
        response = submit(tenant.client(), tenant, "web-server", csr_source_mode="mazevault_generated",
                          requested_subject={"organization": "Evil Corp"})
    body = assert_error(response, 422, "POLICY_VIOLATION")
    assert {v["field"] for v in body["details"]["violations"]} == {"requested_subject.organization",
                                                                   "requested_san", "requested_subject.common_name"}


def test_broken_signature_is_invalid_format(tenant):
    csr = x509.load_pem_x509_csr(make_csr("client-sig").encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    at = der.find(b"client-sig")
    der[at + len("client-sig") - 1] = ord("x")  # same length, still parses, signature no longer matches
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with unchanged():
        body = assert_error(submit(tenant.client(), tenant, csr_pem=tampered), 400, "INVALID_FORMAT", "csr_pem")
    assert body["details"]["reason"] == "csr_signature_invalid"


@pytest.mark.parametrize("csr_pem", [
    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    "this is not a CSR",
    "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 70000 + "\n-----END CERTIFICATE REQUEST-----\n",
    "Ω-----BEGIN CERTIFICATE REQUEST-----",
    42,
])
def test_malformed_pem_is_400_naming_csr_pem(tenant, csr_pem):
    with unchanged():
        response = submit(tenant.client(), tenant, csr_pem=csr_pem)
    assert response.status_code == 400, response.json()
    assert response.json()["error"] in ("INVALID_FORMAT", "VALIDATION_ERROR")
    assert_error(response, 400, response.json()["error"], "csr_pem")


def test_malformed_json_is_invalid_format(tenant):
    with unchanged():
        response = tenant.client().post(URL, data='{"template_id": ', content_type="application/json")
    assert_error(response, 400, "INVALID_FORMAT")
    with unchanged():
        response = tenant.client().post(URL, data="template_id=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("change, field", [
    ({"template_id": "not-a-uuid"}, "template_id"),
    ({"project_id": None}, "project_id"),
    ({"csr_source_mode": "telepathy"}, "csr_source_mode"),
    ({"csr_pem": ""}, "csr_pem"),
    ({"requested_san": "a.acme.test"}, "requested_san"),
    ({"requested_san": {"dns_names": "a.acme.test"}}, "requested_san.dns_names"),
    ({"requested_san": {"ip_addresses": ["999.1.1.1"]}}, "requested_san.ip_addresses"),
    ({"requested_san": {"phone_numbers": ["1"]}}, "requested_san.phone_numbers"),
    ({"requested_subject": ["CN=x"]}, "requested_subject"),
    ({"requested_subject": {"common_name": "x", "shoe_size": "44"}}, "requested_subject.shoe_size"),
    ({"requested_subject": {"country": "USA"}}, "requested_subject.country"),
    ({"requested_key_size": "big"}, "requested_key_size"),
    ({"requested_key_algorithm": "DSA"}, "requested_key_algorithm"),
    ({"key_storage_mode": "cloud"}, "key_storage_mode"),
    ({"labels": ["x"]}, "labels"),
    ({"owner_contacts": ["not-an-email"]}, "owner_contacts"),
    ({"auto_renew": "sometimes"}, "auto_renew"),
    ({"agent_id": "agent-7"}, "agent_id"),
])
def test_wrong_types_are_400_naming_the_field(tenant, change, field):
    with unchanged():
        response = tenant.client().post(URL, {**csr_body(tenant), **change}, format="json")
    assert_error(response, 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize("change, status, code, field", [
    ({"requested_key_algorithm": "RSA", "requested_key_size": 1024}, 422, "POLICY_VIOLATION", "requested_key_size"),
    ({"requested_key_size": 2048}, 400, "VALIDATION_ERROR", "requested_key_algorithm"),
    ({"key_storage_mode": "external"}, 400, "VALIDATION_ERROR", "key_storage_mode"),
    ({"requested_subject": {"common_name": "other"}}, 422, "POLICY_VIOLATION", "requested_cn"),
    ({"requested_san": {"dns_names": ["bad name!"]}}, 400, "VALIDATION_ERROR", "requested_san.dns_names"),
])
def test_generated_mode_errors(tenant, change, status, code, field):
    with unchanged():
        response = submit(tenant.client(), tenant, csr_source_mode="mazevault_generated", requested_cn="gen", **change)
    assert_error(response, status, code, field)


def test_azure_key_vault_mode_is_not_available_yet(tenant):
    body = csr_body(tenant, csr_source_mode="azure_key_vault_generated", requested_cn="kv.acme.test")
    with unchanged():
        assert_error(tenant.client().post(URL, body, format="json"), 400, "VALIDATION_ERROR", "key_integration_id")
        response = tenant.client().post(URL, {**body, "key_integration_id": "550e8400-e29b-41d4-a716-446655440010"},
                                        format="json")
    body = assert_error(response, 400, "VALIDATION_ERROR", "csr_source_mode")
    assert "not available" in body["message"]


def test_unparsable_csr_is_invalid_format_with_a_reason(tenant):
    with unchanged():
        response = submit(tenant.client(), tenant, csr_pem="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                                           "-----END CERTIFICATE REQUEST-----\n")
    body = assert_error(response, 400, "INVALID_FORMAT", "csr_pem")
    assert body["details"]["reason"] == "unparsable"


@pytest.mark.parametrize("key_type, code", [("rsa-1024", "key_too_small"), ("dsa", "unsupported_key")])
def test_weak_or_unsupported_csr_key_is_a_policy_violation(tenant, key_type, code):
    """Top-level codes come from DESIGN.md's list: the key problem is a sub-code of POLICY_VIOLATION."""
    from cryptography.hazmat.primitives.asymmetric import dsa
    from cryptography.x509.oid import NameOID

    key = (rsa.generate_private_key(65537, 1024) if key_type == "rsa-1024"
           else dsa.generate_private_key(2048))
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
               .sign(key, hashes.SHA256()))
    with unchanged():
        response = submit(tenant.client(), tenant, csr_pem=request.public_bytes(serialization.Encoding.PEM).decode())
    body = assert_error(response, 422, "POLICY_VIOLATION", "csr_pem")
    assert [v["code"] for v in body["details"]["violations"]] == [code], body


def test_every_policy_violation_has_a_stable_code(tenant):
    with unchanged():
        response = submit(tenant.client(), tenant, "web-server", csr_source_mode="mazevault_generated",
                          requested_cn="www.acme.test", requested_subject={"country": "us"},
                          requested_san={"dns_names": ["*.acme.test"], "email_addresses": ["a@acme.test"]})
    body = assert_error(response, 422, "POLICY_VIOLATION")
    codes = {(v["field"], v["code"]) for v in body["details"]["violations"]}
    assert ("requested_subject.country", "subject_pattern_mismatch") in codes, codes
    assert ("requested_san.email_addresses", "san_type_not_allowed") in codes, codes
    assert all(set(v) == {"field", "code", "message"} for v in body["details"]["violations"])


def test_requested_cn_must_match_the_uploaded_csr(tenant):
    with unchanged():
        response = submit(tenant.client(), tenant, cn="client-1", requested_cn="someone-else")
    assert_error(response, 422, "POLICY_VIOLATION", "requested_cn")


def test_permission_denied_and_user_role_allowed(tenant):
    user, _, viewer = tenant.user("viewer")
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = submit(viewer, tenant)
    assert_denied(response, "certificate:request", user, seq)
    requester, _, client = tenant.user("user")
    body = issued(client, tenant, cn="by-user")
    assert body["requested_by"] == requester.username


def test_other_tenants_ids_are_404(tenant, other_tenant):
    client = tenant.client()
    with unchanged():
        assert_error(submit(client, tenant, project_id=str(other_tenant.project.pk)), 404, "RESOURCE_NOT_FOUND",
                     "project_id")
        assert_error(submit(client, tenant, template_id=str(other_tenant.templates["client-auth"].pk)), 404,
                     "RESOURCE_NOT_FOUND", "template_id")
        assert_error(submit(client, tenant, organization_id=str(other_tenant.org.pk)), 404, "RESOURCE_NOT_FOUND",
                     "project_id")
        assert_error(submit(client, tenant, template_id="00000000-0000-4000-8000-000000000000"), 404,
                     "RESOURCE_NOT_FOUND", "template_id")


def test_disabled_template_is_409(tenant):
    template = tenant.templates["client-auth"]
    template.is_active = False
    template.save()
    with unchanged():
        assert_error(submit(tenant.client(), tenant), 409, "RESOURCE_CONFLICT", "template_id")


class TestIdempotencyKey:
    def test_same_key_and_body_returns_the_first_certificate(self, tenant):
        client = tenant.client()
        body = csr_body(tenant, cn="idem-1")
        first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
        assert first.status_code == 201
        with unchanged():
            again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
        assert again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["serial_number"] == first.json()["serial_number"]
        assert again["Idempotent-Replayed"] == "true"
        assert Certificate.objects.filter(common_name="idem-1").count() == 1

    def test_same_key_other_body_is_409(self, tenant):
        client = tenant.client()
        assert client.post(URL, csr_body(tenant, cn="idem-2"), format="json",
                           HTTP_IDEMPOTENCY_KEY="order-2").status_code == 201
        with unchanged():
            response = client.post(URL, csr_body(tenant, cn="idem-3"), format="json", HTTP_IDEMPOTENCY_KEY="order-2")
        body = assert_error(response, 409, "RESOURCE_CONFLICT")
        assert body["details"]["reason"] == "idempotency_key_reused"

    def test_a_failed_attempt_releases_the_key(self, tenant):
        client = tenant.client()
        bad = csr_body(tenant, cn="idem-4")
        bad["csr_pem"] = "garbage"
        with unchanged():
            assert client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="order-4").status_code == 400
        good = client.post(URL, csr_body(tenant, cn="idem-4"), format="json", HTTP_IDEMPOTENCY_KEY="order-4")
        assert good.status_code == 201

    def test_keys_belong_to_their_user(self, tenant):
        _, _, other = tenant.user("user")
        body = csr_body(tenant, cn="idem-5")
        one = tenant.client().post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
        two = other.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="shared")
        assert one.status_code == two.status_code == 201
        assert one.json()["id"] != two.json()["id"]

    def test_bad_key_is_400(self, tenant):
        with unchanged():
            response = tenant.client().post(URL, csr_body(tenant), format="json", HTTP_IDEMPOTENCY_KEY="k" * 256)
        assert_error(response, 400, "VALIDATION_ERROR", "Idempotency-Key")


@pytest.mark.parametrize("stray", [{"key_secret_path": "kv/svc"}, {"key_secret_name": "svc-key"},
                                   {"create_new_secret": True},
                                   {"key_integration_id": "550e8400-e29b-41d4-a716-446655440077"}])
def test_external_custody_fields_without_external_mode_are_refused(tenant, open_template, stray):
    """Fields that steer external key custody are refused in local mode rather than ignored."""
    before = Certificate.objects.count()
    response = tenant.client().post(URL, {
        "template_id": str(open_template.pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "mazevault_generated", "requested_cn": "svc.acme.test",
        "requested_san": {"dns_names": ["svc.acme.test"]}, "key_storage_mode": "local", **stray,
    }, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert list(stray)[0] in body["details"]["fields"]
    assert Certificate.objects.count() == before
