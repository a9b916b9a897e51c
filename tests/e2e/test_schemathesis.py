"""Schemathesis against a live server: every operation of /api/schema/, zero 5xx, every response as documented.

The server is gunicorn (2 workers) on a free port, on a throwaway database (a temporary SQLite file, or a
``<name>_e2e_<hex>`` PostgreSQL database created and dropped here when DATABASE_URL is PostgreSQL) and a
temporary ``MAZEVAULT_DATA_DIR``; the developer's own ``var/`` is never touched. Rate limits are switched
off and Celery tasks run eagerly in the server (a configured broker is only probed by the health check).

``bootstrap_demo`` plus a few API calls give the fuzzer real objects: schemathesis dictionaries feed their
ids (and valid CSRs) into path, query and body parameters part of the time, so besides random ids (404) it
reaches issuance, approval and rejection. ``DELETE /users/tokens/{id}`` runs in a second pass with its own
token, since revoking the token the main pass authenticates with would turn the rest of it into 401s; a run
in which any operation only ever saw 401/403 fails (``warnings.fail-on = missing_auth``).

Knobs: MAZEVAULT_E2E_SEED (default 1), MAZEVAULT_E2E_MAX_EXAMPLES (default 30).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dj_database_url
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

from tests.live import free_port, manage, server_env, start_gunicorn, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("MAZEVAULT_E2E_SEED") or 1)
MAX_EXAMPLES = int(os.environ.get("MAZEVAULT_E2E_MAX_EXAMPLES") or 30)
# Every check but positive_data_acceptance: templates, approval policies and cross-field rules ("a root CA has
# no parent", "csr_pem is required for uploaded_csr") rightly refuse requests that merely match the schema.
CHECKS = ("--checks", "all", "--exclude-checks", "positive_data_acceptance")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
if not SCHEMATHESIS.exists():
    SCHEMATHESIS = Path(shutil.which("schemathesis") or SCHEMATHESIS)

pytestmark = pytest.mark.e2e


# --- a throwaway database -----------------------------------------------------------------------
def _admin_connect(db: dict):
    import psycopg

    return psycopg.connect(dbname="postgres", user=db["USER"] or None, password=db["PASSWORD"] or None,
                           host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True)


@pytest.fixture
def database_url(tmp_path):
    """A database of its own for the live server; dropped afterwards."""
    base = settings.DATABASE_URL
    if not base.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'e2e.sqlite3'}"
        return
    from psycopg import sql

    db = dj_database_url.parse(base)
    name = f"{db['NAME']}_e2e_{secrets.token_hex(4)}"[:63]
    try:
        with _admin_connect(db) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as exc:  # noqa: BLE001 — reported, then skip or fail as the CI policy says
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot create the e2e database on {db['HOST']}: {exc}")
        pytest.skip(f"cannot create a PostgreSQL database for the live server: {exc}")
    user = db["USER"] or ""
    auth = f"{user}:{db['PASSWORD']}@" if db["PASSWORD"] else (f"{user}@" if user else "")
    host = f"{db['HOST'] or ''}{':' + str(db['PORT']) if db['PORT'] else ''}"
    try:
        yield f"postgresql://{auth}{host}/{name}"
    finally:
        with _admin_connect(db) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the live server ------------------------------------------------------------------------------
@dataclass
class LiveServer:
    url: str
    env: dict
    demo: dict
    log: Path

    def call(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def gunicorn_server(tmp_path, database_url):
    port = free_port()
    env = server_env(tmp_path, database_url, port)
    manage(env, "migrate", "--no-input", "-v", "0")
    demo = json.loads(manage(env, "bootstrap_demo", "--json"))
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(env, port, log, access_log=tmp_path / "access.log")
    server = LiveServer(url=f"http://127.0.0.1:{port}", env=env, demo=demo, log=log)
    try:
        wait_healthy(proc, server.url, log)
        yield server
    finally:
        stop(proc)


# --- real objects for the fuzzer ---------------------------------------------------------------------
_KEY = ec.generate_private_key(ec.SECP256R1())


def _csr(common_name: str) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
           .sign(_KEY, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _seed_objects(server: LiveServer) -> dict[str, list]:
    """Issued and pending certificates (the latter requested by another user, so the admin may approve them)."""
    demo, admin = server.demo, server.demo["token"]
    requester = manage(server.env, "create_token", "--user", "e2e-requester", "--role", "user",
                        "--project", demo["project_id"], "--name", "e2e").strip()
    csrs = [_csr(f"e2e-{n}.example.com") for n in range(4)]
    base = {"project_id": demo["project_id"], "csr_source_mode": "uploaded_csr"}
    certificates = []
    for n, (token, template) in enumerate([(admin, "client-auth"), (requester, "web-server"),
                                           (requester, "web-server"), (requester, "web-server")]):
        code, body = server.call("POST", "/api/v1/certificates/csr", token, {
            **base, "template_id": demo["template_ids"][template], "csr_pem": csrs[n]})
        assert code == 201, body
        certificates.append(body["id"])
    code, policies = server.call("GET", f"/api/v1/projects/{demo['project_id']}/approval-policies", admin)
    assert code == 200, policies
    code, events = server.call("GET", "/api/v1/audit-logs?per_page=5", admin)
    assert code == 200, events
    cas = [demo["root_ca_id"], demo["issuing_ca_id"]]
    templates = list(demo["template_ids"].values())
    return {
        "projects": [demo["project_id"]], "organizations": [demo["organization_id"]], "cas": cas,
        "templates": templates, "certificates": certificates, "csrs": csrs,
        "policies": [p["id"] for p in policies["data"]],
        "ids": [*certificates, *cas, *templates, demo["project_id"], demo["organization_id"],
                *(p["id"] for p in policies["data"]), *(e["id"] for e in events["data"])],
    }


def _toml_list(values: list) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _config(path: Path, token: str, objects: dict[str, list]) -> Path:
    bindings = {
        "path.id": "ids", "path.project_pk": "projects",
        "query.project_id": "projects", "query.organization_id": "organizations", "query.ca_id": "cas",
        "query.template_id": "templates",
        "body.project_id": "projects", "body.organization_id": "organizations", "body.template_id": "templates",
        "body.ca_id": "cas", "body.parent_id": "cas", "body.approval_policy_id": "policies",
        "body.csr_pem": "csrs",
    }
    lines = [
        f"seed = {SEED}",
        "workers = 2",
        "request-timeout = 60",
        f"headers = {{ Authorization = {json.dumps('Bearer ' + token)} }}",
        "",
        "[warnings]",
        'fail-on = ["missing_auth"]',
        "",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "allow-x00 = false",  # DRF refuses NUL in every string; keep generated data mostly valid
        "",
        "[parameters]",
        *(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in bindings.items()),
        "",
        *(f"[dictionaries.{name}]\nvalues = {_toml_list(values)}\n" for name, values in objects.items() if values),
    ]
    path.write_text("\n".join(lines))
    return path


def _schemathesis(server: LiveServer, config: Path, *selection: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", f"{server.url}/api/schema/",
         *CHECKS, *selection],
        cwd=config.parent, capture_output=True, text=True, timeout=900)
    (config.parent / "schemathesis-output.txt").write_text(f"{run.stdout}\n{run.stderr}")
    return run


def _server_errors(server: LiveServer) -> str:
    """The server log without its routine lines (4xx warnings, gunicorn start/stop)."""
    lines = [line for line in server.log.read_text().splitlines()
             if " WARNING django.request " not in line and " [INFO] " not in line]
    return "\n".join(lines)[-20000:]


def _assert_clean(run: subprocess.CompletedProcess, server: LiveServer) -> None:
    if run.returncode != 0:
        pytest.fail(f"schemathesis exit {run.returncode}\n{run.stdout}\n{run.stderr}\n"
                    f"--- server log ---\n{_server_errors(server)}", pytrace=False)


def test_schemathesis_against_live_server(gunicorn_server, tmp_path):
    objects = _seed_objects(gunicorn_server)
    main = _config(tmp_path / "schemathesis.toml", gunicorn_server.demo["token"], objects)
    run = _schemathesis(gunicorn_server, main, "--exclude-operation-id", "users_tokens_destroy")
    _assert_clean(run, gunicorn_server)
    assert "Tested: " in run.stdout, run.stdout

    # Revoking tokens, with a token of its own that the pass cannot discover (it lists no tokens).
    token = manage(gunicorn_server.env, "create_token", "--user", "admin", "--name", "e2e-revoke").strip()
    (tmp_path / "tokens").mkdir()
    tokens = _config(tmp_path / "tokens" / "schemathesis.toml", token, objects)
    run = _schemathesis(gunicorn_server, tokens, "--include-operation-id", "users_tokens_create",
                        "--include-operation-id", "users_tokens_destroy")
    _assert_clean(run, gunicorn_server)
