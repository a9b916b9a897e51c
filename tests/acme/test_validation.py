"""Challenge validation for real: dns-01 against pebble-challtestsrv, tls-alpn-01 against a TLS server started
here, http-01 failures (wrong body, 404), wildcards through dns-01 only, and the SSRF guard."""
from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme import validation
from acme.jws import key_authorization
from acme.models import Authorization, Challenge

pytestmark = pytest.mark.django_db


def _order(client, *names: str) -> dict:
    response = client.post("/api/acme/new-order", {"identifiers": [{"type": "dns", "value": n} for n in names]})
    assert response.status_code == 201, response.content
    return response.json()


def _challenge(client, order: dict, type_: str) -> dict:
    authz = client.post(client.path(order["authorizations"][0])).json()
    return next(c for c in authz["challenges"] if c["type"] == type_)


def _answer(client, challenge: dict, capture) -> dict:
    with capture(execute=True):
        response = client.post(client.path(challenge["url"]), {})
    assert response.status_code == 200, response.content
    return client.post(client.path(challenge["url"])).json()


def test_dns01_against_challtestsrv(acme, dns, django_capture_on_commit_callbacks, settings):
    settings.MAZEVAULT_ACME_VALIDATION_ATTEMPTS = 1
    client = acme.client()
    client.register()
    order = _order(client, "dns.acme.internal")
    challenge = _challenge(client, order, "dns-01")
    dns.set_txt("_acme-challenge.dns.acme.internal",
                validation.dns01_digest(key_authorization(challenge["token"], client.signer.jwk)))
    try:
        assert _answer(client, challenge, django_capture_on_commit_callbacks)["status"] == "valid"
    finally:
        dns.clear_txt("_acme-challenge.dns.acme.internal")
    assert client.post(client.path(order["authorizations"][0])).json()["status"] == "valid"


def test_dns01_wrong_record_is_invalid_with_a_problem(acme, dns, django_capture_on_commit_callbacks, settings):
    settings.MAZEVAULT_ACME_VALIDATION_ATTEMPTS = 2
    settings.MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS = 0
    client = acme.client()
    client.register()
    order = _order(client, "bad.acme.internal")
    challenge = _challenge(client, order, "dns-01")
    dns.set_txt("_acme-challenge.bad.acme.internal", "not-the-digest")
    try:
        body = _answer(client, challenge, django_capture_on_commit_callbacks)
    finally:
        dns.clear_txt("_acme-challenge.bad.acme.internal")
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert client.post(client.path(order["authorizations"][0])).json()["status"] == "invalid"
    order_now = client.post(client.path(order["finalize"]).replace("finalize", "order")).json()
    assert order_now["status"] == "invalid" and order_now["error"]


def test_wildcards_offer_dns01_only(acme, dns):
    client = acme.client()
    client.register()
    order = _order(client, "*.wild.acme.internal")
    authz = client.post(client.path(order["authorizations"][0])).json()
    assert authz["wildcard"] is True and authz["identifier"]["value"] == "wild.acme.internal"
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]


def test_http01_wrong_body_and_missing_token(acme, http01, dns, django_capture_on_commit_callbacks):
    client = acme.client()
    client.register()
    order = _order(client, "h1.acme.internal", "h2.acme.internal")
    first = client.post(client.path(order["authorizations"][0])).json()
    challenge = next(c for c in first["challenges"] if c["type"] == "http-01")
    http01.tokens[challenge["token"]] = "wrong"
    body = _answer(client, challenge, django_capture_on_commit_callbacks)
    assert body["status"] == "invalid" and body["error"]["type"].endswith(":incorrectResponse")
    second = client.post(client.path(order["authorizations"][1])).json()
    challenge = next(c for c in second["challenges"] if c["type"] == "http-01")
    body = _answer(client, challenge, django_capture_on_commit_callbacks)  # no token served: 404
    assert body["status"] == "invalid" and body["error"]["type"].endswith(":unauthorized")


def test_ssrf_guard_refuses_addresses_outside_the_allowed_networks(acme, http01, dns,
                                                                   django_capture_on_commit_callbacks, settings):
    settings.MAZEVAULT_ACME_VALIDATION_NETWORKS = ["10.0.0.0/8"]
    client = acme.client()
    client.register()
    order = _order(client, "ssrf.acme.internal")
    challenge = _challenge(client, order, "http-01")
    http01.tokens[challenge["token"]] = key_authorization(challenge["token"], client.signer.jwk)
    body = _answer(client, challenge, django_capture_on_commit_callbacks)
    assert body["status"] == "invalid" and body["error"]["type"].endswith(":connection")
    assert http01.requests == []  # never connected


def test_default_guard_blocks_link_local_and_metadata():
    assert not validation.allowed("169.254.169.254", [])
    assert not validation.allowed("fe80::1", [])
    assert not validation.allowed("fd00:ec2::254", [])
    assert validation.allowed("127.0.0.1", []) and validation.allowed("10.1.2.3", [])
    assert validation.allowed("10.1.2.3", ["10.0.0.0/8"]) and not validation.allowed("192.168.1.1", ["10.0.0.0/8"])


# --- tls-alpn-01 (RFC 8737) -------------------------------------------------------------------------------
def _alpn_certificate(name: str, key_authz: str, *, critical: bool = True):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(validation.ACME_IDENTIFIER_OID,
                                                      b"\x04\x20" + hashlib.sha256(key_authz.encode()).digest()),
                           critical=critical)
            .sign(key, hashes.SHA256()))
    return cert, key


class AlpnServer:
    def __init__(self, tmp_path, cert, key) -> None:
        (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
        self.context.set_alpn_protocols(["acme-tls/1"])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("critical, expected", [(True, "valid"), (False, "invalid")])
def test_tls_alpn01(acme, dns, django_capture_on_commit_callbacks, settings, tmp_path, critical, expected):
    settings.MAZEVAULT_ACME_VALIDATION_ATTEMPTS = 1
    client = acme.client()
    client.register()
    order = _order(client, "tls.acme.internal")
    challenge = _challenge(client, order, "tls-alpn-01")
    cert, key = _alpn_certificate("tls.acme.internal", key_authorization(challenge["token"], client.signer.jwk),
                                  critical=critical)
    server = AlpnServer(tmp_path, cert, key)
    settings.MAZEVAULT_ACME_TLSALPN01_PORT = server.port
    try:
        body = _answer(client, challenge, django_capture_on_commit_callbacks)
    finally:
        server.close()
    assert body["status"] == expected, body
    assert Authorization.objects.get().status == expected
    assert Challenge.objects.get(pk=challenge["url"].rsplit("/", 1)[1]).status == expected


def _caa(srv, host: str, policies: list[dict]) -> None:
    srv.call("add-caa", {"host": host.rstrip(".") + ".", "policies": policies})


def _clear_caa(srv, host: str) -> None:
    srv.call("clear-caa", {"host": host.rstrip(".") + "."})


@pytest.mark.parametrize("policies, expected", [
    ([{"tag": "issue", "value": "vault.example.com"}], "valid"),
    ([{"tag": "issue", "value": "letsencrypt.org"}], "invalid"),
    ([{"tag": "issue", "value": ";"}], "invalid"),
])
def test_caa_is_checked_on_the_closest_records(acme, http01, dns, django_capture_on_commit_callbacks, settings,
                                               policies, expected):
    settings.MAZEVAULT_ACME_CAA_IDENTITIES = ["vault.example.com"]
    client = acme.client()
    client.register()
    order = _order(client, "host.caa.acme.internal")
    challenge = _challenge(client, order, "http-01")
    http01.tokens[challenge["token"]] = key_authorization(challenge["token"], client.signer.jwk)
    _caa(dns, "caa.acme.internal", policies)  # on the parent: the relevant RRset climbs the tree
    try:
        body = _answer(client, challenge, django_capture_on_commit_callbacks)
    finally:
        _clear_caa(dns, "caa.acme.internal")
    assert body["status"] == expected, body
    if expected == "invalid":
        assert body["error"]["type"] == "urn:ietf:params:acme:error:caa"
