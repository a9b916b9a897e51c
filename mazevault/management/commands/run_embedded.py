"""``manage.py run_embedded``: the whole service in one terminal (what ``make run`` starts).

It prepares the installation (migrate, collectstatic, ``bootstrap_demo``), prints how to get in, then
supervises three child processes: gunicorn (web), a Celery worker on every queue and Celery beat.
With nothing configured they share the embedded defaults (SQLite under ``MAZEVAULT_DATA_DIR`` and the
file-system Kombu transport), so beat's schedule really runs on a bare machine; with ``DATABASE_URL`` /
``CELERY_BROKER_URL`` set the same command runs against those.

Invariants:
- No child starts before the database is migrated, static files are collected and the demo tenant exists.
- Every child runs in its own session (process group): a terminal Ctrl-C reaches only this supervisor,
  which forwards one SIGTERM to each child (gunicorn's master and Celery's main process then stop their
  own workers gracefully), waits up to ``--grace`` seconds, then SIGKILLs whatever is left of each
  child's process group. A second SIGINT/SIGTERM skips the wait.
- If any child exits on its own, the others are stopped the same way and the command exits non-zero.
- On Linux each child is started with ``PR_SET_PDEATHSIG = SIGTERM``, so it cannot outlive a supervisor
  that was itself killed with SIGKILL.
"""
from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

# The key types ``bootstrap_demo`` (certificates app) accepts for the demo CAs. Spelt out here
# because the core imports no app; tests/core/test_commands.py keeps the two lists equal.
DEMO_KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-4096")
QUEUES = "default,crl,rotation,acme"
GUNICORN_CONFIG = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec hook: ask the kernel to SIGTERM this child when the supervisor dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


@dataclass
class Child:
    """One supervised process; ``popen`` is set once started."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child itself (not yet reaped, so its pid cannot have been reused)."""
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the child's whole process group (its own workers included)."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


class Command(BaseCommand):
    help = ("Migrate, bootstrap the demo tenant, then run gunicorn, a Celery worker and Celery beat "
            "as supervised child processes (the embedded all-in-one mode behind `make run`).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address gunicorn binds (default 127.0.0.1; 0.0.0.0 for every interface)")
        parser.add_argument("--port", type=int, default=None, help="port gunicorn binds (default: PORT, 8000)")
        parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)")
        parser.add_argument("--worker-concurrency", type=int, default=2,
                            help="Celery worker pool size (default 2)")
        parser.add_argument("--key-type", default="ec-p256", choices=sorted(DEMO_KEY_TYPES),
                            help="key type of the demo CAs when they are first created")
        parser.add_argument("--no-bootstrap", action="store_true", help="skip bootstrap_demo (no token is printed)")
        parser.add_argument("--grace", type=float, default=35.0,
                            help="seconds to wait for children after SIGTERM before SIGKILL (default 35)")

    # --- entry point ------------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        port: int = options["port"] or settings.PORT
        host: str = options["host"]
        if port != settings.PORT and not os.environ.get("MAZEVAULT_PUBLIC_URL"):
            # The default public URL follows the port actually served, here (the demo CAs' and the
            # certificates' CRL/OCSP/AIA URLs) and in every child process (which inherit the environment).
            os.environ["PORT"] = str(port)
            settings.PORT, settings.MAZEVAULT_PUBLIC_URL = port, f"http://localhost:{port}"
        self._stop_requested = 0
        self._output_lock = threading.Lock()
        self._setup()
        demo = None if options["no_bootstrap"] else self._bootstrap(options["key_type"])

        children = self._children(host, port, options["web_workers"], options["worker_concurrency"])
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        failed: Child | None = None
        try:
            for child in children:
                self._start(child)
            ready = self._wait_until_serving(host, port, children)
            if not self._stop_requested and all(child.running() for child in children):
                self._banner(host, port, demo, children, ready)
            failed = self._supervise(children)
        finally:
            self._stop_all(children, options["grace"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed is not None:
            assert failed.popen is not None
            raise CommandError(f"{failed.name} exited with code {failed.popen.returncode}; "
                               "stopped the other processes", returncode=1)
        self.stdout.write("run_embedded: all processes stopped")

    # --- preparation ---------------------------------------------------------------------------
    def _setup(self) -> None:
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = "filesystem (embedded)" if settings.CELERY_EMBEDDED_BROKER else _redact(settings.CELERY_BROKER_URL)
        self.stdout.write(f"run_embedded: data dir {settings.DATA_DIR}; database {engine}; broker {broker}")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)

    def _bootstrap(self, key_type: str) -> dict[str, Any]:
        out = io.StringIO()
        call_command("bootstrap_demo", json=True, key_type=key_type, stdout=out)
        return json.loads(out.getvalue())

    def _children(self, host: str, port: int, web_workers: int, concurrency: int) -> list[Child]:
        python = sys.executable
        return [
            Child("web", [python, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), "--bind", f"{host}:{port}",
                          "--workers", str(web_workers), "mazevault.wsgi:application"]),
            Child("worker", [python, "-m", "celery", "-A", "mazevault", "worker", "-Q", QUEUES,
                             "--concurrency", str(concurrency), "--loglevel", "INFO", "--hostname", "embedded@%h"]),
            Child("beat", [python, "-m", "celery", "-A", "mazevault", "beat", "--loglevel", "INFO",
                           "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME,
                           "--pidfile", str(Path(settings.DATA_DIR) / "celerybeat.pid")]),
        ]

    # --- children --------------------------------------------------------------------------------
    def _start(self, child: Child) -> None:
        child.popen = subprocess.Popen(
            child.argv, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        child.pump = threading.Thread(target=self._pump, args=(child.name, child.popen.stdout), daemon=True)
        child.pump.start()

    def _pump(self, name: str, stream: IO[bytes] | None) -> None:
        """Copy a child's output to ours, each line prefixed with the child's name."""
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            try:
                with self._output_lock:
                    self.stdout.write(f"{name:>6} | {raw.decode(errors='replace').rstrip()}")
                    self.stdout.flush()
            except (BrokenPipeError, ValueError):
                return

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop_requested += 1

    def _wait_until_serving(self, host: str, port: int, children: list[Child], timeout: float = 60.0) -> bool:
        """True once /api/v1/health answers (200 or 503) — or False if a child died or time ran out."""
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
        url = f"http://{probe_host}:{port}/api/v1/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop_requested:
            if any(not child.running() for child in children):
                return False
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code == 503:
                    return True  # our health view answered "degraded": serving, and the banner still helps
                time.sleep(0.3)  # something else holds the port, or a proxy is not ready yet
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        return False

    def _banner(self, host: str, port: int, demo: dict[str, Any] | None, children: list[Child],
                ready: bool) -> None:
        base = f"http://localhost:{port}" if host in ("127.0.0.1", "0.0.0.0", "localhost", "::") \
            else f"http://{host}:{port}"
        lines = ["", "=" * 72, f"MazeVault Certificates {'is up' if ready else 'is starting'}"
                 f" ({', '.join(f'{c.name} pid {c.pid}' for c in children)})",
                 f"  Admin:       {base}/admin/",
                 f"  API docs:    {base}/api/docs/   (schema: {base}/api/schema/)",
                 f"  Health:      {base}/api/v1/health"]
        if demo is not None:
            for role, user in (("Admin user", "admin"), ("Operator", "operator")):
                username = demo.get(f"{user}_username")
                if username is None:
                    continue
                lines.append(f"  {role + ':':<12} {username}")
                if f"{user}_password" in demo:
                    lines.append(f"  Password:    {demo[f'{user}_password']}   (shown once: it was just created)")
                else:
                    lines.append("  Password:    unchanged since it was created "
                                 f"(reset: .venv/bin/python manage.py changepassword {username})")
            lines += [f"  API token:   {demo['token']}   (admin; new on every start, the previous one is revoked)",
                      "  For the README's examples (paste into your shell):",
                      f"    export MV_URL={base}",
                      f"    export MV_TOKEN={demo['token']}   # admin",
                      f"    export MV_PROJECT={demo['project_id']}",
                      f"    export MV_TEMPLATE={demo['template_ids']['client-auth']}   # client-auth, auto-approved",
                      f"    export MV_WEB_TEMPLATE={demo['template_ids']['web-server']}   # web-server, needs approval"]
            if "operator_token" in demo:
                lines.append(f"    export MV_OPERATOR_TOKEN={demo['operator_token']}   # operator, approves")
        lines += ["Ctrl-C stops web, worker and beat.", "=" * 72, ""]
        with self._output_lock:
            self.stdout.write("\n".join(lines))
            self.stdout.flush()

    def _supervise(self, children: list[Child]) -> Child | None:
        """Block until a stop signal (→ None) or until a child exits on its own (→ that child)."""
        while not self._stop_requested:
            for child in children:
                if not child.running():
                    return child
            time.sleep(0.2)
        return None

    def _stop_all(self, children: list[Child], grace: float) -> None:
        """SIGTERM every child, wait up to ``grace`` s (less on a repeated signal), SIGKILL the rest."""
        signals_seen = self._stop_requested
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.running() for c in children):
            if self._stop_requested > max(signals_seen, 1):
                break  # a second Ctrl-C: do not wait
            time.sleep(0.1)
        for child in children:
            # The group may still hold grandchildren (pool processes) even when the leader is gone.
            child.signal_group(signal.SIGKILL)
            if child.popen is not None:
                child.popen.wait()
            if child.pump is not None:
                child.pump.join(timeout=2)


def _redact(url: str) -> str:
    """A broker URL without its password, for the start-up line."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
