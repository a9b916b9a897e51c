"""Connection health checks off the hot path.

``CONN_HEALTH_CHECKS`` makes Django send ``SELECT 1`` before the first query of every request on a
persistent connection: a round trip per request, on every request. A connection is likely to be
dead only after it sat idle (the server restarted, a failover happened, a firewall or pooler
dropped it during a quiet spell). So: a connection used by a request that finished less than
``IDLE_SECONDS`` ago skips the check; one idle for longer is checked once, as Django does. A
connection that breaks under load is still caught: Django closes it at the end of the request
that saw the error (``close_if_unusable_or_obsolete``).
"""
from __future__ import annotations

import time

from django.core.signals import request_finished, request_started
from django.db import connections

IDLE_SECONDS = 5.0


def _skip_check_if_recently_used(**kwargs) -> None:
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        last = getattr(connection, "_mv_last_request_end", None)
        if connection.connection is not None and last is not None and now - last < IDLE_SECONDS:
            connection.health_check_done = True


def _note_request_end(**kwargs) -> None:
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            connection._mv_last_request_end = now


def install() -> None:
    """Connect after Django's own ``close_old_connections`` (connected when django.db loads), so
    that Django has reset ``health_check_done`` before this decides whether to skip the check."""
    request_started.connect(_skip_check_if_recently_used, dispatch_uid="mv-dbhealth-started")
    request_finished.connect(_note_request_end, dispatch_uid="mv-dbhealth-finished")
