"""ACME fixtures: real JWS (josepy-signed, as a client would), a tenant with an EAB credential, a local
http-01 responder and, for DNS names, Debian's pebble-challtestsrv as the validator's DNS server."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import josepy
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.test import Client

from acme import services
from acme.jws import b64encode, thumbprint
from tests.conftest import make_tenant

JOSE = "application/jose+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def public_jwk(key) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return josepy.jwk.JWKEC(key=key.public_key()).to_json()
    return josepy.jwk.JWKRSA(key=key.public_key()).to_json()


@dataclass
class Signer:
    """An account key that signs flattened JWS the way RFC 8555 clients do."""

    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    alg: str = "ES256"

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.jwk)

    def sign(self, url: str, payload: Any, *, nonce: str | None, kid: str | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, str]:
        protected: dict[str, Any] = {"alg": self.alg, "url": url}
        if nonce is not None:
            protected["nonce"] = nonce
        if kid:
            protected["kid"] = kid
        else:
            protected["jwk"] = self.jwk
        protected.update(extra or {})
        protected_b64 = b64encode(json.dumps(protected).encode())
        payload_b64 = "" if payload is None else b64encode(json.dumps(payload).encode())
        signature = josepy.JWASignature.from_json(self.alg).sign(self.key, f"{protected_b64}.{payload_b64}".encode())
        return {"protected": protected_b64, "payload": payload_b64, "signature": b64encode(signature)}


def eab_binding(key_id: str, hmac_b64: str, account_jwk: dict, url: str, alg: str = "HS256") -> dict[str, str]:
    protected = b64encode(json.dumps({"alg": alg, "kid": key_id, "url": url}).encode())
    payload = b64encode(json.dumps(account_jwk).encode())
    mac = josepy.JWASignature.from_json(alg).sign(josepy.b64.b64decode(hmac_b64), f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64encode(mac)}


class AcmeTestClient:
    """Speaks ACME to the Django test client with real signatures."""

    def __init__(self, credential_key_id: str, hmac_key: str, signer: Signer | None = None) -> None:
        self.http = Client()
        self.signer = signer or Signer()
        self.key_id, self.hmac_key = credential_key_id, hmac_key
        self.kid: str | None = None

    @staticmethod
    def url(path: str) -> str:
        return f"{settings.MAZEVAULT_PUBLIC_URL}{path}"

    def nonce(self) -> str:
        return self.http.head("/api/acme/new-nonce")["Replay-Nonce"]

    def post(self, path: str, payload: Any = None, *, nonce: str | None = None, url: str | None = None,
             use_jwk: bool = False, signer: Signer | None = None, raw: dict | None = None):
        signer = signer or self.signer
        body = raw or signer.sign(url or self.url(path), payload, nonce=nonce or self.nonce(),
                                  kid=None if use_jwk else self.kid)
        return self.http.post(path, data=json.dumps(body), content_type=JOSE)

    def register(self, **payload: Any):
        url = self.url("/api/acme/new-account")
        body = {"termsOfServiceAgreed": True, **payload}
        if "externalAccountBinding" not in payload:
            body["externalAccountBinding"] = eab_binding(self.key_id, self.hmac_key, self.signer.jwk, url)
        response = self.post("/api/acme/new-account", body, use_jwk=True)
        if response.status_code in (200, 201):
            self.kid = response["Location"]
        return response

    def path(self, absolute: str) -> str:
        return absolute.removeprefix(settings.MAZEVAULT_PUBLIC_URL)


@dataclass
class AcmeSetup:
    tenant: Any
    credential: Any
    hmac_key: str

    def client(self, signer: Signer | None = None) -> AcmeTestClient:
        return AcmeTestClient(self.credential.key_id, self.hmac_key, signer)


def make_setup(tenant, template: str = "web-server", **spec: Any) -> AcmeSetup:
    credential, hmac_key = services.create_credential(
        services.CredentialSpec(project=tenant.project, default_template=tenant.templates[template], **spec),
        actor=tenant.admin, organization=tenant.org)
    return AcmeSetup(tenant, credential, hmac_key)


@pytest.fixture(autouse=True)
def _eager_tasks(request):
    """In-process ACME tests run their validation tasks eagerly even when CI configures a broker: their rows
    are uncommitted (the worker could not see them). tests/worker/test_acme_worker.py uses the real worker."""
    from mazevault.celery import app

    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def acme(db) -> AcmeSetup:
    return make_setup(make_tenant("Acme"))


# --- an http-01 responder -----------------------------------------------------------------------------
class Http01Responder:
    def __init__(self, port: int = 0) -> None:
        self.tokens: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                responder.requests.append((self.headers.get("Host", ""), self.path))
                token = self.path.rsplit("/", 1)[-1]
                body = responder.tokens.get(token)
                if not self.path.startswith("/.well-known/acme-challenge/") or body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http01(settings):
    responder = Http01Responder()
    settings.MAZEVAULT_ACME_HTTP01_PORT = responder.port
    settings.MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS = 0
    settings.MAZEVAULT_ACME_VALIDATION_ATTEMPTS = 1
    yield responder
    responder.close()


# --- pebble-challtestsrv as DNS ---------------------------------------------------------------------------
@dataclass
class ChallTestSrv:
    dns_port: int
    management: str

    def call(self, path: str, body: dict) -> None:
        request = urllib.request.Request(f"{self.management}/{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def set_txt(self, host: str, value: str) -> None:
        self.call("set-txt", {"host": host.rstrip(".") + ".", "value": value})

    def clear_txt(self, host: str) -> None:
        self.call("clear-txt", {"host": host.rstrip(".") + "."})

    def add_a(self, host: str, addresses: list[str]) -> None:
        self.call("add-a", {"host": host.rstrip(".") + ".", "addresses": addresses})


@pytest.fixture(scope="session")
def challtestsrv():
    """pebble-challtestsrv (Debian's pebble package): a scriptable DNS server answering A 127.0.0.1 for any
    name by default. Missing locally: skipped; missing under CI=true: a failure (.ci/run installs it)."""
    binary = shutil.which("pebble-challtestsrv")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("pebble-challtestsrv is not installed (.ci/run installs Debian's pebble package)")
        pytest.skip("pebble-challtestsrv is not installed (apt-get install pebble)")
    dns_port, management_port = free_port(), free_port()
    proc = subprocess.Popen([binary, "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                             "-tlsalpn01", "", "-management", f"127.0.0.1:{management_port}",
                             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = ChallTestSrv(dns_port, f"http://127.0.0.1:{management_port}")
    deadline = time.monotonic() + 20
    while True:
        try:
            server.clear_txt("probe.test")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("pebble-challtestsrv did not start")
            time.sleep(0.2)
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def dns(challtestsrv, settings):
    settings.MAZEVAULT_ACME_DNS_RESOLVERS = [f"127.0.0.1:{challtestsrv.dns_port}"]
    return challtestsrv
