"""``openssl ocsp`` against a live gunicorn server: good, revoked after a revocation, good again after
hold -> unrevoke; with a nonce (freshly signed) and with ``-no_nonce`` (the pre-signed cache); over POST
(openssl's own transport) and over GET (``openssl ocsp -reqout`` + an HTTP GET of its base64).

The live server, its throwaway database and the demo tenant come from the schemathesis e2e fixtures.
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.test_schemathesis import LiveServer, database_url, gunicorn_server  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")]


def _csr(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _issue(server: LiveServer, tmp: Path) -> tuple[str, dict[str, Path]]:
    demo = server.demo
    code, body = server.call("POST", "/api/v1/certificates/csr", demo["token"], {
        "project_id": demo["project_id"], "template_id": demo["template_ids"]["client-auth"],
        "csr_source_mode": "uploaded_csr", "csr_pem": _csr("ocsp-e2e.example.com")})
    assert code == 201 and body["status"] == "active", body
    code, full = server.call("GET", f"/api/v1/certificates/{body['id']}", demo["token"])
    assert code == 200, full
    chain = x509.load_pem_x509_certificates(full["chain_pem"].encode())  # issuing CA first, root last
    files = {"leaf": tmp / "leaf.pem", "issuer": tmp / "issuer.pem", "chain": tmp / "chain.pem"}
    files["leaf"].write_text(full["certificate_pem"])
    files["issuer"].write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    files["chain"].write_text(full["chain_pem"])
    return body["id"], files


def _openssl_ocsp(files: dict[str, Path], url: str, *extra: str) -> str:
    run = subprocess.run(["openssl", "ocsp", "-issuer", str(files["issuer"]), "-cert", str(files["leaf"]),
                          "-CAfile", str(files["chain"]), "-url", url, *extra],
                         capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Response verify OK" in output, output
    return output


def _status(output: str, leaf: Path) -> str:
    for line in output.splitlines():
        if line.startswith(f"{leaf}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(output)


def _get_form(server: LiveServer, files: dict[str, Path], tmp: Path, prefix: str) -> str:
    """RFC 6960 A.1 GET: openssl writes the request, we GET its URL-encoded base64, openssl checks
    the answer (signature, CertID, status)."""
    request_file, response_file = tmp / "req.der", tmp / "resp.der"
    made = subprocess.run(["openssl", "ocsp", "-issuer", str(files["issuer"]), "-cert", str(files["leaf"]),
                           "-no_nonce", "-reqout", str(request_file)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    encoded = quote(base64.b64encode(request_file.read_bytes()).decode(), safe="")
    with urllib.request.urlopen(f"{server.url}{prefix}/{encoded}", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/ocsp-response"
        assert response.headers["Cache-Control"].startswith("max-age=")
        response_file.write_bytes(response.read())
    run = subprocess.run(["openssl", "ocsp", "-respin", str(response_file), "-issuer", str(files["issuer"]),
                          "-cert", str(files["leaf"]), "-CAfile", str(files["chain"]), "-no_nonce"],
                         capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "Response verify OK" in output, output
    return _status(output, files["leaf"])


def test_openssl_ocsp_good_revoked_good(gunicorn_server, tmp_path):  # noqa: F811
    server = gunicorn_server
    token = server.demo["token"]
    cert_id, files = _issue(server, tmp_path)
    ca_url = f"{server.url}/api/v1/ca/{server.demo['issuing_ca_id']}/ocsp"
    any_url = f"{server.url}/api/v1/ocsp"
    # The certificate's own AIA points at its CA's responder.
    leaf = x509.load_pem_x509_certificate(files["leaf"].read_bytes())
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert ca_url in [d.access_location.value for d in aia]

    def statuses() -> dict[str, str]:
        return {
            "nonce": _status(_openssl_ocsp(files, ca_url), files["leaf"]),
            "no_nonce": _status(_openssl_ocsp(files, any_url, "-no_nonce"), files["leaf"]),
            "no_nonce_again": _status(_openssl_ocsp(files, any_url, "-no_nonce"), files["leaf"]),
            "get": _get_form(server, files, tmp_path, "/api/v1/ocsp"),
            "get_ca": _get_form(server, files, tmp_path, f"/api/v1/ca/{server.demo['issuing_ca_id']}/ocsp"),
        }

    assert set(statuses().values()) == {"good"}

    code, body = server.call("POST", f"/api/v1/certificates/{cert_id}/revoke", token, {"reason": "certificateHold"})
    assert code == 200, body
    assert set(statuses().values()) == {"revoked"}  # the cached good answers are gone at once
    output = _openssl_ocsp(files, ca_url, "-no_nonce")
    assert "Reason: certificateHold" in output, output

    code, body = server.call("POST", f"/api/v1/certificates/{cert_id}/unrevoke", token, {})
    assert code == 200, body
    assert set(statuses().values()) == {"good"}
