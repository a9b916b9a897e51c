"""List pagination at scale (mazevault/api/pagination.py): the capped count, deep pages read by
key first, and a total order that never repeats or skips a row across pages."""
from __future__ import annotations

import pytest
from django.utils import timezone

from certificates.models import Certificate
from mazevault.api import pagination
from tests.factories import issued

URL = "/api/v1/certificates"


@pytest.fixture
def five(tenant) -> list[str]:
    """Five issued certificates, all with the same requested_at (only the id orders them)."""
    client = tenant.client()
    made = [issued(client, tenant, cn=f"page-{i}")["id"] for i in range(5)]
    Certificate.objects.filter(pk__in=made).update(requested_at=timezone.now())
    return made


def test_total_is_exact_up_to_the_limit(tenant, five, monkeypatch):
    monkeypatch.setattr(pagination.PagePagination, "count_limit", 5)
    body = tenant.client().get(URL, {"per_page": 2}).json()
    assert body["pagination"] == {"page": 1, "per_page": 2, "total": 5}


def test_total_beyond_the_limit_is_a_flagged_lower_bound(tenant, five, monkeypatch):
    monkeypatch.setattr(pagination.PagePagination, "count_limit", 3)
    client = tenant.client()
    body = client.get(URL, {"per_page": 2}).json()
    assert body["pagination"] == {"page": 1, "per_page": 2, "total": 3, "total_capped": True}
    assert len(body["data"]) == 2
    # Pages past the counted rows are still served: the cap limits the count, not the list.
    assert len(client.get(URL, {"per_page": 2, "page": 3}).json()["data"]) == 1
    assert client.get(URL, {"per_page": 2, "page": 4}).json()["data"] == []


def test_a_short_first_page_is_its_own_total(tenant, five, monkeypatch):
    monkeypatch.setattr(pagination.PagePagination, "count_limit", 1)  # a count would cap at 1
    body = tenant.client().get(URL, {"per_page": 10}).json()
    assert body["pagination"] == {"page": 1, "per_page": 10, "total": 5}


@pytest.mark.parametrize("deferred_from", [0, 10**9])
def test_pages_walk_the_list_once_in_order(tenant, five, monkeypatch, deferred_from):
    """Ties on requested_at are broken by id, with and without the key-first deep-page read."""
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_OFFSET", deferred_from)
    client = tenant.client()
    walked = [c["id"] for page in range(1, 6) for c in client.get(URL, {"per_page": 1, "page": page}).json()["data"]]
    assert walked == sorted(five, reverse=True)
    assert [c["id"] for c in client.get(URL, {"per_page": 2, "page": 2}).json()["data"]] == walked[2:4]


def test_absurd_page_numbers_are_empty_pages(tenant, five):
    body = tenant.client().get(URL, {"page": 10**30}).json()
    assert body["data"] == [] and body["pagination"]["total"] == 5
