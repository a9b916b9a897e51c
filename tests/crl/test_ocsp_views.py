"""The OCSP HTTP endpoints: POST and GET forms on /api/v1/ocsp and /api/v1/ca/<id>/ocsp, base64 with
``/``, ``+`` and ``=`` (raw and URL-encoded), caching headers, malformed input, the rate limit, a
database outage and unexpected errors - every answer an application/ocsp-response, never a 500."""
from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from django.db import OperationalError
from django.test import Client

from crl import ocsp as service
from crl.models import OCSPCachedResponse

from .conftest import b64, issue, parse, post, request_der, revoke

pytestmark = pytest.mark.django_db

MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.fixture(autouse=True)
def _no_ocsp_limit(settings):
    settings.MAZEVAULT_RATE_LIMIT_OCSP = ""


@pytest.fixture
def client() -> Client:
    return Client()


def _awkward_request(cert) -> tuple[bytes, str]:
    """A request whose base64 contains '/', '+' and '=' (found by trying nonces)."""
    for attempt in range(5000):
        der = request_der(cert, nonce=os.urandom(16 + attempt % 3))
        text = b64(der)
        if "/" in text and "+" in text and text.endswith("="):
            return der, text
    raise AssertionError("no awkward base64 found")


@pytest.mark.parametrize("path", ["/api/v1/ocsp", "ca"])
def test_post_good(tenant, client, path):
    cert = issue(tenant)
    url = f"/api/v1/ca/{tenant.issuing.pk}/ocsp" if path == "ca" else path
    response = post(client, request_der(cert), url)
    assert response.status_code == 200
    assert parse(response).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response["Cache-Control"] == "no-store"  # POST answers are not for shared caches


def test_any_ca_url_serves_any_of_our_cas(tenant, client):
    """The CA is found by CertID: the root's URL (or an unknown id) answers for the issuing CA's leaf."""
    cert = issue(tenant)
    for url in (f"/api/v1/ca/{tenant.root.pk}/ocsp", f"/api/v1/ca/{uuid.uuid4()}/ocsp"):
        assert parse(post(client, request_der(cert), url)).certificate_status == ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("encoding", ["raw", "urlencoded", "double", "urlsafe-unpadded"])
@pytest.mark.parametrize("prefix", ["/api/v1/ocsp", "ca"])
def test_get_with_slash_plus_and_equals(tenant, client, encoding, prefix):
    cert = issue(tenant)
    der, text = _awkward_request(cert)
    encoded = {
        "raw": text,
        "urlencoded": quote(text, safe=""),
        "double": quote(quote(text, safe=""), safe=""),
        "urlsafe-unpadded": text.replace("+", "-").replace("/", "_").rstrip("="),
    }[encoding]
    base = f"/api/v1/ca/{tenant.issuing.pk}/ocsp" if prefix == "ca" else prefix
    response = client.get(f"{base}/{encoded}")
    assert response.status_code == 200
    parsed = parse(response)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    nonce = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert response["Cache-Control"] == "no-store"  # a nonce makes the answer single-use


def test_get_without_nonce_is_cacheable_per_rfc5019(tenant, client):
    cert = issue(tenant)
    url = f"/api/v1/ocsp/{quote(b64(request_der(cert, nonce=None)), safe='')}"
    first = client.get(url)
    parsed = parse(first)
    cache_control = first["Cache-Control"]
    assert cache_control.startswith("max-age=") and "public" in cache_control
    max_age = int(cache_control.split(",")[0].split("=")[1])
    # Never beyond nextUpdate (RFC 5019 6.2), and here: never beyond our own reuse of it.
    reuse = (parsed.next_update_utc - parsed.this_update_utc) / service.REUSE_FRACTION
    assert 0 < max_age <= reuse.total_seconds()
    assert first["ETag"] and first["Last-Modified"] and first["Expires"]
    second = client.get(url)
    assert second.content == first.content  # served from the pre-signed copy


def test_cache_follows_revocation_through_http(tenant, client):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    assert parse(post(client, der)).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert parse(post(client, der)).certificate_status == ocsp.OCSPCertStatus.GOOD
    revoke(cert, actor=tenant.admin)
    assert parse(post(client, der)).certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_unknown_serial_is_unknown(tenant, client):
    from cryptography.hazmat.primitives import hashes, serialization

    from certificates.pki.ocsp import issuer_hashes

    issuer = x509.load_pem_x509_certificate(tenant.issuing.certificate_pem.encode())
    name_hash, key_hash = issuer_hashes(issuer, "sha256")
    der = (ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, 123456789, hashes.SHA256())
           .build().public_bytes(serialization.Encoding.DER))
    assert parse(post(client, der)).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_unknown_ca_is_unauthorized(tenant, client):
    from tests.crl.test_ocsp_pki import _raw_request

    der = _raw_request([("sha1", b"\x01" * 20, b"\x02" * 20, 42)])
    assert parse(post(client, der)).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_malformed_posts(tenant, client):
    cert = issue(tenant)
    good = request_der(cert)
    from tests.crl.test_ocsp_pki import _raw_request

    cases = {
        "empty": (b"", "application/ocsp-request"),
        "truncated": (good[:-5], "application/ocsp-request"),
        "garbage": (os.urandom(80), "application/ocsp-request"),
        "text": (b"hello", "application/ocsp-request"),
        "wrong content type": (good, "application/json"),
        "no content type": (good, ""),
        "oversized": (b"\x30" * (64 * 1024), "application/ocsp-request"),
        "md5 certid": (_raw_request([("md5", b"\x01" * 16, b"\x02" * 16, 7)]), "application/ocsp-request"),
    }
    before = OCSPCachedResponse.objects.count()
    for name, (body, content_type) in cases.items():
        response = post(client, body, content_type=content_type)
        assert response.status_code == 200, name
        assert parse(response).response_status == MALFORMED, name
    assert OCSPCachedResponse.objects.count() == before


@pytest.mark.parametrize("path", ["/api/v1/ocsp/", "/api/v1/ocsp/%%%", "/api/v1/ocsp/not*base64",
                                  "/api/v1/ocsp/AAAA", "/api/v1/ocsp/" + "A" * 20000, "/api/v1/ocsp"])
def test_malformed_gets(tenant, client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert parse(response).response_status == MALFORMED


def test_other_methods_are_405(client):
    response = client.put("/api/v1/ocsp", b"x", content_type="application/ocsp-request")
    assert response.status_code == 405 and response["Allow"] == "GET, POST"
    assert parse_any(response).response_status == MALFORMED


def parse_any(response) -> ocsp.OCSPResponse:
    assert response["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


def test_no_authentication_needed_and_csrf_exempt(tenant):
    cert = issue(tenant)
    client = Client(enforce_csrf_checks=True)
    assert parse(post(client, request_der(cert))).certificate_status == ocsp.OCSPCertStatus.GOOD


# --- the rate limit -------------------------------------------------------------------------------------
def test_rate_limit_per_client_gives_429_try_later(tenant, client, settings):
    settings.MAZEVAULT_RATE_LIMIT_OCSP = "2/min"
    der = request_der(issue(tenant), nonce=None)
    for remaining in ("1", "0"):
        response = post(client, der)
        assert parse(response).certificate_status == ocsp.OCSPCertStatus.GOOD
        assert response["X-RateLimit-Limit"] == "2" and response["X-RateLimit-Remaining"] == remaining
    refused = post(client, der)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert parse(refused).response_status == ocsp.OCSPResponseStatus.TRY_LATER
    # Another client address has its own window.
    other = client.generic("POST", "/api/v1/ocsp", der, content_type="application/ocsp-request",
                           REMOTE_ADDR="10.9.8.7")
    assert parse(other).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_empty_limit_setting_switches_it_off(tenant, client, settings):
    settings.MAZEVAULT_RATE_LIMIT_OCSP = ""
    der = request_der(issue(tenant), nonce=None)
    responses = [post(client, der) for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert "X-RateLimit-Limit" not in responses[-1]


# --- failures --------------------------------------------------------------------------------------------
def test_database_outage_is_try_later(tenant, client, monkeypatch):
    der = request_der(issue(tenant))

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(service, "respond", down)
    response = post(client, der)
    assert response.status_code == 503 and response["Retry-After"]
    assert parse(response).response_status == ocsp.OCSPResponseStatus.TRY_LATER


def test_unexpected_error_is_internal_error_not_500(tenant, client, monkeypatch):
    der = request_der(issue(tenant))

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(service, "respond", broken)
    response = post(client, der)
    assert response.status_code == 200
    assert parse(response).response_status == ocsp.OCSPResponseStatus.INTERNAL_ERROR


def test_view_statement_counts(tenant, client, django_assert_num_queries):
    """The HTTP hot path adds no statement to the service's (limit off; see docs/ocsp.md)."""
    cert = issue(tenant)
    nonce_less = request_der(cert, nonce=None)
    post(client, request_der(cert))
    post(client, nonce_less)
    with django_assert_num_queries(1):
        post(client, nonce_less)
    with django_assert_num_queries(1):
        post(client, request_der(cert))


# --- the WSGI fast path (mazevault/wsgi.py: OCSP skips the middleware) ---------------------------------
@pytest.fixture
def wsgi_app():
    """The deployed WSGI callable, with the per-request connection recycling off as Django's test client
    does (it would close the test transaction's connection)."""
    from django.core import signals
    from django.db import close_old_connections

    from mazevault.wsgi import application

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield application
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _wsgi(app, method: str, path: str, body: bytes = b"", content_type: str = "") -> tuple[str, dict, bytes]:
    import io

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "ocsp.test", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": content_type, "REMOTE_ADDR": "192.0.2.1", "HTTP_HOST": "ocsp.test"}
    seen: dict = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return seen["status"], seen["headers"], data


def test_wsgi_fast_path_serves_ocsp_without_middleware(tenant, wsgi_app):
    cert = issue(tenant)
    der = request_der(cert, nonce=None)
    status, headers, body = _wsgi(wsgi_app, "POST", "/api/v1/ocsp", der, "application/ocsp-request")
    assert status == "200 OK" and headers["Content-Type"] == "application/ocsp-response"
    assert headers["Content-Length"] == str(len(body))
    assert "X-Request-ID" not in headers  # the middleware did not run
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
    cached = body
    _, text = _awkward_request(cert)
    status, headers, body = _wsgi(wsgi_app, "GET", f"/api/v1/ca/{tenant.issuing.pk}/ocsp/{text}")
    assert status == "200 OK" and ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD
    status, _, body = _wsgi(wsgi_app, "POST", "/api/v1/ocsp", b"junk", "application/ocsp-request")
    assert ocsp.load_der_ocsp_response(body).response_status == MALFORMED
    # The same bytes as through the full Django stack (the pre-signed copy): one view, two doors.
    # (Last: the test client reconnects the connection-recycling receivers when it finishes.)
    assert post(Client(), der).content == cached


def test_wsgi_other_paths_go_through_django(tenant, wsgi_app):
    status, headers, _ = _wsgi(wsgi_app, "GET", "/api/v1/health")
    assert status.startswith(("200", "503")) and "X-Request-ID" in headers
    status, headers, _ = _wsgi(wsgi_app, "GET", "/api/v1/ocspx")
    assert status.startswith("404") and "X-Request-ID" in headers


def test_rate_strings():
    from crl.ocsp_ratelimit import parse_rate

    assert parse_rate("1000/min") == (1000, 60)
    assert parse_rate("5/s") == (5, 1)
    assert parse_rate("2/hour") == (2, 3600)
    assert parse_rate("") is None and parse_rate(None) is None
    with pytest.raises(ValueError):
        parse_rate("lots/min")
