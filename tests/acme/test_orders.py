"""Orders end to end in-process: profiles, approval inside ACME (processing → approved → valid; rejected →
invalid), finalize checks, authorization deactivation, revocation rules (RFC 8555 7.6), ARI, clean-up, and
another account's objects."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from acme import services
from acme.models import Authorization, AuthzStatus, Nonce, Order, OrderStatus
from certificates.models import Certificate, CertificateStatus

from .conftest import Signer
from .test_flow import csr_der, solve_http01
from .test_views_protocol import problem

pytestmark = pytest.mark.django_db


def _ready_order(client, names, http01, capture, **extra):
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": n} for n in names],
                                                   **extra})
    assert response.status_code == 201, response.content
    order = response.json()
    solve_http01(client, order, http01, capture)
    order = client.post(client.path(response["Location"])).json()
    assert order["status"] == "ready", order
    return order, client.path(response["Location"])


def _issue(client, names, http01, capture, key=None):
    order, path = _ready_order(client, names, http01, capture)
    order = client.post(client.path(order["finalize"]), {"csr": csr_der(names, key)}).json()
    assert order["status"] == "valid", order
    pem = client.post(client.path(order["certificate"])).content
    return x509.load_pem_x509_certificates(pem)[0], path


def _b64(cert) -> str:
    return base64.urlsafe_b64encode(cert.public_bytes(serialization.Encoding.DER)).rstrip(b"=").decode()


def test_profiles_choose_the_template_and_unknown_ones_are_refused(acme, dns, http01, django_capture_on_commit_callbacks):
    client = acme.client()
    client.register()
    problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "p.acme.internal"}],
                                                "profile": "no-such"}), 400, "invalidProfile")
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "p.acme.internal"}],
                                                   "profile": "client-auth"})
    assert response.status_code == 201 and response.json()["profile"] == "client-auth"
    assert Order.objects.get(pk=response["Location"].rsplit("/", 1)[1]).template == acme.tenant.templates["client-auth"]


def test_approval_inside_acme(acme, dns, http01, django_capture_on_commit_callbacks):
    """Names outside MAZEVAULT_INTERNAL_SUFFIXES under an approval template: finalize answers processing with
    Retry-After, the request waits in the approval queue, and approval completes the order."""
    client = acme.client()
    client.register()
    order, path = _ready_order(client, ["www.acme.test"], http01, django_capture_on_commit_callbacks)
    response = client.post(client.path(order["finalize"]), {"csr": csr_der(["www.acme.test"])})
    assert response.status_code == 200 and response.json()["status"] == "processing"
    assert response["Retry-After"]
    cert = Certificate.objects.get()
    assert cert.status == CertificateStatus.PENDING_APPROVAL
    assert client.post(path).json()["status"] == "processing"
    approved = acme.tenant.client().post(f"/api/v1/certificates/{cert.pk}/approve", {}, format="json")
    assert approved.status_code == 200, approved.json()
    body = client.post(path).json()
    assert body["status"] == "valid" and body["certificate"].endswith(str(cert.pk))


def test_rejection_makes_the_order_invalid(acme, dns, http01, django_capture_on_commit_callbacks):
    client = acme.client()
    client.register()
    order, path = _ready_order(client, ["rej.acme.test"], http01, django_capture_on_commit_callbacks)
    client.post(client.path(order["finalize"]), {"csr": csr_der(["rej.acme.test"])})
    cert = Certificate.objects.get()
    response = acme.tenant.client().post(f"/api/v1/certificates/{cert.pk}/reject", {"reason": "not ours"}, format="json")
    assert response.status_code == 200, response.json()
    body = client.post(path).json()
    assert body["status"] == "invalid" and "not ours" in body["error"]["detail"]


def test_finalize_checks(acme, dns, http01, django_capture_on_commit_callbacks):
    client = acme.client()
    client.register()
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "f.acme.internal"}]})
    order = response.json()
    problem(client.post(client.path(order["finalize"]), {"csr": csr_der(["f.acme.internal"])}), 403, "orderNotReady")
    order, path = _ready_order(client, ["f.acme.internal"], http01, django_capture_on_commit_callbacks)
    finalize = client.path(order["finalize"])
    problem(client.post(finalize, {"csr": csr_der(["f.acme.internal", "g.acme.internal"])}), 400, "badCSR")
    problem(client.post(finalize, {"csr": csr_der(["f.acme.internal"], cn="other.acme.internal")}), 400, "badCSR")
    problem(client.post(finalize, {"csr": "AAAA"}), 400, "badCSR")
    problem(client.post(finalize, {}), 400, "malformed")
    weak = ec.generate_private_key(ec.SECP256K1())  # not a template key type
    problem(client.post(finalize, {"csr": csr_der(["f.acme.internal"], weak)}), 400, "badCSR")
    assert Order.objects.get(pk=path.rsplit("/", 1)[1]).status == OrderStatus.READY
    assert not Certificate.objects.exists()


def test_identifier_rules(acme):
    client = acme.client()
    client.register()
    for value in ("not a name", "localhost", "*.*.acme.internal", "a..b"):
        problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": value}]}), 400,
                "rejectedIdentifier")
    problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "email", "value": "a@b.c"}]}), 400,
            "unsupportedIdentifier")
    problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "a.acme.internal"}],
                                                "notAfter": "2030-01-01T00:00:00Z"}), 400, "malformed")
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    assert response.status_code == 201, response.content  # RFC 8738
    authz = client.post(client.path(response.json()["authorizations"][0])).json()
    assert [c["type"] for c in authz["challenges"]] == ["http-01"]


def test_authorization_deactivation_invalidates_its_order(acme):
    client = acme.client()
    client.register()
    order = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "d.acme.internal"}]})
    authz_path = client.path(order.json()["authorizations"][0])
    response = client.post(authz_path, {"status": "deactivated"})
    assert response.status_code == 200 and response.json()["status"] == "deactivated"
    assert client.post(client.path(order["Location"])).json()["status"] == "invalid"
    problem(client.post(authz_path, {"status": "valid"}), 400, "malformed")


def test_another_accounts_objects_are_404(acme, dns, http01, django_capture_on_commit_callbacks):
    owner, stranger = acme.client(), acme.client()
    owner.register()
    stranger.register()
    cert, order_path = _issue(owner, ["own.acme.internal"], http01, django_capture_on_commit_callbacks)
    order = owner.post(order_path).json()
    authz = owner.post(owner.path(order["authorizations"][0])).json()
    for path in (order_path, owner.path(order["authorizations"][0]), owner.path(authz["challenges"][0]["url"]),
                 owner.path(order["certificate"]), owner.path(order["finalize"])):
        problem(stranger.post(path, {} if "finalize" in path else None), 404, "malformed")
    problem(stranger.post(owner.path(owner.kid)), 403, "unauthorized")


def test_revocation_rules(acme, dns, http01, django_capture_on_commit_callbacks):
    owner, stranger, holder = acme.client(), acme.client(), acme.client()
    for client in (owner, stranger, holder):
        client.register()
    key = ec.generate_private_key(ec.SECP256R1())
    cert, _ = _issue(owner, ["rv.acme.internal"], http01, django_capture_on_commit_callbacks, key=key)
    # An unrelated account may not; a bad reason is refused.
    problem(stranger.post("/api/acme/revoke-cert", {"certificate": _b64(cert)}), 403, "unauthorized")
    problem(owner.post("/api/acme/revoke-cert", {"certificate": _b64(cert), "reason": 6}), 400, "badRevocationReason")
    problem(owner.post("/api/acme/revoke-cert", {"certificate": _b64(cert), "reason": 7}), 400, "badRevocationReason")
    # An account holding valid authorizations for every name in it may (RFC 8555 7.6).
    _ready_order(holder, ["rv.acme.internal"], http01, django_capture_on_commit_callbacks)
    assert holder.post("/api/acme/revoke-cert", {"certificate": _b64(cert), "reason": 0}).status_code == 200
    assert Certificate.objects.get(serial_number__isnull=False).status == CertificateStatus.REVOKED

    # The certificate's own key, signing with jwk, may too; another key may not.
    cert2, _ = _issue(owner, ["rv2.acme.internal"], http01, django_capture_on_commit_callbacks, key=key)
    problem(owner.post("/api/acme/revoke-cert", {"certificate": _b64(cert2)}, use_jwk=True, signer=Signer()), 403,
            "unauthorized")
    response = owner.post("/api/acme/revoke-cert", {"certificate": _b64(cert2), "reason": 1}, use_jwk=True,
                          signer=Signer(key=key))
    assert response.status_code == 200, response.content
    problem(owner.post("/api/acme/revoke-cert", {"certificate": "AAAA"}), 400, "malformed")


def test_renewal_info(acme, dns, http01, django_capture_on_commit_callbacks):
    client = acme.client()
    client.register()
    cert, _ = _issue(client, ["ari.acme.internal"], http01, django_capture_on_commit_callbacks)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, "big")
    cert_id = ".".join(base64.urlsafe_b64encode(v).rstrip(b"=").decode() for v in (aki, serial))
    response = client.http.get(f"/api/acme/renewal-info/{cert_id}")
    assert response.status_code == 200 and response["Retry-After"]
    window = response.json()["suggestedWindow"]
    start = timezone.datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
    end = timezone.datetime.fromisoformat(window["end"].replace("Z", "+00:00"))
    template = acme.tenant.templates["web-server"]
    assert start < end < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - start <= timedelta(days=template.renewal_window_days, seconds=1)
    problem(client.http.get("/api/acme/renewal-info/AAAA.AAAA"), 404, "malformed")
    problem(client.http.get("/api/acme/renewal-info/garbage"), 400, "malformed")


def test_clean_up_expires_stale_state(acme):
    from acme.tasks import clean_up

    client = acme.client()
    client.register()
    client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "old.acme.internal"}]})
    past = timezone.now() - timedelta(seconds=1)
    Order.objects.update(expires=past)
    Authorization.objects.update(expires=past)
    Nonce.objects.update(expires_at=past)
    result = clean_up.apply().get()
    assert result["orders"] == 1 and result["authorizations"] == 1 and result["nonces"] >= 1
    assert Order.objects.get().status == OrderStatus.INVALID
    assert Authorization.objects.get().status == AuthzStatus.EXPIRED
    assert clean_up.apply().get() == {"nonces": 0, "authorizations": 0, "orders": 0}  # idempotent
    assert services.consume_nonce("x" * 65) is False
