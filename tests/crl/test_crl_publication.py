"""Per-CA CRLs: RFC 5280 structure, what they list (full and delta), distribution over HTTP, forced
regeneration, sharding, expired entries, and `openssl` agreeing with all of it."""
from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID
from django.utils import timezone
from rest_framework.test import APIClient

from certificates import revocation
from certificates.models import Certificate, CertificateAuthority, Revocation, RevocationReason
from certificates.pki import formats
from crl import services
from crl.models import CRL
from mazevault.models import AuditEvent
from tests.factories import assert_denied, assert_error, issued, last_seq, unchanged

pytestmark = pytest.mark.django_db
R = RevocationReason


def fetch(path: str, **headers) -> tuple[int, bytes, object]:
    response = APIClient().get(path, **headers)
    return response.status_code, response.content, response


def crl_of(ca, kind: str = "full", shard: int | None = None) -> x509.CertificateRevocationList:
    suffix = ("/delta" if kind == "delta" else "") + (f"/shard/{shard}" if shard is not None else "")
    status, body, response = fetch(f"/api/v1/ca/{ca.pk}/crl{suffix}")
    assert status == 200, body[:300]
    assert response["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(body)
    assert crl.is_signature_valid(formats.load_certificate(ca.certificate_pem).public_key())
    return crl


def serials(crl: x509.CertificateRevocationList) -> set[str]:
    return {formats.format_serial(entry.serial_number) for entry in crl}


def entry(crl, serial: str) -> x509.RevokedCertificate:
    found = crl.get_revoked_certificate_by_serial_number(formats.parse_serial(serial))
    assert found is not None, serial
    return found


def revoke_one(tenant, cn: str, reason=R.UNSPECIFIED, **kwargs) -> Certificate:
    cert = Certificate.objects.get(pk=issued(tenant.client(), tenant, cn=cn)["id"])
    return revocation.revoke_certificate(cert, actor=tenant.admin, reason=reason, **kwargs)


def test_full_crl_structure(tenant):
    services.publish_all(tenant.issuing)
    crl = crl_of(tenant.issuing)
    issuer = formats.load_certificate(tenant.issuing.certificate_pem)
    assert crl.issuer == issuer.subject and len(crl) == 0
    assert crl.next_update_utc - crl.last_update_utc == timedelta(hours=tenant.issuing.crl_full_validity_hours)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == CRL.objects.filter(ca=tenant.issuing, kind="full").latest("number").number
    idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and [n.value for n in idp.value.full_name] == list(tenant.issuing.crl_urls())
    freshest = crl.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical
    assert freshest.value[0].full_name[0].value == f"{tenant.issuing.public_url}/crl/delta"
    with pytest.raises(x509.ExtensionNotFound):
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)


def test_entries_carry_reason_and_invalidity_date_except_unspecified(tenant):
    when = (timezone.now() - timedelta(days=1)).replace(microsecond=0)
    plain = revoke_one(tenant, "plain")
    compromised = revoke_one(tenant, "compromised", R.KEY_COMPROMISE, invalidity_date=when)
    services.publish_all(tenant.issuing)
    crl = crl_of(tenant.issuing)
    assert serials(crl) == {plain.serial_number, compromised.serial_number}
    assert len(entry(crl, plain.serial_number).extensions) == 0  # RFC 5280 5.3.1: no unspecified reasonCode
    ext = entry(crl, compromised.serial_number).extensions
    assert ext.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON).value.reason == x509.ReasonFlags.key_compromise
    assert ext.get_extension_for_oid(CRLEntryExtensionOID.INVALIDITY_DATE).value.invalidity_date_utc == when
    assert entry(crl, compromised.serial_number).revocation_date_utc == compromised.revoked_at.replace(microsecond=0)


def test_delta_lists_changes_since_its_base_and_hold_release_as_remove_from_crl(tenant):
    ca = tenant.issuing
    before = revoke_one(tenant, "before", R.SUPERSEDED)
    held = revoke_one(tenant, "held", R.CERTIFICATE_HOLD)
    base = services.publish_crl(ca, kind="full")
    assert crl_of(ca).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == base.number
    after = revoke_one(tenant, "after", R.AFFILIATION_CHANGED)
    revocation.unrevoke_certificate(held, actor=tenant.admin)
    delta_row = services.publish_crl(ca, kind="delta")
    assert delta_row.number > base.number and delta_row.base_number == base.number
    delta = crl_of(ca, "delta")
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == base.number
    assert delta.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == delta_row.number
    assert serials(delta) == {after.serial_number, held.serial_number}  # not "before": it is in the base
    released = entry(delta, held.serial_number).extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON)
    assert released.value.reason == x509.ReasonFlags.remove_from_crl
    with pytest.raises(x509.ExtensionNotFound):
        delta.extensions.get_extension_for_class(x509.FreshestCRL)  # 5.2.6: never in a delta
    # The same scope as the base (5.2.4).
    assert delta.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value == \
        crl_of(ca).extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    # The next full CRL drops the released serial and has the new one.
    services.publish_crl(ca, kind="full")
    assert serials(crl_of(ca)) == {before.serial_number, after.serial_number}


def test_full_and_delta_share_one_strictly_increasing_number_sequence(tenant):
    ca = tenant.issuing
    numbers = [services.publish_crl(ca, kind=kind).number for kind in ("full", "delta", "delta", "full", "delta")]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert numbers == list(range(numbers[0], numbers[0] + 5))  # none skipped
    events = AuditEvent.objects.filter(action="crl.generated", entity_id=str(ca.pk))
    assert sorted(e.details["number"] for e in events)[-5:] == numbers


def test_old_crls_are_pruned_per_scope(tenant):
    for _ in range(services.KEEP_PER_SCOPE + 3):
        services.publish_crl(tenant.issuing, kind="full")
    assert CRL.objects.filter(ca=tenant.issuing, kind="full").count() == services.KEEP_PER_SCOPE


def test_download_headers_etag_304_pem_and_types(tenant):
    services.publish_all(tenant.issuing)
    status, body, response = fetch(f"/api/v1/ca/{tenant.issuing.pk}/crl")
    assert status == 200 and response["ETag"] and response["Last-Modified"] and response["Expires"]
    assert response["Cache-Control"].startswith("public, max-age=")
    max_age = int(response["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 300
    status, empty, _ = fetch(f"/api/v1/ca/{tenant.issuing.pk}/crl", HTTP_IF_NONE_MATCH=response["ETag"])
    assert status == 304 and empty == b""
    status, pem, pem_response = fetch(f"/api/v1/ca/{tenant.issuing.pk}/crl?format=pem")
    assert status == 200 and pem_response["Content-Type"] == "application/x-pem-file"
    assert x509.load_pem_x509_crl(pem).public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                                              fromlist=["Encoding"]).Encoding.DER) == body
    assert pem_response["ETag"] != response["ETag"]
    status, delta, _ = fetch(f"/api/v1/ca/{tenant.issuing.pk}/crl?type=delta")
    assert status == 200 and x509.load_der_x509_crl(delta).extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    for query, field in (("?type=partial", "type"), ("?format=json", "format")):
        response = APIClient().get(f"/api/v1/ca/{tenant.issuing.pk}/crl{query}")
        assert_error(response, 400, "VALIDATION_ERROR", field)


def test_unknown_ca_and_unpublished_scope_are_404(tenant):
    import uuid
    assert_error(APIClient().get(f"/api/v1/ca/{uuid.uuid4()}/crl"), 404, "RESOURCE_NOT_FOUND")
    assert_error(APIClient().get(f"/api/v1/ca/{tenant.issuing.pk}/crl/shard/3"), 404, "RESOURCE_NOT_FOUND")
    assert APIClient().get("/api/v1/ca/not-a-uuid/crl").status_code == 404


def test_crl_download_statement_count(tenant, django_assert_max_num_queries):
    services.publish_all(tenant.issuing)
    APIClient().get(f"/api/v1/ca/{tenant.issuing.pk}/crl")  # warm the per-process DER cache
    with django_assert_max_num_queries(1):
        assert APIClient().get(f"/api/v1/ca/{tenant.issuing.pk}/crl").status_code == 200
    services.publish_crl(tenant.issuing, kind="full")
    with django_assert_max_num_queries(2):  # a new CRL: metadata, then its bytes once
        assert APIClient().get(f"/api/v1/ca/{tenant.issuing.pk}/crl").status_code == 200


def test_regenerate_needs_ca_admin_and_answers_the_new_crl(tenant, other_tenant):
    url = f"/api/v1/ca/{tenant.issuing.pk}/crl/regenerate"
    assert_error(APIClient().post(url, {"type": "full"}, format="json"), 401, "AUTH_REQUIRED")
    viewer, _, viewer_client = tenant.user("viewer")
    seq = last_seq()
    assert_denied(viewer_client.post(url, {"type": "full"}, format="json"), "ca:admin", viewer, seq)
    assert_error(other_tenant.client().post(url, {"type": "full"}, format="json"), 404, "RESOURCE_NOT_FOUND")
    with unchanged(tenant.issuing):
        assert_error(tenant.client().post(url, {"type": "weekly"}, format="json"), 400, "VALIDATION_ERROR", "type")
        assert_error(tenant.client().post(url, {"type": "full", "shard": 2}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
    revoke_one(tenant, "listed")
    response = tenant.client().post(url, {"type": "full"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"ca_id", "number", "type", "shard", "base_number", "entry_count", "this_update",
                         "next_update", "size", "sha256"}
    assert body["type"] == "full" and body["entry_count"] == 1 and body["size"] > 0
    delta = tenant.client().post(url, {"type": "delta"}, format="json").json()
    assert delta["number"] == body["number"] + 1 and delta["base_number"] == body["number"]
    event = AuditEvent.objects.filter(action="crl.generated", entity_id=str(tenant.issuing.pk)).latest("created_at")
    assert event.actor_id == tenant.admin.pk and event.details["number"] == delta["number"]


def test_new_ca_publishes_its_first_crl_at_creation(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client().post("/api/v1/ca", {
            "name": "Fresh Issuing", "kind": "intermediate", "parent_id": str(tenant.root.pk),
            "subject": {"common_name": "Fresh Issuing CA"}}, format="json")
    assert response.status_code == 201, response.json()
    fresh = CertificateAuthority.objects.get(pk=response.json()["id"])
    assert len(crl_of(fresh)) == 0 and crl_of(fresh, "delta") is not None


# --- openssl ------------------------------------------------------------------------------------
def _write(tmp_path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def _pem_crl(ca) -> bytes:
    return fetch(f"/api/v1/ca/{ca.pk}/crl?format=pem")[1]


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def test_openssl_verifies_crls_and_rejects_a_revoked_leaf(tenant, tmp_path):
    good = Certificate.objects.get(pk=issued(tenant.client(), tenant, cn="good")["id"])
    bad = revoke_one(tenant, "bad", R.KEY_COMPROMISE)
    services.publish_all(tenant.issuing)
    services.publish_all(tenant.root)
    root = _write(tmp_path, "root.pem", tenant.root.certificate_pem)
    chain = _write(tmp_path, "chain.pem", tenant.root.certificate_pem + tenant.issuing.certificate_pem)
    crls = _write(tmp_path, "crls.pem", _pem_crl(tenant.issuing) + _pem_crl(tenant.root))
    issuing_crl = _write(tmp_path, "issuing.crl", fetch(f"/api/v1/ca/{tenant.issuing.pk}/crl")[1])
    checked = openssl("crl", "-inform", "DER", "-in", issuing_crl, "-CAfile", chain, "-noout", "-verify")
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout, checked.stderr
    intermediate = _write(tmp_path, "issuing.pem", tenant.issuing.certificate_pem)
    for flag in ("-crl_check", "-crl_check_all"):
        ok = openssl("verify", flag, "-CAfile", root, "-untrusted", intermediate, "-CRLfile", crls,
                     _write(tmp_path, "good.pem", good.certificate_pem))
        assert ok.returncode == 0, (flag, ok.stdout, ok.stderr)
        refused = openssl("verify", flag, "-CAfile", root, "-untrusted", intermediate, "-CRLfile", crls,
                          _write(tmp_path, "bad.pem", bad.certificate_pem))
        assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr, refused


def test_openssl_rejects_a_chain_through_a_revoked_intermediate(tenant, tmp_path):
    leaf = Certificate.objects.get(pk=issued(tenant.client(), tenant, cn="under-revoked")["id"])
    services.publish_all(tenant.issuing)
    revocation.revoke_ca(tenant.issuing, actor=tenant.admin, reason=R.CA_COMPROMISE)
    services.publish_all(tenant.root)
    root = _write(tmp_path, "root.pem", tenant.root.certificate_pem)
    intermediate = _write(tmp_path, "issuing.pem", tenant.issuing.certificate_pem)
    crls = _write(tmp_path, "crls.pem", _pem_crl(tenant.issuing) + _pem_crl(tenant.root))
    leaf_pem = _write(tmp_path, "leaf.pem", leaf.certificate_pem)
    assert openssl("verify", "-crl_check", "-CAfile", root, "-untrusted", intermediate, "-CRLfile", crls,
                   leaf_pem).returncode == 0  # the leaf itself is not revoked
    refused = openssl("verify", "-crl_check_all", "-CAfile", root, "-untrusted", intermediate, "-CRLfile", crls,
                      leaf_pem)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr, refused


# --- CA revocation --------------------------------------------------------------------------------
def test_revoked_intermediate_lands_in_the_parent_crl_and_stops_issuing(tenant):
    response = tenant.client().post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {"reason": "keyCompromise"},
                                    format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "revoked" and response.json()["revocation_reason"] == "keyCompromise"
    services.publish_all(tenant.root)
    root_crl = crl_of(tenant.root)
    assert serials(root_crl) == {tenant.issuing.serial_number}
    assert root_crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value.only_contains_ca_certs
    row = Revocation.objects.get(revoked_ca=tenant.issuing)
    assert row.ca_id == tenant.root.pk and row.current
    assert AuditEvent.objects.get(action="ca.revoked", entity_id=str(tenant.issuing.pk)).severity == "critical"
    from tests.factories import submit
    assert_error(submit(tenant.client(), tenant, cn="after-ca-revocation"), 409, "RESOURCE_CONFLICT")
    assert_error(tenant.client().post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {}, format="json"), 409,
                 "RESOURCE_CONFLICT")
    assert_error(tenant.client().put(f"/api/v1/ca/{tenant.issuing.pk}", {"status": "active"}, format="json"), 409,
                 "RESOURCE_CONFLICT")


def test_ca_revocation_refusals(tenant, other_tenant):
    with unchanged(tenant.root, tenant.issuing):
        assert_error(tenant.client().post(f"/api/v1/ca/{tenant.root.pk}/revoke", {}, format="json"), 409,
                     "RESOURCE_CONFLICT")
        assert_error(tenant.client().post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {"reason": "certificateHold"},
                                          format="json"), 400, "VALIDATION_ERROR", "reason")
        assert_error(tenant.client().post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {"reason": "nope"},
                                          format="json"), 400, "VALIDATION_ERROR", "reason")
        assert_error(other_tenant.client().post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {}, format="json"), 404,
                     "RESOURCE_NOT_FOUND")
    manager, _, client = tenant.user("certificate_manager", username="cm-ca")
    seq = last_seq()
    assert_denied(client.post(f"/api/v1/ca/{tenant.issuing.pk}/revoke", {}, format="json"), "ca:admin", manager, seq)


# --- sharding and expiry ---------------------------------------------------------------------------
def test_sharded_ca_writes_the_shard_into_each_certificate_and_publishes_it(tenant, tmp_path):
    ca = tenant.issuing
    old = Certificate.objects.get(pk=issued(tenant.client(), tenant, cn="before-sharding")["id"])
    assert tenant.client().put(f"/api/v1/ca/{ca.pk}", {"crl_shards": 4}, format="json").status_code == 200
    ca.refresh_from_db()
    certs = [Certificate.objects.get(pk=issued(tenant.client(), tenant, cn=f"s{i}")["id"]) for i in range(12)]
    for cert in certs:
        assert cert.crl_shard == formats.parse_serial(cert.serial_number) % 4
        cdp = formats.load_certificate(cert.certificate_pem).extensions.get_extension_for_oid(
            ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        assert cdp[0].full_name[0].value == f"{ca.public_url}/crl/shard/{cert.crl_shard}"
    assert old.crl_shard is None
    victim, survivor = certs[0], next(c for c in certs if c.crl_shard != certs[0].crl_shard)
    revocation.revoke_certificate(victim, actor=tenant.admin)
    revocation.revoke_certificate(old, actor=tenant.admin)
    published = services.publish_all(ca)
    assert {c.shard for c in published} == {None, 0, 1, 2, 3}
    shard_crl = crl_of(ca, shard=victim.crl_shard)
    assert serials(shard_crl) == {victim.serial_number}
    idp = shard_crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_user_certs and idp.full_name[0].value == f"{ca.public_url}/crl/shard/{victim.crl_shard}"
    assert serials(crl_of(ca)) == {old.serial_number}  # the unsharded CRL keeps covering older certificates
    assert serials(crl_of(ca, shard=survivor.crl_shard)) == set()
    assert crl_of(ca, "delta", shard=victim.crl_shard).extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    # openssl checks a shard certificate against its shard CRL.
    root = _write(tmp_path, "root.pem", tenant.root.certificate_pem)
    services.publish_all(tenant.root)
    shard_pem = fetch(f"/api/v1/ca/{ca.pk}/crl/shard/{victim.crl_shard}?format=pem")[1]
    crls = _write(tmp_path, "crls.pem", shard_pem + _pem_crl(tenant.root))
    result = openssl("verify", "-crl_check_all", "-CAfile", root, "-untrusted",
                     _write(tmp_path, "i.pem", ca.certificate_pem), "-CRLfile", crls,
                     _write(tmp_path, "v.pem", victim.certificate_pem))
    assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr, result
    # Lowering the shard count later keeps publishing every shard certificates point at.
    assert tenant.client().put(f"/api/v1/ca/{ca.pk}", {"crl_shards": 0}, format="json").status_code == 200
    ca.refresh_from_db()
    assert {c.shard for c in services.publish_all(ca)} == {None, 0, 1, 2, 3}


def test_expired_entry_stays_on_one_crl_after_not_after_then_leaves(tenant):
    ca = tenant.issuing
    cert = revoke_one(tenant, "expiring")
    not_after = timezone.now() + timedelta(hours=1)
    Revocation.objects.filter(certificate=cert).update(not_after=not_after)
    services.publish_crl(ca, kind="full")
    later = not_after + timedelta(minutes=5)
    assert cert.serial_number in serials(x509.load_der_x509_crl(
        services.crl_der(services.publish_crl(ca, kind="full", now=later))))  # first CRL after notAfter
    assert cert.serial_number not in serials(x509.load_der_x509_crl(
        services.crl_der(services.publish_crl(ca, kind="full", now=later + timedelta(hours=1)))))
    ca.crl_keep_expired = True
    ca.save(update_fields=["crl_keep_expired"])
    assert cert.serial_number in serials(x509.load_der_x509_crl(
        services.crl_der(services.publish_crl(ca, kind="full", now=later + timedelta(hours=2)))))


# --- triggers and schedule ------------------------------------------------------------------------
def test_a_burst_of_revocations_queues_one_refresh(tenant, monkeypatch):
    from crl import tasks

    queued: list[dict] = []
    monkeypatch.setattr(tasks.refresh_ca_crls, "apply_async", lambda kwargs, countdown: queued.append(kwargs))
    for _ in range(25):
        services.request_refresh(tenant.issuing.pk)
    assert queued == [{"ca_id": str(tenant.issuing.pk)}]
    assert services.refresh_after_revocations(tenant.issuing.pk) == 2  # full + delta of the one scope
    services.request_refresh(tenant.issuing.pk)  # after the run started: queued again
    assert len(queued) == 2


def test_revocation_commit_triggers_a_refresh(tenant, monkeypatch, django_capture_on_commit_callbacks):
    calls: list = []
    monkeypatch.setattr(services, "request_refresh", lambda ca_id: calls.append(ca_id))
    with django_capture_on_commit_callbacks(execute=True):
        revoke_one(tenant, "triggering")
    assert calls == [tenant.issuing.pk]


def test_publish_due_publishes_what_is_due_only(tenant):
    services.publish_all(tenant.issuing)
    services.publish_all(tenant.root)
    now = timezone.now()
    assert services.publish_due(now=now + timedelta(minutes=1)) == 0
    # Past the delta interval (1 h), not the full interval (24 h): deltas only, for both CAs.
    due = services.publish_due(now=now + timedelta(hours=1, minutes=1))
    assert due == 2
    revoke_one(tenant, "lost-trigger")  # a revocation whose trigger was lost is caught up
    assert services.publish_due(now=now + timedelta(hours=1, minutes=2)) == 2  # issuing full + delta
    assert services.publish_due(now=now + timedelta(hours=26)) == 4  # every full and delta


def test_crl_settings_in_one_vocabulary_and_checked(tenant):
    url = f"/api/v1/ca/{tenant.issuing.pk}"
    body = tenant.client().get(url).json()
    for name in ("crl_full_interval_hours", "crl_full_validity_hours", "crl_delta_interval_hours",
                 "crl_delta_validity_hours", "crl_keep_expired", "crl_shards", "ocsp_sign_with_ca_key"):
        assert name in body, name
    assert (body["crl_full_interval_hours"], body["crl_full_validity_hours"], body["crl_delta_interval_hours"],
            body["crl_delta_validity_hours"]) == (24, 168, 1, 24)
    with unchanged(tenant.issuing):
        assert_error(tenant.client().put(url, {"crl_delta_interval_hours": 48}, format="json"), 400,
                     "VALIDATION_ERROR", "crl_delta_interval_hours")
        assert_error(tenant.client().put(url, {"crl_full_validity_hours": 12}, format="json"), 400,
                     "VALIDATION_ERROR", "crl_full_interval_hours")
        assert_error(tenant.client().put(url, {"status": "revoked"}, format="json"), 400, "VALIDATION_ERROR",
                     "status")
    assert tenant.client().put(url, {"crl_full_interval_hours": 12, "crl_full_validity_hours": 48},
                               format="json").status_code == 200
    tenant.issuing.refresh_from_db()
    crl = services.publish_crl(tenant.issuing)
    assert crl.next_update - crl.this_update == timedelta(hours=48)


def test_sharded_ca_creation_publishes_unsharded_at_once_and_shards_via_the_task(tenant, monkeypatch,
                                                                                  django_capture_on_commit_callbacks):
    queued: list = []
    monkeypatch.setattr(services, "request_refresh", lambda ca_id: queued.append(ca_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client().post("/api/v1/ca", {
            "name": "Sharded", "kind": "intermediate", "parent_id": str(tenant.root.pk), "crl_shards": 3,
            "subject": {"common_name": "Sharded CA"}}, format="json")
    assert response.status_code == 201, response.json()
    ca = CertificateAuthority.objects.get(pk=response.json()["id"])
    assert len(crl_of(ca)) == 0 and queued == [ca.pk]
    assert fetch(f"/api/v1/ca/{ca.pk}/crl/shard/0")[0] == 404
    assert services.refresh_after_revocations(ca.pk) == 6  # three shards, full + delta each
    assert crl_of(ca, shard=2) is not None
    assert services.refresh_after_revocations(ca.pk) == 0  # nothing changed since
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant.client().put(f"/api/v1/ca/{ca.pk}", {"crl_shards": 5}, format="json").status_code == 200
    assert queued == [ca.pk, ca.pk]
    assert services.refresh_after_revocations(ca.pk) == 4  # the two new shards
