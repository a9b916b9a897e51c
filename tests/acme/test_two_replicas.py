"""Two gunicorn instances on two ports over one database, behind one public URL (as behind a load balancer):
a nonce from one is accepted once by the other, and an order created on one is validated and finalized on
the other."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.test_schemathesis import database_url  # noqa: F401  (fixture)
from tests.live import free_port

from .conftest import JOSE, Http01Responder, Signer, eab_binding
from .live import LiveAcme, boot, start_gunicorn, stop, wait_healthy
from .test_flow import csr_der

pytestmark = pytest.mark.e2e
PUBLIC = "https://acme.example.test"


def _post(replica: str, path: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"{replica}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": JOSE})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw.startswith(b"{") else {}
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def _nonce(replica: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(f"{replica}/api/acme/new-nonce", method="HEAD")) as response:
        return response.headers["Replay-Nonce"]


def test_two_replicas_behave_as_one(tmp_path, database_url, challtestsrv):  # noqa: F811
    responder = Http01Responder()
    first, proc_a = boot(tmp_path, database_url, MAZEVAULT_PUBLIC_URL=PUBLIC,
                         MAZEVAULT_ACME_HTTP01_PORT=str(responder.port),
                         MAZEVAULT_ACME_DNS_RESOLVERS=f"127.0.0.1:{challtestsrv.dns_port}")
    port_b = free_port()
    log_b = tmp_path / "gunicorn-b.log"
    proc_b = start_gunicorn({**first.env, "PORT": str(port_b)}, port_b, log_b)
    second = LiveAcme(url=f"http://127.0.0.1:{port_b}", env=first.env, demo=first.demo, log=log_b)
    try:
        wait_healthy(proc_b, second.url, log_b)
        credential = first.credential()
        signer = Signer()
        url = f"{PUBLIC}/api/acme/new-account"
        # A nonce issued by replica A is accepted by replica B, once.
        nonce = _nonce(first.url)
        body = signer.sign(url, {"termsOfServiceAgreed": True, "externalAccountBinding": eab_binding(
            credential["eab_key_id"], credential["eab_hmac_key"], signer.jwk, url)}, nonce=nonce)
        status, headers, _ = _post(second.url, "/api/acme/new-account", body)
        assert status == 201, headers
        kid = headers["Location"]
        assert kid.startswith(f"{PUBLIC}/api/acme/acct/")
        status, _, problem = _post(first.url, "/api/acme/new-account", body)
        assert (status, problem["type"]) == (400, "urn:ietf:params:acme:error:badNonce")

        def call(replica: LiveAcme, absolute: str, payload) -> tuple[int, dict, dict]:
            path = absolute.removeprefix(PUBLIC)
            return _post(replica.url, path, signer.sign(absolute, payload, nonce=_nonce(replica.url), kid=kid))

        names = ["r1.acme.internal", "r2.acme.internal"]
        status, headers, order = call(first, f"{PUBLIC}/api/acme/new-order",
                                      {"identifiers": [{"type": "dns", "value": n} for n in names]})
        assert status == 201, order
        from acme.jws import key_authorization
        for index, authz_url in enumerate(order["authorizations"]):
            replica = (first, second)[index % 2]
            _, _, authz = call(replica, authz_url, None)
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            responder.tokens[challenge["token"]] = key_authorization(challenge["token"], signer.jwk)
            status, _, result = call(replica, challenge["url"], {})
            assert status == 200, result
        status, _, order = call(second, headers["Location"], None)
        assert order["status"] == "ready", order
        status, _, order = call(second, order["finalize"], {"csr": csr_der(names)})
        assert status == 200 and order["status"] == "valid", order
        request = urllib.request.Request(second.url + order["certificate"].removeprefix(PUBLIC), method="POST",
                                         headers={"Content-Type": JOSE}, data=json.dumps(signer.sign(
                                             order["certificate"], None, nonce=_nonce(first.url), kid=kid)).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Type"] == "application/pem-certificate-chain"
            assert response.read().count(b"BEGIN CERTIFICATE") == 3
    finally:
        stop(proc_b)
        stop(proc_a)
        responder.close()
