"""crl/ocsp.py: CA lookup by CertID, the status source of truth, the version-keyed response cache,
delegated responders (issued, reused, renewed), signing with the CA key, and statement counts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.utils import timezone

from certificates.models import CertificateAuthority, RevocationReason
from crl import ocsp as service
from crl.models import OCSPCachedResponse, OCSPResponder
from mazevault.models import AuditEvent

from .conftest import issue, leaf_and_issuer, release, request_der, revoke

pytestmark = pytest.mark.django_db


def _answer(der: bytes, **kwargs) -> tuple[service.Answer, ocsp.OCSPResponse]:
    answer = service.respond(der, **kwargs)
    return answer, ocsp.load_der_ocsp_response(answer.der)


def _verify(parsed: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    signer.public_key().verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(parsed.signature_hash_algorithm))


def test_good_for_an_issued_certificate(tenant):
    cert = issue(tenant)
    leaf, issuer = leaf_and_issuer(cert)
    answer, parsed = _answer(request_der(cert))
    assert answer.status == "good" and not answer.cacheable
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == leaf.serial_number
    # Signed by the delegated responder, which the issuing CA certified and which travels along.
    (responder,) = parsed.certificates
    responder.verify_directly_issued_by(issuer)
    _verify(parsed, responder)
    assert ExtendedKeyUsageOID.OCSP_SIGNING in responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert parsed.next_update_utc - parsed.this_update_utc == service.RESPONSE_VALIDITY


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_every_supported_certid_hash_finds_the_ca(tenant, algorithm):
    cert = issue(tenant)
    answer, parsed = _answer(request_der(cert, algorithm=algorithm))
    assert answer.status == "good"
    assert parsed.hash_algorithm.name == algorithm.name


def test_unknown_serial_of_our_ca(tenant):
    cert = issue(tenant)
    leaf, issuer = leaf_and_issuer(cert)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_hashes(issuer), serial_number=leaf.serial_number + 1, algorithm=hashes.SHA1())
    answer, parsed = _answer(builder.build().public_bytes(_der()))
    assert answer.status == "unknown" and not answer.cacheable
    assert parsed.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    assert not OCSPCachedResponse.objects.exists()  # unknown answers are never kept


def _hashes(issuer):
    from certificates.pki.ocsp import issuer_hashes

    return issuer_hashes(issuer, "sha1")


def _der():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


def test_ca_that_is_not_ours_is_unauthorized(tenant):
    from tests.crl.test_ocsp_pki import _request

    from certificates.pki.builder import CAProfile, sign_ca
    from certificates.pki.keys import generate_private_key
    from certificates.pki.names import build_name

    key = generate_private_key("ec-p256")
    now = timezone.now()
    foreign = sign_ca(CAProfile(subject=build_name({"common_name": "Elsewhere CA"}), public_key=key.public_key(),
                                not_before=now, not_after=now + timedelta(days=1)), issuer_cert=None, issuer_key=key)
    cert = issue(tenant)
    leaf, _ = leaf_and_issuer(cert)
    answer, parsed = _answer(_request(leaf, foreign))
    assert answer.status == "unauthorized"
    assert parsed.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_malformed_request(tenant):
    answer, parsed = _answer(b"\x30\x03\x02\x01\x00")
    assert answer.status == "malformedRequest"
    assert parsed.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_sub_ca_and_responder_serials_are_good_under_their_parent(tenant):
    from tests.crl.test_ocsp_pki import _request

    issuing = x509.load_pem_x509_certificate(tenant.issuing.certificate_pem.encode())
    root = x509.load_pem_x509_certificate(tenant.root.certificate_pem.encode())
    answer, _ = _answer(_request(issuing, root))
    assert answer.status == "good"
    cert = issue(tenant)
    _answer(request_der(cert))  # issues the issuing CA's responder
    responder = x509.load_pem_x509_certificate(OCSPResponder.objects.get(ca=tenant.issuing).certificate_pem.encode())
    answer, _ = _answer(_request(responder, issuing))
    assert answer.status == "good"


def test_other_tenants_cas_are_served_too(tenant, other_tenant):
    """One responder URL serves every CA we hold (the lookup is by CertID, not by tenant)."""
    assert _answer(request_der(issue(tenant)))[0].status == "good"
    assert _answer(request_der(issue(other_tenant, "globex-1")))[0].status == "good"


def test_revoked_with_time_and_reason_then_good_after_release(tenant):
    cert = issue(tenant)
    revoke(cert, RevocationReason.CERTIFICATE_HOLD, actor=tenant.admin)
    answer, parsed = _answer(request_der(cert))
    assert answer.status == "revoked"
    assert parsed.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason == x509.ReasonFlags.certificate_hold
    row = cert.revocations.get(current=True)
    assert parsed.revocation_time_utc == row.revoked_at.replace(microsecond=0)
    release(cert, actor=tenant.admin)
    assert _answer(request_der(cert))[0].status == "good"


def test_hold_made_final_reports_the_final_reason(tenant):
    cert = issue(tenant)
    revoke(cert, RevocationReason.CERTIFICATE_HOLD, actor=tenant.admin)
    held = _answer(request_der(cert))[1]
    revoke(cert, RevocationReason.KEY_COMPROMISE, actor=tenant.admin)
    answer, parsed = _answer(request_der(cert, nonce=None))
    assert answer.status == "revoked" and parsed.revocation_reason == x509.ReasonFlags.key_compromise
    assert parsed.revocation_time_utc == held.revocation_time_utc  # revoked since the hold


def test_unspecified_revocation_has_no_reason(tenant):
    cert = issue(tenant)
    revoke(cert, RevocationReason.UNSPECIFIED, actor=tenant.admin)
    answer, parsed = _answer(request_der(cert))
    assert answer.status == "revoked" and parsed.revocation_reason is None


# --- the cache ---------------------------------------------------------------------------------------
def test_nonce_less_requests_are_served_from_the_cache(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    first = service.respond(der)
    assert first.status == "good" and first.cacheable and not first.from_cache
    second = service.respond(der)
    assert second.from_cache and second.der == first.der
    row = OCSPCachedResponse.objects.get()
    assert row.version == 0 and row.status == "good"
    assert row.reuse_until - row.this_update == service.RESPONSE_VALIDITY / service.REUSE_FRACTION


def test_requests_with_a_nonce_are_always_signed_afresh(tenant):
    cert = issue(tenant)
    service.respond(request_der(cert, nonce=None))  # a cached good response exists
    for nonce in (b"\x01" * 16, b"\x02" * 16):
        answer, parsed = _answer(request_der(cert, nonce=nonce))
        assert not answer.from_cache and not answer.cacheable
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_revocation_invalidates_the_cached_response_at_once(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    good = service.respond(der)
    assert service.respond(der).from_cache
    revoke(cert, RevocationReason.KEY_COMPROMISE, actor=tenant.admin)
    # The stale row is still there, but its version no longer matches the status read with it.
    assert OCSPCachedResponse.objects.get().status == "good"
    revoked = service.respond(der)
    assert revoked.status == "revoked" and not revoked.from_cache
    assert ocsp.load_der_ocsp_response(revoked.der).revocation_reason == x509.ReasonFlags.key_compromise
    assert service.respond(der).from_cache  # and the revoked answer is cached in turn
    row = OCSPCachedResponse.objects.get()
    assert row.status == "revoked" and row.version == cert.revocations.get(current=True).pk
    assert revoked.der != good.der


def test_release_does_not_resurrect_the_pre_hold_response(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    before = service.respond(der)
    revoke(cert, RevocationReason.CERTIFICATE_HOLD, actor=tenant.admin)
    assert service.respond(der).status == "revoked"
    release(cert, actor=tenant.admin)
    after = service.respond(der)
    assert after.status == "good" and not after.from_cache and after.der != before.der


def test_cached_response_is_not_reused_past_reuse_until(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    first = service.respond(der)
    later = service.respond(der, now=first.reuse_until + timedelta(seconds=1))
    assert not later.from_cache and later.this_update > first.this_update


def test_deleted_certificate_is_not_served_good_from_the_cache(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    assert service.respond(der).status == "good"
    type(cert).objects.filter(pk=cert.pk).delete()
    answer = service.respond(der)
    assert answer.status == "unknown" and not answer.from_cache


# --- signers ------------------------------------------------------------------------------------------
def test_signing_with_the_ca_key(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    service.respond(der)  # cached, signed by the responder
    CertificateAuthority.objects.filter(pk=tenant.issuing.pk).update(ocsp_sign_with_ca_key=True)
    answer, parsed = _answer(der)
    assert not answer.from_cache  # the mode is part of what a cached response must match
    assert parsed.certificates == []
    _, issuer = leaf_and_issuer(cert)
    _verify(parsed, issuer)
    assert parsed.responder_key_hash == issuer.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest


def test_one_responder_per_ca_reused_and_audited(tenant):
    cert = issue(tenant)
    for _ in range(3):
        service.respond(request_der(cert))
    responder = OCSPResponder.objects.get(ca=tenant.issuing)
    assert responder.key.sealed and b"PRIVATE KEY" not in bytes(responder.key.sealed)
    assert responder.not_after - responder.not_before == service.RESPONDER_LIFETIME
    events = AuditEvent.objects.filter(action="ocsp.responder.issued")
    assert [e.entity_id for e in events] == [str(tenant.issuing.pk)]
    # ensure_responder under its lock finds the valid one instead of issuing another.
    assert service.ensure_responder(tenant.issuing.pk).pk == responder.pk


def test_responder_is_renewed_lazily_before_it_expires(tenant):
    cert = issue(tenant)
    first, _ = _answer(request_der(cert))
    old = OCSPResponder.objects.get()
    due = old.not_after - service.RESPONDER_RENEW_BEFORE + timedelta(minutes=1)
    answer, parsed = _answer(request_der(cert), now=due)
    assert answer.status == "good"
    new = OCSPResponder.objects.exclude(pk=old.pk).get()
    assert parsed.certificates[0].serial_number == int(new.serial_number.replace(":", ""), 16)
    assert parsed.next_update_utc <= new.not_after


def test_beat_task_renews_every_due_responder(tenant, other_tenant):
    from crl.ocsp_tasks import renew_ocsp_responders

    created = renew_ocsp_responders.apply().get()
    assert created == 4  # two CAs per tenant
    assert renew_ocsp_responders.apply().get() == 0  # idempotent
    later = timezone.now() + service.RESPONDER_LIFETIME - service.RESPONDER_RENEW_BEFORE + timedelta(hours=1)
    assert service.renew_responders(now=later) == 4


def test_compromised_ca_answers_revoked_for_everything_it_issued(tenant):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    assert service.respond(der).status == "good"
    from certificates.revocation import revoke_ca

    revoke_ca(tenant.issuing, actor=tenant.admin, reason=RevocationReason.KEY_COMPROMISE)
    answer, parsed = _answer(der)
    assert answer.status == "revoked" and not answer.cacheable
    assert parsed.revocation_reason == x509.ReasonFlags.ca_compromise
    # ...and the intermediate itself is revoked in its parent's history (keyCompromise).
    from tests.crl.test_ocsp_pki import _request

    issuing = x509.load_pem_x509_certificate(tenant.issuing.certificate_pem.encode())
    root = x509.load_pem_x509_certificate(tenant.root.certificate_pem.encode())
    answer, parsed = _answer(_request(issuing, root))
    assert answer.status == "revoked" and parsed.revocation_reason == x509.ReasonFlags.key_compromise


def test_ca_revoked_for_a_benign_reason_keeps_its_children_status(tenant):
    from certificates.revocation import revoke_ca

    cert = issue(tenant)
    revoke_ca(tenant.issuing, actor=tenant.admin, reason=RevocationReason.CESSATION_OF_OPERATION)
    assert service.respond(request_der(cert)).status == "good"


def test_expired_ca_is_unauthorized(tenant):
    cert = issue(tenant)
    answer = service.respond(request_der(cert), now=tenant.issuing.not_after + timedelta(seconds=1))
    assert answer.status == "unauthorized"


def test_ca_created_after_the_index_was_built_is_found(tenant, other_tenant):
    assert service.respond(request_der(issue(tenant))).status == "good"
    from certificates import services as cert_services

    new_ca = cert_services.create_ca(cert_services.CASpec(name="Late", subject={"common_name": "Late CA"}),
                                     actor=tenant.admin, organization=tenant.org)
    from tests.crl.test_ocsp_pki import _request

    root = x509.load_pem_x509_certificate(new_ca.certificate_pem.encode())
    service.CA_INDEX._loaded_at = float("-inf")  # the reload interval has passed
    # A request about a serial of the new root (its own, unknown) now reaches it: unknown, not unauthorized.
    answer = service.respond(_request(root, root))
    assert answer.status == "unknown"


def test_purge_drops_only_unreusable_entries(tenant):
    cert = issue(tenant)
    first = service.respond(request_der(cert, nonce=None))
    assert service.purge_cache(now=first.reuse_until - timedelta(seconds=1)) == 0
    assert service.purge_cache(now=first.reuse_until) == 1


# --- statement counts on the hot path -----------------------------------------------------------------
def test_statement_counts(tenant, django_assert_max_num_queries, django_assert_num_queries):
    cert = issue(tenant)
    nonce_less, with_nonce = request_der(cert, nonce=None), request_der(cert)
    service.respond(with_nonce)  # warm the process: CA index, responder issued and loaded
    with django_assert_max_num_queries(2):  # status statement + the cache upsert
        assert not service.respond(nonce_less).from_cache
    with django_assert_num_queries(1):  # cached: the status statement returns the bytes too
        assert service.respond(nonce_less).from_cache
    with django_assert_num_queries(1):  # fresh signature: the status statement only
        assert service.respond(with_nonce).status == "good"
