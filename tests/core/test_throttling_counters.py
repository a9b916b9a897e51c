"""mazevault/throttling.py: the ``hit`` primitive on each store (one statement on the database,
one Redis call), windows, and the failure direction when Redis is unreachable (API limits open,
authentication limits closed: they fall back to the database, and refuse if that fails too)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mazevault import throttling
from mazevault.models import RateCounter


@pytest.fixture
def no_redis(settings):
    settings.REDIS_URL = ""


def test_hit_counts_to_the_limit_in_one_statement(db, no_redis):
    with CaptureQueriesContext(connection) as captured:
        results = [throttling.hit("t:one", 3, 60) for _ in range(4)]
    assert len(captured.captured_queries) == 4  # one upsert per hit, nothing else
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[-1].retry_after > 0 and results[0].retry_after == 0
    assert RateCounter.objects.get(key="t:one").count == 4


def test_a_new_window_starts_from_one(db, no_redis, monkeypatch):
    now = [1_000_020.0]
    monkeypatch.setattr(throttling.time, "time", lambda: now[0])
    assert throttling.hit("t:w", 1, 60).allowed
    assert not throttling.hit("t:w", 1, 60).allowed
    now[0] += 60
    assert throttling.hit("t:w", 1, 60).allowed  # the same row, reset by the upsert
    assert RateCounter.objects.filter(key="t:w").count() == 1


def test_peek_does_not_count(db, no_redis):
    throttling.hit("t:p", 2, 60)
    assert throttling.peek("t:p", 2, 60).allowed
    assert RateCounter.objects.get(key="t:p").count == 1
    throttling.hit("t:p", 2, 60)
    assert not throttling.peek("t:p", 2, 60).allowed


class _DeadRedis:
    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise throttling.StoreUnavailable("connection refused")


def test_redis_down_api_limits_fail_open(db, settings, monkeypatch, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(throttling, "_redis_count", _DeadRedis())
    monkeypatch.setattr(throttling, "_last_warning", 0.0)
    results = [throttling.hit("t:api", 1, 60, fail_open=True) for _ in range(3)]
    assert all(r.allowed for r in results)
    assert not RateCounter.objects.exists()  # not counted anywhere
    assert "API limits not counted" in caplog.text


def test_redis_down_auth_limits_count_in_the_database(db, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(throttling, "_redis_count", _DeadRedis())
    results = [throttling.hit("t:auth", 2, 60, fail_open=False) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert RateCounter.objects.get(key="t:auth").count == 3


def test_every_store_down_auth_limits_refuse(db, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(throttling, "_redis_count", _DeadRedis())

    def db_down(*args, **kwargs):
        raise throttling.StoreUnavailable("database down")

    monkeypatch.setattr(throttling, "_db_count", db_down)
    refused = throttling.hit("t:auth", 10, 60, fail_open=False)
    assert not refused.allowed and refused.retry_after > 0
    assert throttling.hit("t:api", 10, 60, fail_open=True).allowed


@pytest.mark.django_db(transaction=True)
def test_database_errors_become_store_unavailable(no_redis, monkeypatch):
    monkeypatch.setattr(RateCounter._meta, "db_table", "mazevault_no_such_table")
    with pytest.raises(throttling.StoreUnavailable):
        throttling._db_count("k", 0, True)
    assert throttling.hit("k", 5, 60, fail_open=True).allowed  # API limits: open
    assert not throttling.hit("k", 5, 60, fail_open=False).allowed  # authentication limits: closed


@pytest.mark.skipif("not __import__('django.conf').conf.settings.REDIS_URL",
                    reason="set REDIS_URL to test the Redis counter")
def test_redis_counter_is_one_call_and_expires(db, settings):
    import redis

    results = [throttling.hit("t:redis", 2, 60) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = client.keys("mv:rl:t:redis:*")
    assert len(keys) == 1 and 0 < client.ttl(keys[0]) <= 61


def test_purge_removes_old_windows(db, no_redis, monkeypatch):
    throttling.hit("t:old", 5, 60)
    monkeypatch.setattr(throttling.time, "time", lambda: 10**10)
    throttling.hit("t:new", 5, 60)
    assert throttling.purge_stale() == 1
    assert list(RateCounter.objects.values_list("key", flat=True)) == ["t:new"]


def test_parse_rate():
    assert throttling.parse_rate("100/min") == (100, 60)
    assert throttling.parse_rate("10/s") == (10, 1)
    assert throttling.parse_rate("5/hour") == (5, 3600)
    assert throttling.parse_rate("") is None
