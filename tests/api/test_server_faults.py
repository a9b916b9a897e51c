"""Issue 6, defect 6: a uniqueness race is a 409, never a 500; a KEK that cannot open a key is a
server fault (503, generic message, logged, health degraded naming the key store), not a client
error; a key in external custody gives a clear error instead of a bare ValueError."""
from __future__ import annotations

import base64
import logging
import os

import pytest
from django.db import IntegrityError
from rest_framework.test import APIClient

from certificates import services
from certificates.keystore import db as keystore_db, health as keystore_health
from certificates.models import CertificateAuthority, StoredKey
from certificates.pki import keys
from tests.factories import assert_error, submit, unchanged


@pytest.fixture(autouse=True)
def _fresh_keystore_state():
    keystore_db._SIGNERS.clear()
    keystore_health.reset()
    yield
    keystore_db._SIGNERS.clear()
    keystore_health.reset()


def ca_body(tenant, name):
    return {"name": name, "project_id": str(tenant.project.pk), "subject": {"common_name": name}}


def test_two_creates_of_one_ca_name_racing_give_409_not_500(tenant, monkeypatch):
    """The name check passes for both; the loser's insert hits the unique constraint. Reproduced
    deterministically: the winner commits between the loser's check and its insert."""
    generate = keys.generate_private_key

    def winner_commits_meanwhile(key_type):
        monkeypatch.setattr(keys, "generate_private_key", generate)
        services.create_ca(services.CASpec(name="Racy", subject={"common_name": "Racy"}), actor=tenant.admin,
                           organization=tenant.org, project=tenant.project)
        return generate(key_type)

    monkeypatch.setattr(keys, "generate_private_key", winner_commits_meanwhile)
    response = tenant.client().post("/api/v1/ca", ca_body(tenant, "Racy"), format="json")
    body = assert_error(response, 409, "DUPLICATE_NAME", "name")
    assert CertificateAuthority.objects.filter(name="Racy").count() == 1
    assert body["details"]["field"] == "name"


def test_a_stray_unique_violation_is_409_through_the_one_handler():
    from mazevault.api.exceptions import exception_handler

    class FakeCause(Exception):
        sqlstate = "23505"

    error = IntegrityError("duplicate key value violates unique constraint")
    error.__cause__ = FakeCause()
    response = exception_handler(error, {})
    assert response.status_code == 409 and response.data["error"] == "RESOURCE_CONFLICT"
    other = exception_handler(IntegrityError("NOT NULL constraint failed: x.y"), {})
    assert other.status_code == 500  # not a race: a bug, answered generically and logged


def test_a_kek_that_opens_no_key_is_a_logged_503_and_health_says_so(tenant, settings, caplog):
    settings.MAZEVAULT_KEK = base64.b64decode(base64.b64encode(os.urandom(32)))
    settings.MAZEVAULT_OLD_KEKS = []
    with caplog.at_level(logging.ERROR), unchanged():
        response = submit(tenant.client(), tenant, cn="needs-signing")
    body = assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert "KEK" not in body["message"] and body["details"] == {}
    assert response["Retry-After"]
    assert any(str(tenant.issuing.key_id) in r.getMessage() for r in caplog.records), caplog.text
    health = APIClient().get("/api/v1/health")
    assert health.status_code == 200  # the process still serves; it cannot sign
    assert health.json()["status"] == "degraded"
    assert health.json()["components"]["keystore"] == {"status": "down", "error": "decrypt_failed"}


def test_health_reports_a_ca_key_sealed_under_an_unconfigured_kek(tenant):
    ok = APIClient().get("/api/v1/health").json()
    assert ok["components"]["keystore"]["status"] == "ok"
    StoredKey.objects.filter(pk=tenant.root.key_id).update(kek_id="deadbeef")
    body = APIClient().get("/api/v1/health").json()
    assert body["status"] == "degraded"
    assert body["components"]["keystore"] == {"status": "down", "error": "ca_key_under_unknown_kek"}


def test_a_key_in_external_custody_is_a_clear_409(tenant):
    StoredKey.objects.filter(pk=tenant.issuing.key_id).update(storage=StoredKey.Storage.EXTERNAL, sealed=None,
                                                               external_ref="kv://vault/ca-key")
    with unchanged():
        response = submit(tenant.client(), tenant, cn="external")
    body = assert_error(response, 409, "RESOURCE_CONFLICT")
    assert body["details"]["reason"] == "key_held_externally"
    from mazevault.errors import Conflict

    with pytest.raises(Conflict):
        keystore_db.load_private_key(StoredKey.objects.get(pk=tenant.issuing.key_id))
