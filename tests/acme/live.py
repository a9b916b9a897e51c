"""A live MazeVault (gunicorn on a throwaway database) for real ACME clients, and the clients' own venv.

The Python ``acme`` library and certbot cannot be imported here (our ``acme`` app shadows the name), so they
live in a virtualenv of their own, ``var/acme-clients`` (MAZEVAULT_ACME_CLIENT_VENV elsewhere), created on
first use and reused while its requirements stay the same (``make acme-clients`` creates it up front).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.live import free_port, manage, server_env, start_gunicorn, stop, wait_healthy  # noqa: F401 (re-exported)

CLIENT_REQUIREMENTS = ("acme>=3", "certbot>=3")
CLIENTS_DIR = Path(os.environ.get("MAZEVAULT_ACME_CLIENT_VENV") or ROOT / "var" / "acme-clients")


def client_venv() -> Path:
    """The client venv's python, created (about half a minute) unless it exists with these requirements."""
    python = CLIENTS_DIR / "bin" / "python"
    stamp = CLIENTS_DIR / ".requirements"
    wanted = "\n".join(CLIENT_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    done = subprocess.run([sys.executable, "-m", "venv", "--clear", str(CLIENTS_DIR)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           *CLIENT_REQUIREMENTS], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        message = f"cannot install the ACME clients: {done.stderr[-2000:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    stamp.write_text(wanted)
    return python


@dataclass
class LiveAcme:
    url: str
    env: dict
    demo: dict
    log: Path

    @property
    def directory(self) -> str:
        return f"{self.url}/api/acme/directory"

    def call(self, method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.demo['token']}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def credential(self, **fields) -> dict:
        code, body = self.call("POST", f"/api/v1/organizations/{self.demo['organization_id']}/acme-credentials", {
            "project_id": self.demo["project_id"], "default_template_id": self.demo["template_ids"]["web-server"],
            **fields})
        assert code == 201, body
        return body


def boot(tmp_path: Path, database_url: str, **extra: str):
    """Migrate, bootstrap the demo tenant, start gunicorn: (LiveAcme, process)."""
    port = free_port()
    env = server_env(tmp_path, database_url, port, MAZEVAULT_ACME_VALIDATION_RETRY_SECONDS="1", **extra)
    manage(env, "migrate", "--no-input", "-v", "0")
    demo = json.loads(manage(env, "bootstrap_demo", "--json"))
    log = tmp_path / "gunicorn.log"
    proc = start_gunicorn(env, port, log)
    server = LiveAcme(url=f"http://127.0.0.1:{port}", env=env, demo=demo, log=log)
    wait_healthy(proc, server.url, log)
    return server, proc
