"""certbot itself (from PyPI, in the clients' venv) obtains a certificate with --eab-kid/--eab-hmac-key and
--standalone (its own http-01 server on the port MAZEVAULT_ACME_HTTP01_PORT points at), against live gunicorn."""
from __future__ import annotations

import subprocess

import pytest
from cryptography import x509

from tests.e2e.test_schemathesis import database_url  # noqa: F401  (fixture)
from tests.live import free_port

from .live import boot, client_venv, stop

pytestmark = pytest.mark.e2e


def test_certbot_standalone_with_eab(tmp_path, database_url, challtestsrv):  # noqa: F811
    certbot = client_venv().with_name("certbot")
    port = free_port()
    server, proc = boot(tmp_path, database_url, MAZEVAULT_ACME_HTTP01_PORT=str(port),
                        MAZEVAULT_ACME_DNS_RESOLVERS=f"127.0.0.1:{challtestsrv.dns_port}")
    try:
        credential = server.credential(cluster_label="certbot")
        dirs = [f"--{kind}-dir={tmp_path / kind}" for kind in ("config", "work", "logs")]
        run = subprocess.run(
            [str(certbot), "certonly", "--standalone", "--non-interactive", "--agree-tos", "-m", "ops@acme.internal",
             "--server", server.directory, "--eab-kid", credential["eab_key_id"],
             "--eab-hmac-key", credential["eab_hmac_key"], "--http-01-port", str(port),
             "--http-01-address", "127.0.0.1", "--preferred-challenges", "http", "--key-type", "ecdsa",
             "-d", "certbot.acme.internal", "-d", "www.certbot.acme.internal", *dirs],
            capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- server ---\n{server.log.read_text()[-4000:]}"
        live = tmp_path / "config" / "live" / "certbot.acme.internal"
        leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
        assert sorted(names) == ["certbot.acme.internal", "www.certbot.acme.internal"]
        chain = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
        assert len(chain) == 3
        verify = subprocess.run(["openssl", "verify", "-CAfile", "/dev/stdin", "-untrusted", str(live / "chain.pem"),
                                 str(live / "cert.pem")], input=(live / "chain.pem").read_text().split(
                                     "-----END CERTIFICATE-----\n", 1)[1], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        stop(proc)
