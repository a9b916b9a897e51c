"""RFC 8555 section 6 checks at the edge: content type, flattened JWS, algorithms, signatures, nonces, url,
kid vs jwk, account status; problem documents (never the REST envelope); the directory and new-nonce."""
from __future__ import annotations

import json
import threading

import josepy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.db import connection
from django.test import Client

from acme import services
from acme.jws import b64encode
from acme.models import Account, Nonce

from .conftest import JOSE, Signer, eab_binding, make_setup

pytestmark = pytest.mark.django_db
NS = "urn:ietf:params:acme:error:"


def problem(response, status: int, type_: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == NS + type_ and body["status"] == status and body["detail"], body
    return body


def test_directory_is_absolute_and_lists_profiles(acme, settings):
    body = Client().get("/api/acme/directory").json()
    base = f"{settings.MAZEVAULT_PUBLIC_URL}/api/acme/"
    for name, path in (("newNonce", "new-nonce"), ("newAccount", "new-account"), ("newOrder", "new-order"),
                       ("revokeCert", "revoke-cert"), ("keyChange", "key-change"), ("renewalInfo", "renewal-info")):
        assert body[name] == base + path
    assert body["meta"]["externalAccountRequired"] is True
    assert set(body["meta"]["profiles"]) == {"web-server", "client-auth"}
    assert body["meta"]["profiles"]["web-server"]["description"].startswith("Template: web-server")


def test_new_nonce_head_get_post(acme):
    client = Client()
    head, get, post = client.head("/api/acme/new-nonce"), client.get("/api/acme/new-nonce"), client.post("/api/acme/new-nonce")
    assert (head.status_code, get.status_code, post.status_code) == (200, 204, 204)
    nonces = {r["Replay-Nonce"] for r in (head, get, post)}
    assert len(nonces) == 3 and all(r["Cache-Control"] == "no-store" for r in (head, get))
    assert 'rel="index"' in head["Link"]
    assert Nonce.objects.filter(value__in=nonces).count() == 3


def test_wrong_method_unknown_path_content_type_and_garbage(acme):
    client = acme.client()
    problem(client.http.get("/api/acme/new-account"), 405, "malformed")
    problem(client.http.post("/api/acme/nothing-here", data="{}", content_type=JOSE), 404, "malformed")
    problem(client.http.post("/api/acme/new-order", data="{}", content_type="application/json"), 415, "malformed")
    problem(client.http.post("/api/acme/new-order", data="not json", content_type=JOSE), 400, "malformed")
    problem(client.http.post("/api/acme/new-order", data=json.dumps({"signatures": []}), content_type=JOSE), 400,
            "malformed")
    problem(client.http.post("/api/acme/new-order", data=json.dumps({"protected": "!!", "payload": "",
                                                                     "signature": ""}), content_type=JOSE),
            400, "malformed")


def test_nonce_is_single_use_and_a_bad_nonce_comes_with_a_fresh_one(acme):
    client = acme.client()
    assert client.register().status_code == 201
    nonce = client.nonce()
    assert client.post(f"/api/acme/acct/{Account.objects.get().pk}", nonce=nonce).status_code == 200
    body = problem(replay := client.post(f"/api/acme/acct/{Account.objects.get().pk}", nonce=nonce), 400, "badNonce")
    assert replay["Replay-Nonce"] and replay["Replay-Nonce"] != nonce and body
    problem(client.post("/api/acme/new-order", {"identifiers": []}, nonce="never-issued"), 400, "badNonce")


def test_url_must_be_the_public_url_of_the_request(acme, settings):
    client = acme.client()
    client.register()
    problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "a.acme.internal"}]},
                        url="http://127.0.0.1:1234/api/acme/new-order"), 403, "unauthorized")
    # Behind a load balancer: the public URL counts, not the host this process was reached on.
    response = client.http.post("/api/acme/new-order", data=json.dumps(client.signer.sign(
        f"{settings.MAZEVAULT_PUBLIC_URL}/api/acme/new-order",
        {"identifiers": [{"type": "dns", "value": "a.acme.internal"}]}, nonce=client.nonce(), kid=client.kid)),
        content_type=JOSE, HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 201, response.content


def test_algorithms_and_signatures(acme):
    client = acme.client()
    client.register()
    url = client.url("/api/acme/new-order")
    signed = client.signer.sign(url, {"identifiers": []}, nonce=client.nonce(), kid=client.kid)
    header = json.loads(josepy.b64.b64decode(signed["protected"]))
    for alg, type_ in (("none", "badSignatureAlgorithm"), ("HS256", "badSignatureAlgorithm"),
                       ("RS256", "badSignatureAlgorithm"), ("XX1", "badSignatureAlgorithm")):
        forged = dict(signed, protected=b64encode(json.dumps({**header, "alg": alg, "nonce": client.nonce()}).encode()))
        problem(client.post("/api/acme/new-order", raw=forged), 400, type_)
    tampered = dict(signed, payload=b64encode(b'{"identifiers": [{"type": "dns", "value": "evil.acme.internal"}]}'))
    problem(client.post("/api/acme/new-order", raw=tampered), 400, "malformed")


def test_kid_and_jwk_rules(acme):
    client = acme.client()
    problem(client.post("/api/acme/new-order", {"identifiers": []}, use_jwk=True), 400, "malformed")
    client.kid = f"{client.url('/api/acme/acct/')}00000000-0000-0000-0000-000000000000"
    problem(client.post("/api/acme/new-order", {"identifiers": []}), 400, "accountDoesNotExist")
    client.kid = None
    client.register()
    # new-account must be signed with the bare key.
    problem(client.post("/api/acme/new-account", {}), 400, "malformed")


@pytest.mark.parametrize("key, alg", [(rsa.generate_private_key(65537, 2048), "RS256"),
                                      (ec.generate_private_key(ec.SECP384R1()), "ES384")])
def test_rsa_and_p384_account_keys(acme, key, alg):
    client = acme.client(Signer(key=key, alg=alg))
    assert client.register().status_code == 201
    assert client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "x.acme.internal"}]}
                       ).status_code == 201


def test_ed25519_account_key(acme):
    """EdDSA (RFC 8037) is verified here (josepy has no OKP keys), so clients with Ed25519 keys work too."""
    key = ed25519.Ed25519PrivateKey.generate()
    x = b64encode(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}
    client = acme.client()
    url = client.url("/api/acme/new-account")

    def sign(url, payload, nonce, kid=None):
        protected = {"alg": "EdDSA", "url": url, "nonce": nonce, **({"kid": kid} if kid else {"jwk": jwk})}
        p = b64encode(json.dumps(protected).encode())
        body = "" if payload is None else b64encode(json.dumps(payload).encode())
        return {"protected": p, "payload": body, "signature": b64encode(key.sign(f"{p}.{body}".encode()))}

    body = {"externalAccountBinding": eab_binding(acme.credential.key_id, acme.hmac_key, jwk, url)}
    response = client.post("/api/acme/new-account", raw=sign(url, body, client.nonce()))
    assert response.status_code == 201, response.content
    kid = response["Location"]
    response = client.post("/api/acme/new-order", raw=sign(client.url("/api/acme/new-order"),
                           {"identifiers": [{"type": "dns", "value": "ed.acme.internal"}]}, client.nonce(), kid))
    assert response.status_code == 201, response.content


def test_account_lookup_contact_and_eab_rules(acme):
    client = acme.client()
    problem(client.register(onlyReturnExisting=True), 400, "accountDoesNotExist")
    problem(client.post("/api/acme/new-account", {"termsOfServiceAgreed": True}, use_jwk=True), 400,
            "externalAccountRequired")
    problem(client.register(contact=["tel:+1555"]), 400, "unsupportedContact")
    problem(client.register(contact=["mailto:a@b.c,d@e.f"]), 400, "invalidContact")
    url = client.url("/api/acme/new-account")
    wrong_url = eab_binding(acme.credential.key_id, acme.hmac_key, client.signer.jwk, url + "x")
    problem(client.register(externalAccountBinding=wrong_url), 403, "unauthorized")
    other_key = eab_binding(acme.credential.key_id, acme.hmac_key, Signer().jwk, url)
    problem(client.register(externalAccountBinding=other_key), 400, "malformed")
    unknown = eab_binding("no-such-kid", acme.hmac_key, client.signer.jwk, url)
    problem(client.register(externalAccountBinding=unknown), 403, "unauthorized")
    assert not Account.objects.exists()
    assert client.register().status_code == 201
    again = client.register()  # the same key: its account, 200 + Location (RFC 8555 7.3.1)
    assert again.status_code == 200 and again["Location"] == client.kid
    assert client.register(onlyReturnExisting=True).status_code == 200
    assert Account.objects.count() == 1


def test_single_use_credential(db):
    from tests.conftest import make_tenant
    setup = make_setup(make_tenant("Solo"), max_accounts=1)
    assert setup.client().register().status_code == 201
    problem(setup.client().register(), 403, "unauthorized")


def test_revoked_credential_stops_new_orders(acme):
    client = acme.client()
    client.register()
    services.revoke_credential(acme.credential, actor=acme.tenant.admin)
    problem(client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "a.acme.internal"}]}),
            403, "unauthorized")


def test_deactivated_account_is_refused(acme):
    client = acme.client()
    client.register()
    account = Account.objects.get()
    response = client.post(f"/api/acme/acct/{account.pk}", {"status": "deactivated"})
    assert response.status_code == 200 and response.json()["status"] == "deactivated"
    problem(client.post(f"/api/acme/acct/{account.pk}"), 403, "unauthorized")


@pytest.mark.django_db(transaction=True)
def test_a_nonce_is_accepted_once_under_concurrency(acme):
    """Eight threads present the same nonce at once: exactly one DELETE removes it (PostgreSQL row lock;
    SQLite serialises writers)."""
    nonce = services.new_nonce()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(services.consume_nonce(nonce))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_hot_endpoints_statement_counts(acme, django_assert_max_num_queries):
    client = acme.client()
    client.register()
    order = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": "q.acme.internal"}]})
    path = client.path(order["Location"])
    nonce = client.nonce()
    with django_assert_max_num_queries(1):
        Client().head("/api/acme/new-nonce")
    # nonce consume, account, order, its authorizations, next nonce
    with django_assert_max_num_queries(5):
        assert client.post(path, nonce=nonce).status_code == 200
