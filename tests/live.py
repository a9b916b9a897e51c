"""A live MazeVault for end-to-end tests: gunicorn on a throwaway database, started and stopped here.

Shared by the schemathesis run (tests/e2e) and the real ACME clients (tests/acme/live.py).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def server_env(tmp_path: Path, database_url: str, port: int, **extra: str) -> dict:
    """The environment of a live server: its own data dir, no limits, eager tasks, its own public URL."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if key not in {"REDIS_URL", "MAZEVAULT_TESTING", "PYTEST_CURRENT_TEST"}}
    env.update({
        "DATABASE_URL": database_url, "MAZEVAULT_DATA_DIR": str(data_dir), "MAZEVAULT_RATE_LIMIT_API": "",
        "MAZEVAULT_RATE_LIMIT_AUTH": "", "CELERY_TASK_ALWAYS_EAGER": "1", "PORT": str(port),
        "MAZEVAULT_PUBLIC_URL": f"http://127.0.0.1:{port}", "MAZEVAULT_ENV": "development", **extra,
    })
    return env


def start_gunicorn(env: dict, port: int, log: Path, workers: int = 2,
                   access_log: Path | None = None) -> subprocess.Popen:
    out = open(log, "a")  # noqa: SIM115 - the process writes to it until stop()
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mazevault.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--timeout", "120",
         *(["--access-logfile", str(access_log)] if access_log else [])],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn did not answer within 60 s:\n{log.read_text()[-5000:]}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
