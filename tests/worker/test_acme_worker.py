"""ACME validation by the REAL Celery worker (queue ``acme``): a challenge answered over the API is validated
by the worker process against an http-01 responder this test runs, and the order becomes ready.

The worker runs with the session's settings, so it validates on the default port 80 (RFC 8555 8.3): the
responder binds 127.0.0.1:80 (CI runs as root); the identifier is the IP address 127.0.0.1 (RFC 8738), so no
DNS is involved."""
from __future__ import annotations

import os
import time

import pytest

from acme.jws import key_authorization
from acme.models import Order
from tests.acme.conftest import Http01Responder, make_setup
from tests.conftest import make_tenant

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def port80_responder():
    try:
        responder = Http01Responder(port=80)
    except OSError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot bind 127.0.0.1:80 for the http-01 responder: {exc}")
        pytest.skip(f"cannot bind 127.0.0.1:80 for the http-01 responder: {exc}")
    yield responder
    responder.close()


def test_worker_validates_http01(celery_worker_process, port80_responder, settings):
    setup = make_setup(make_tenant("Acme"))
    client = setup.client()
    assert client.register().status_code == 201
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    assert response.status_code == 201, response.content
    order_path = client.path(response["Location"])
    authz = client.post(client.path(response.json()["authorizations"][0])).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    port80_responder.tokens[challenge["token"]] = key_authorization(challenge["token"], client.signer.jwk)
    assert client.post(client.path(challenge["url"]), {}).json()["status"] == "processing"
    deadline = time.monotonic() + 60
    while Order.objects.get(pk=order_path.rsplit("/", 1)[1]).status != "ready":
        assert time.monotonic() < deadline, "the worker did not validate the challenge within 60 s"
        time.sleep(0.2)
    assert port80_responder.requests == [("127.0.0.1", f"/.well-known/acme-challenge/{challenge['token']}")]
