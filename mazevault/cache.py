"""Per-process caches of what the request path reads on every call and what changes rarely:
token -> user, user -> role assignments, projects, templates with their CA, CA certificates and
chains. docs/performance.md describes the design; this is its one implementation.

The guarantee: a change committed at time T (a token revoked, a role removed, a template or CA
edited) is seen by every process of every replica no later than T + ``POLL_SECONDS`` (plus the
duration of a request already running), and immediately by the process that made it.

How: one shared *stamp*, a single database row (``CacheStamp``) holding a random 63-bit value.
Every change to a cached table writes a fresh random value into it **in the same transaction as
the change** (``bump()``), so the stamp can never be lost, nor run ahead of or behind the commit.
Each process reads the stamp at most once per ``POLL_SECONDS``; when it differs from the value
its entries were filled under, the process drops them all. The value is random rather than a
counter so that a bump rolled back in one process can never coincide with a later committed bump
(a cache filled under the rolled-back value could otherwise be mistaken for current).

If the stamp cannot be read (the database errors), the cache is not trusted: ``memo`` calls the
loader, i.e. reads the database, and stores nothing. A revoked token is never accepted from memory
on the word of a stamp we could not check.

Writers: the models passed to ``apps.connect_cache_invalidation`` (users, tokens, role
assignments, organizations, projects, approval policies, CAs, templates) bump on
``post_save``/``post_delete``. ``QuerySet.update()`` sends no signal, so code that changes these tables with it
must call ``bump()`` itself (``services.revoke_token`` does).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable, Hashable, TypeVar

from django.db import DatabaseError, connections, router, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

POLL_SECONDS = 1.0  # the staleness bound for other processes (see the module docstring)
MAX_ENTRIES = 20_000  # per process; reaching it drops everything (the working set is small)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: int | None = None  # stamp the entries were filled under
        self.checked_until = 0.0  # monotonic time until which ``version`` is taken as current
        self.entries: dict[tuple[str, Hashable], Any] = {}


_state = _State()


def _read_stamp() -> int:
    from .models import CacheStamp

    alias = router.db_for_read(CacheStamp)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT version FROM {connections[alias].ops.quote_name(CacheStamp._meta.db_table)} "
                       "WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 0


def current_version() -> int | None:
    """The stamp (re-read when the last read is older than ``POLL_SECONDS``); None when it cannot
    be read, meaning: do not trust the cache."""
    now = time.monotonic()
    if now < _state.checked_until and _state.version is not None:
        return _state.version
    try:
        version = _read_stamp()
    except DatabaseError:
        logger.warning("cache stamp unreadable: serving from the database without the cache", exc_info=True)
        return None
    with _state.lock:
        if version != _state.version:
            _state.entries.clear()
            _state.version = version
        _state.checked_until = now + POLL_SECONDS
    return version


def memo(namespace: str, key: Hashable, loader: Callable[[], T]) -> T:
    """``loader()``'s value for (namespace, key), from this process's memory while the stamp has
    not moved. A loader returning None is not cached (misses are always re-read). Values are
    shared between requests: treat them as read-only."""
    version = current_version()
    if version is None:
        return loader()
    slot = (namespace, key)
    try:
        return _state.entries[slot]
    except KeyError:
        pass
    value = loader()
    if value is not None:
        with _state.lock:
            if _state.version == version:  # not flushed while we were loading
                if len(_state.entries) >= MAX_ENTRIES:
                    _state.entries.clear()
                _state.entries[slot] = value
    return value


def forget() -> None:
    """Drop this process's entries and re-read the stamp on next use."""
    with _state.lock:
        _state.entries.clear()
        _state.version = None
        _state.checked_until = 0.0


def bump(using: str | None = None) -> None:
    """Record that a cached table changed: a new random stamp, written in the caller's transaction
    (so it commits or rolls back with the change), and this process's entries dropped now and
    again at commit (a read between the two may have cached the row as it was before the change)."""
    from .models import CacheStamp

    alias = using or router.db_for_write(CacheStamp)
    connection = connections[alias]
    table = connection.ops.quote_name(CacheStamp._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET version = %s WHERE id = 1", [secrets.randbits(63)])
        if cursor.rowcount == 0:  # the migration creates the row; recreate it if someone removed it
            cursor.execute(f"INSERT INTO {table} (id, version) VALUES (1, %s)", [secrets.randbits(63)])
    forget()
    if connection.in_atomic_block:
        transaction.on_commit(forget, using=alias)
