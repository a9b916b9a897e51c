"""The Python ``acme`` library (certbot's) against a live gunicorn server: EAB account, an order with several
identifiers, http-01 against a web root served by this test, finalize, download (verified with openssl), ARI,
revoke, key roll-over, deactivation; and the refusals: no EAB, wrong HMAC, revoked credential, replayed
nonce, wrong url, a CSR with an extra name, an identifier the template forbids."""
from __future__ import annotations

import functools
import json
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.test_schemathesis import database_url  # noqa: F401  (fixture)

from .live import boot, client_venv, stop

pytestmark = pytest.mark.e2e
CLIENTS = Path(__file__).parent / "clients"
NS = "urn:ietf:params:acme:error:"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webroot(tmp_path):
    """A plain HTTP server over a directory: the http-01 responder the client writes its tokens into."""
    root = tmp_path / "webroot"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, server.server_address[1]
    server.shutdown()
    server.server_close()


def _split(chain_pem: str) -> list[str]:
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in x509.load_pem_x509_certificates(chain_pem.encode())]


def test_acme_library_full_flow(tmp_path, database_url, webroot, challtestsrv):  # noqa: F811
    python = client_venv()
    root, port = webroot
    server, proc = boot(tmp_path, database_url, MAZEVAULT_ACME_HTTP01_PORT=str(port),
                        MAZEVAULT_ACME_DNS_RESOLVERS=f"127.0.0.1:{challtestsrv.dns_port}")
    try:
        good = server.credential(cluster_label="prod-aks-westeurope")
        revoked = server.credential(cluster_label="old")
        code, _ = server.call("DELETE", f"/api/v1/organizations/{server.demo['organization_id']}/acme-credentials/"
                                        f"{revoked['id']}")
        assert code == 204
        template = server.demo["template_ids"]["web-server"]
        code, body = server.call("PATCH", f"/api/v1/certificate-templates/{template}",
                                 {"san_patterns": {"dns_names": [r"[a-z0-9.-]+\.internal"]}})
        assert code == 200, body
        out = tmp_path / "out"
        out.mkdir()
        config = tmp_path / "config.json"
        config.write_text(json.dumps({
            "directory": server.directory, "eab_kid": good["eab_key_id"], "eab_hmac": good["eab_hmac_key"],
            "revoked_eab_kid": revoked["eab_key_id"], "revoked_eab_hmac": revoked["eab_hmac_key"],
            "webroot": str(root), "names": ["app.acme.internal", "api.acme.internal", "www.acme.internal"],
            "forbidden_name": "www.example.com", "out": str(out)}))
        run = subprocess.run([str(python), str(CLIENTS / "acme_library_flow.py"), str(config)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-5000:]}\n--- server ---\n{server.log.read_text()[-5000:]}"
        steps = {line["step"]: line for line in map(json.loads, run.stdout.splitlines()) if "step" in line}
        assert run.stdout.splitlines()[-1] == '{"done": true}'

        assert steps["no_eab"]["type"] == NS + "externalAccountRequired"
        assert steps["wrong_hmac"]["type"] == NS + "unauthorized"
        assert steps["revoked_credential"]["type"] == NS + "unauthorized"
        assert steps["account"]["status"] == "valid"
        assert steps["order"]["authorizations"] == 3
        assert steps["issued"]["status"] == "valid"
        assert steps["issued"]["sans"] == ["api.acme.internal", "app.acme.internal", "www.acme.internal"]
        assert steps["renewal_info"]["suggested"] is not None
        assert steps["extra_name"]["type"] == NS + "badCSR"
        assert steps["forbidden_identifier"]["type"] == NS + "rejectedIdentifier"
        assert steps["replayed_nonce"]["first"] == 201
        assert (steps["replayed_nonce"]["status"], steps["replayed_nonce"]["type"]) == (400, NS + "badNonce")
        assert (steps["wrong_url"]["status"], steps["wrong_url"]["type"]) == (403, NS + "unauthorized")
        assert steps["revoked"]["again"]["type"] == NS + "alreadyRevoked"
        assert steps["key_change"]["status"] == 200 and steps["key_change"]["account_status"] == "valid"
        assert steps["deactivated"]["status"] == "deactivated"
        assert steps["after_deactivation"]["type"] == NS + "unauthorized"

        # The chain verifies with openssl against the demo root.
        leaf, issuing, rootca = _split((out / "fullchain.pem").read_text())
        for name, pem in (("leaf", leaf), ("issuing", issuing), ("root", rootca)):
            (tmp_path / f"{name}.pem").write_text(pem)
        verify = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "root.pem"),
                                 "-untrusted", str(tmp_path / "issuing.pem"), str(tmp_path / "leaf.pem")],
                                capture_output=True, text=True)
        assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stdout + verify.stderr

        # The server's view: issued over ACME and then revoked by the account (audited as such).
        code, body = server.call("GET", "/api/v1/audit-logs?per_page=100")
        assert code == 200
        actions = {e["action"] for e in body["data"]}
        assert {"acme.account.created", "acme.order.created", "acme.order.finalized", "acme.account.key_changed",
                "acme.account.deactivated", "cert.revoked"} <= actions, actions
    finally:
        stop(proc)
