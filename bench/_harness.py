"""Shared plumbing for the benchmarks: a throw-away PostgreSQL database, ``manage.py`` in a
subprocess, a gunicorn server, a cheap keep-alive HTTP client and CPU accounting.

Nothing here is imported by the application. The benchmarks run the real service the way it is
deployed (gunicorn on PostgreSQL) and talk to it over TCP; they print figures and assert only
that the answers were the expected ones (tests assert behaviour, never speed).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# The maintenance database the benchmarks connect to in order to create/drop their own databases.
ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- PostgreSQL ---------------------------------------------------------------------------------
def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def create_database(name: str) -> str:
    """A fresh, empty database called ``name`` (dropped first if a previous run left it)."""
    if name in {"mazevault", "postgres", "template0", "template1"} or name.startswith("test_"):
        raise SystemExit(f"refusing to use database {name!r}: it belongs to someone else")
    drop_database(name)
    _admin_execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- The application in subprocesses -------------------------------------------------------------
@dataclass
class AppEnv:
    """Environment for ``manage.py`` and gunicorn pointed at one benchmark database."""

    db_name: str
    data_dir: Path
    extra: dict[str, str] = field(default_factory=dict)
    db_options: str = ""  # appended to the application's DATABASE_URL, e.g. "server_side_binding=true"
    embedded: bool = False  # True: no DATABASE_URL, the embedded SQLite under data_dir

    @property
    def url(self) -> str:
        """For psycopg (the benchmark's own connections)."""
        return database_url(self.db_name)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "mazevault.sqlite3"

    def query(self, sql: str) -> list[tuple]:
        """Run a read-only query on the benchmark database (PostgreSQL or the embedded SQLite)."""
        if self.embedded:
            import sqlite3

            with sqlite3.connect(self.sqlite_path) as conn:
                return conn.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(sql).fetchall()

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_", "MAZEVAULT_", "DJANGO_", "DB_CONN"))}
        env.update({
            "MAZEVAULT_DATA_DIR": str(self.data_dir),
            # The API throttle counts, as in production, at a limit the load never reaches; the
            # caller may override (``extra``), e.g. with REDIS_URL for the production shape.
            "MAZEVAULT_RATE_LIMIT_API": "10000000/min",
            "DB_CONN_MAX_AGE": "600",  # persistent connections, as in production
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        if not self.embedded:
            env["DATABASE_URL"] = self.url + (f"?{self.db_options}" if self.db_options else "")
        env.update(self.extra)
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.environ(),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout


@contextmanager
def bench_database(name: str, *, keep: bool = False, extra_env: dict[str, str] | None = None,
                   db_options: str = "") -> Iterator[AppEnv]:
    """Create database ``name``, migrate it, yield its AppEnv; drop it afterwards unless ``keep``."""
    create_database(name)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as data_dir:
        env = AppEnv(db_name=name, data_dir=Path(data_dir), extra=dict(extra_env or {}), db_options=db_options)
        try:
            env.manage("migrate", "--noinput", "-v", "0")
            yield env
        finally:
            if keep:
                print(f"(kept database {name}; drop it with: DROP DATABASE \"{name}\")")
            else:
                drop_database(name)


@contextmanager
def embedded_database(name: str, *, extra_env: dict[str, str] | None = None) -> Iterator[AppEnv]:
    """The embedded default (SQLite in a fresh data directory, no Redis), migrated."""
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as data_dir:
        env = AppEnv(db_name=name, data_dir=Path(data_dir), extra=dict(extra_env or {}), embedded=True)
        env.manage("migrate", "--noinput", "-v", "0")
        yield env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str = "sync"  # "sync" or "gthread"
    workers: int = 3
    threads: int = 1

    def __str__(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread {self.workers}w x {self.threads}t"
        return f"{self.worker_class} {self.workers}w"


class Gunicorn:
    """``gunicorn mazevault.wsgi`` on 127.0.0.1, started and stopped by this process only."""

    def __init__(self, env: AppEnv, config: ServerConfig) -> None:
        self.env, self.config, self.port = env, config, free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        # The project's own gunicorn configuration (as deployed), with the worker model under test.
        cmd = [PYTHON, "-m", "gunicorn", "-c", str(ROOT / "mazevault" / "gunicorn.conf.py"),
               "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.config.workers),
               "--worker-class", self.config.worker_class, "--threads", str(self.config.threads),
               "--backlog", "2048", "--keep-alive", "30", "--max-requests", "0", "--log-level", "warning"]
        self.log = open(self.env.data_dir / f"gunicorn-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env.environ(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                status, _ = HttpConnection("127.0.0.1", self.port).request(
                    b"GET /api/v1/health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if status in (200, 503):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise SystemExit("gunicorn did not answer within 30 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def pids(self) -> list[int]:
        """The master and its workers."""
        assert self.proc is not None
        return [self.proc.pid, *children_of(self.proc.pid)]


# --- CPU accounting from /proc --------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def backend_pids(db_name: str) -> list[int]:
    """PostgreSQL backends serving ``db_name`` (the server's persistent connections)."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name])]


class CpuMeter:
    """CPU seconds spent by the server, by its PostgreSQL backends and by this (client) process over
    a window (backends that connect during the window are not counted: warm the server up first)."""

    def __init__(self, server: Gunicorn) -> None:
        self.server = server

    def _sample(self) -> tuple[float, float, float, float]:
        server = sum(process_cpu(p) for p in self.server.pids())
        pg = sum(process_cpu(p) for p in self.backends)
        return server, pg, time.process_time(), time.perf_counter()

    def __enter__(self) -> "CpuMeter":
        self.backends = [] if self.server.env.embedded else backend_pids(self.server.env.db_name)
        self.start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        self.server_s, self.pg_s, self.client_s, self.wall_s = (e - s for e, s in zip(end, self.start))

    def summary(self, n: int) -> str:
        per = 1000.0 / max(n, 1)
        return (f"CPU/request: server {self.server_s * per:.2f} ms, postgres {self.pg_s * per:.2f} ms, "
                f"client {self.client_s * per:.2f} ms  (cores busy: "
                f"{(self.server_s + self.pg_s + self.client_s) / self.wall_s:.2f} of {os.cpu_count()})")


# --- A small keep-alive HTTP/1.1 client -----------------------------------------------------------
class HttpConnection:
    """Raw-socket HTTP/1.1: one pre-encoded request in, (status, body) out.

    Deliberately tiny so the load generator costs a fraction of what the server does; it
    reconnects when the server closes the connection (gunicorn's sync workers do so after every
    response).
    """

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, raw: bytes) -> tuple[int, bytes]:
        fresh = self.sock is None
        sock = self.sock or self._connect()
        try:
            sock.sendall(raw)
            return self._response()
        except (ConnectionError, _Closed):
            self.close()
            if fresh:
                raise
            return self.request(raw)  # the server closed an idle keep-alive connection: retry once

    def _response(self) -> tuple[int, bytes]:
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _Closed()
            buf += chunk
        head = buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length, close = 0, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body_start = end + 4
        while len(buf) - body_start < length:
            chunk = self.sock.recv(max(65536, length))
            if not chunk:
                raise _Closed()
            buf += chunk
        body = buf[body_start:body_start + length]
        self.buf = buf[body_start + length:]
        if close:
            self.close()
        return status, body


class _Closed(Exception):
    pass


def http_request(method: str, path: str, *, token: str = "", body: dict | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class LoadResult:
    clients: int
    n: int
    wall_s: float
    latencies_ms: list[float]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.n / self.wall_s

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def run_load(port: int, requests: list[bytes], clients: int, expect: int) -> LoadResult:
    """Send ``requests`` (each once) over ``clients`` keep-alive connections, as fast as answers come."""
    lock = threading.Lock()
    queue = iter(requests)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start_barrier = threading.Barrier(clients + 1)

    def worker(slot: int) -> None:
        conn = HttpConnection("127.0.0.1", port)
        mine = latencies[slot]
        start_barrier.wait()
        while True:
            with lock:
                raw = next(queue, None)
            if raw is None:
                break
            t0 = time.perf_counter()
            try:
                status, body = conn.request(raw)
            except OSError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            mine.append((time.perf_counter() - t0) * 1000.0)
            if status != expect and len(errors) < 20:
                errors.append(f"HTTP {status}: {body[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [x for per in latencies for x in per]
    return LoadResult(clients=clients, n=len(flat), wall_s=wall, latencies_ms=flat, errors=errors)
