"""Gunicorn configuration for the MazeVault web process.

Used as ``gunicorn -c mazevault/gunicorn.conf.py`` by ``manage.py run_embedded``, the Dockerfile and the
deployment docs. It reads no environment variable itself: gunicorn's own conventions apply on top of it
(``PORT`` makes the default bind ``0.0.0.0:$PORT``, ``WEB_CONCURRENCY`` sets the number of worker
processes, ``GUNICORN_CMD_ARGS`` adds any flag), and command-line flags win over this file.

Invariants:
- Workers are threaded (``gthread``): a worker process loads each CA key once and signs for many
  requests, so the per-process key cache pays off; nothing else is kept in a process (DESIGN.md).
- The application is not preloaded in the master, so no database connection or key material is
  ever shared across a fork.
- Logs go to stdout/stderr (12-factor); access logs carry the request id set by the middleware.
"""
from __future__ import annotations

wsgi_app = "mazevault.wsgi:application"

worker_class = "gthread"
threads = 4
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
