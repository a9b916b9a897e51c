"""``manage.py run_embedded`` — what ``make run`` starts — end to end on the embedded defaults.

Each test runs the real supervisor as a subprocess in a throw-away data directory with no server
configured (SQLite, the file-system Celery transport), whatever the test session itself uses, so this
file runs the same locally and in CI. The sweep interval is shortened to two seconds so beat's schedule
can be watched reaching the worker.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_csr

# Settings that would point the subprocess at the session's servers or secrets; the embedded run gets none.
_SCRUBBED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TASK_ALWAYS_EAGER", "REDIS_URL",
             "MAZEVAULT_TESTING", "MAZEVAULT_KEK", "MAZEVAULT_OLD_KEKS", "DJANGO_SECRET_KEY", "MAZEVAULT_ENV",
             "MAZEVAULT_PUBLIC_URL", "MAZEVAULT_DEMO_ADMIN_PASSWORD", "MAZEVAULT_DEMO_OPERATOR_PASSWORD", "PORT", "STATIC_ROOT",
             "MAZEVAULT_EXPIRY_SWEEP_MINUTES")
START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Supervisor:
    """A running ``manage.py run_embedded`` whose output is collected line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        self.env.update(MAZEVAULT_DATA_DIR=str(data_dir), MAZEVAULT_EXPIRY_SWEEP_SECONDS="2", PYTHONUNBUFFERED="1")
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_embedded", "--port", str(self.port), "--web-workers", "1",
             "--worker-concurrency", "1", "--grace", "20"],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting up to ``timeout`` seconds."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = regex.search("\n".join(self.lines))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"no {pattern!r} in run_embedded output:\n" + "\n".join(self.lines[-60:]))
                self._changed.wait(min(remaining, 0.5))

    def child_pids(self) -> dict[str, int]:
        match = self.wait_for(r"\(web pid (\d+), worker pid (\d+), beat pid (\d+)\)", START_TIMEOUT)
        return dict(zip(("web", "worker", "beat"), map(int, match.groups()), strict=True))

    def request(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=15) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def manage(self, *args: str) -> str:
        """Run another management command against the same embedded installation."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._reader.join(timeout=5)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded installation shared by the tests below (the second start finds it migrated)."""
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture
def supervisor(data_dir: Path):
    running = Supervisor(data_dir)
    yield running
    if running.proc.poll() is None:  # a failed test left it running
        running.stop(signal.SIGTERM, timeout=40)


def test_run_embedded_serves_the_api_and_beat_expires_certificates_in_the_worker(supervisor: Supervisor):
    pids = supervisor.child_pids()
    token = supervisor.wait_for(r"export MV_TOKEN=(mv_pat_\S+)", 5).group(1)
    project = supervisor.wait_for(r"export MV_PROJECT=(\S+)", 5).group(1)
    template = supervisor.wait_for(r"export MV_TEMPLATE=(\S+)", 5).group(1)
    assert re.search(rf"Admin:\s+http://localhost:{supervisor.port}/admin/", supervisor.output)
    assert re.search(r"Password:\s+\S+\s+\(shown once", supervisor.output), "a new admin's password is printed"
    # The README's quick start runs on any port: the banner exports the base URL it uses.
    assert supervisor.wait_for(r"export MV_URL=(\S+)", 5).group(1) == f"http://localhost:{supervisor.port}"
    assert re.search(r"Operator:\s+operator", supervisor.output)
    assert len(re.findall(r"Password:\s+\S+\s+\(shown once", supervisor.output)) == 2, "both passwords printed"
    operator_token = supervisor.wait_for(r"export MV_OPERATOR_TOKEN=(mv_pat_\S+)", 5).group(1)
    web_template = supervisor.wait_for(r"export MV_WEB_TEMPLATE=(\S+)", 5).group(1)

    status, body = supervisor.request("GET", "/api/v1/health")
    health = json.loads(body)
    assert status == 200, health
    assert health["components"]["database"]["status"] == "ok"
    assert health["components"]["broker"]["status"] == "ok"
    assert supervisor.request("GET", "/static/admin/css/base.css")[0] == 200  # collected and served by gunicorn
    assert supervisor.request("GET", "/admin/")[0] == 302  # to the login page

    status, body = supervisor.request("POST", "/api/v1/certificates/csr", token, {
        "template_id": template, "project_id": project, "csr_source_mode": "uploaded_csr",
        "csr_pem": make_csr("embedded.example.test")})
    issued = json.loads(body)
    assert status == 201, issued
    assert issued["status"] == "active"

    # The README's walk-through: submitted by admin, approved by operator.
    status, body = supervisor.request("POST", "/api/v1/certificates/csr", token, {
        "template_id": web_template, "project_id": project, "csr_source_mode": "uploaded_csr",
        "csr_pem": make_csr("www.embedded.test", dns=["www.embedded.test"])})
    pending = json.loads(body)
    assert status == 201 and pending["status"] == "pending_approval", pending
    assert supervisor.request("POST", f"/api/v1/certificates/{pending['id']}/approve", token, {})[0] == 403
    status, body = supervisor.request("POST", f"/api/v1/certificates/{pending['id']}/approve", operator_token, {})
    assert status == 200 and json.loads(body)["status"] == "active", body

    # Backdate it from another process, as time would; beat (every 2 s) queues the sweep, the worker runs it.
    supervisor.manage("shell", "-c", (
        "from datetime import timedelta; from django.utils import timezone; "
        "from certificates.models import Certificate; "
        f"assert Certificate.objects.filter(pk='{issued['id']}')"
        ".update(not_after=timezone.now() - timedelta(minutes=1)) == 1"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = supervisor.request("GET", f"/api/v1/certificates/{issued['id']}", token)
        assert status == 200
        if json.loads(body)["status"] == "expired":
            break
        time.sleep(0.5)
    else:
        pytest.fail("beat + worker never moved the certificate to expired:\n" + supervisor.output[-4000:])
    assert "Sending due task certificates.sweep_expired" in supervisor.output
    supervisor.wait_for(r"certificates\.sweep_expired\[[0-9a-f-]+\] succeeded in [0-9.]+s: 1\b", 10)

    # The worker sealed the audit events of those commits too (docs/audit.md), and the chain verifies.
    deadline = time.monotonic() + 30
    while True:
        report = supervisor.manage("verify_audit")
        if report.rstrip().endswith("; 0 events not sealed yet") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report.startswith("audit chain intact") and report.rstrip().endswith("; 0 events not sealed yet"), report
    assert "mazevault.seal_audit_log" in supervisor.output

    assert supervisor.stop(signal.SIGTERM) == 0, supervisor.output[-3000:]
    assert "run_embedded: all processes stopped" in supervisor.output
    assert not [name for name, pid in pids.items() if _alive(pid)]


def test_run_embedded_stops_the_others_and_fails_when_a_child_dies(supervisor: Supervisor):
    pids = supervisor.child_pids()
    # Second start on the same data: bootstrap is idempotent and does not print the password again.
    assert re.search(r"Password:\s+unchanged", supervisor.output)
    assert supervisor.request("GET", "/api/v1/health")[0] == 200

    os.kill(pids["beat"], signal.SIGKILL)

    returncode = supervisor.proc.wait(timeout=60)
    assert returncode != 0
    assert "beat exited with code -9; stopped the other processes" in supervisor.output
    assert not [name for name, pid in pids.items() if _alive(pid)]
