"""Issue 6, defect 4: an Idempotency-Key replay goes only to the credential that made the request,
and only while it may still see the result; the answer is recorded in the work's own transaction,
so a crash cannot leave a key answering 409 for a day, and a claim whose work never committed
expires (MAZEVAULT_IDEMPOTENCY_LEASE_SECONDS)."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from certificates import services
from certificates.models import Certificate
from mazevault import idempotency
from mazevault.models import IdempotencyRecord, RoleAssignment
from tests.factories import assert_error, csr_body, unchanged

URL = "/api/v1/certificates/csr"


def post(client, body, key):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_another_token_of_the_same_user_gets_no_replay(tenant):
    from mazevault import services as core

    body = csr_body(tenant, cn="idem-principal")
    first = post(tenant.client(), body, "k-principal")
    assert first.status_code == 201
    _, narrow = core.create_token(user=tenant.admin, name="narrow", actor="test", scopes=["certificate:request"])
    with unchanged():
        response = post(tenant.client(narrow), body, "k-principal")
    data = assert_error(response, 409, "RESOURCE_CONFLICT")
    assert data["details"]["reason"] == "idempotency_key_other_credential"
    assert first.json()["serial_number"] not in response.content.decode()


def test_a_caller_who_lost_read_access_gets_no_replay(tenant):
    user, _, client = tenant.user("user", username="leaver")
    body = csr_body(tenant, cn="idem-leaver")
    first = post(client, body, "k-leaver")
    assert first.status_code == 201
    RoleAssignment.objects.filter(user=user).delete()
    with unchanged():
        response = post(client, body, "k-leaver")
    assert_error(response, 404, "RESOURCE_NOT_FOUND")
    assert first.json()["serial_number"] not in response.content.decode()


def test_a_claim_left_by_a_crash_expires_instead_of_blocking_the_key(tenant):
    body = csr_body(tenant, cn="idem-crash")
    # What a process killed mid-request leaves behind: a claim whose work never committed.
    IdempotencyRecord.objects.create(user=tenant.admin, key="k-crash", method="POST", path=URL, request_hash="x",
                                     principal="session", status_code=idempotency.IN_PROGRESS, response_body={},
                                     locked_until=timezone.now() - timedelta(seconds=1))
    response = post(tenant.client(), body, "k-crash")
    assert response.status_code == 201, response.json()
    again = post(tenant.client(), body, "k-crash")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == response.json()["id"]


def test_a_live_claim_still_answers_in_progress(tenant):
    body = csr_body(tenant, cn="idem-live")
    IdempotencyRecord.objects.create(user=tenant.admin, key="k-live", method="POST", path=URL,
                                     request_hash=idempotency._fingerprint(_FakeRequest(body)),
                                     principal="session", status_code=idempotency.IN_PROGRESS, response_body={},
                                     locked_until=timezone.now() + timedelta(seconds=60))
    with unchanged():
        response = post(tenant.client(), body, "k-live")
    assert assert_error(response, 409, "RESOURCE_CONFLICT")["details"]["reason"] == "idempotency_key_in_progress"


class _FakeRequest:
    method = "POST"
    path = URL

    def __init__(self, data):
        self.data = data


def test_the_answer_is_recorded_with_the_work_or_not_at_all(tenant, monkeypatch):
    """A failure after the work but before the answer is stored rolls the work back too: there
    is no committed certificate whose key would answer 409 (or be re-issued by a retry)."""
    def crash(*args, **kwargs):
        raise RuntimeError("process died before recording the answer")

    monkeypatch.setattr(idempotency, "_record_answer", crash)
    body = csr_body(tenant, cn="idem-atomic")
    assert post(tenant.client(), body, "k-atomic").status_code == 500  # the edge's generic answer
    assert not Certificate.objects.filter(common_name="idem-atomic").exists()
    assert not IdempotencyRecord.objects.filter(key="k-atomic").exists()
    monkeypatch.undo()
    assert post(tenant.client(), body, "k-atomic").status_code == 201


def test_work_superseded_after_its_lease_expired_is_rolled_back(tenant, monkeypatch):
    original = services.submit_request

    def slow_then_taken_over(*args, **kwargs):
        cert = original(*args, **kwargs)
        IdempotencyRecord.objects.filter(key="k-slow").delete()  # a retry took the expired claim over
        return cert

    monkeypatch.setattr(services, "submit_request", slow_then_taken_over)
    response = post(tenant.client(), csr_body(tenant, cn="idem-slow"), "k-slow")
    assert assert_error(response, 409, "RESOURCE_CONFLICT")["details"]["reason"] == "idempotency_key_superseded"
    assert not Certificate.objects.filter(common_name="idem-slow").exists()
