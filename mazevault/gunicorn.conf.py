"""Gunicorn configuration for the MazeVault web process.

Used as ``gunicorn -c mazevault/gunicorn.conf.py`` by ``manage.py run_embedded``, the Dockerfile and the
deployment docs. It reads only ``WEB_CONCURRENCY`` itself: gunicorn's own conventions apply on top of it
(``PORT`` makes the default bind ``0.0.0.0:$PORT``, ``WEB_CONCURRENCY`` sets the number of worker
processes, ``GUNICORN_CMD_ARGS`` adds any flag), and command-line flags win over this file.

Invariants:
- Processes, not threads, carry the concurrency: issuance is CPU-bound (CSR parsing, policy checks,
  signing, serialisation) and threads only contend for the GIL (bench/issue_rest.py --sweep: sync or
  one-thread workers beat 2-4 threads per worker on 2 cores). ``gthread`` with one thread keeps
  HTTP keep-alive, which plain ``sync`` workers lack. Each worker process loads each CA key once and
  signs for many requests; nothing else is kept in a process (DESIGN.md).
- The application is not preloaded in the master, so no database connection or key material is
  ever shared across a fork.
- Logs go to stdout/stderr (12-factor); access logs carry the request id set by the middleware.
"""
from __future__ import annotations

import multiprocessing
import os

wsgi_app = "mazevault.wsgi:application"

worker_class = "gthread"
threads = 1
# gunicorn's own default is one worker; WEB_CONCURRENCY (gunicorn's convention) still wins.
workers = int(os.environ.get("WEB_CONCURRENCY") or (multiprocessing.cpu_count() + 1))
preload_app = False

# A CSR submission signs synchronously; anything slower than this is a stuck worker.
timeout = 60
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then so a slow leak in a dependency cannot grow without bound.
max_requests = 5000
max_requests_jitter = 500

accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'

# Gunicorn 27's control socket lives at one per-user path: two instances on a host (replicas, tests,
# `make run` beside a bench) would fight over it, and nothing here uses it.
control_socket_disable = True
