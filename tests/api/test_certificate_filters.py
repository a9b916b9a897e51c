"""Issue 6: the certificate list refuses unknown query parameters (400 naming them) and filters by
serial number, SHA-256 fingerprint, SAN (exact and substring) and source."""
from __future__ import annotations

import pytest

from certificates.models import Certificate, CertificateSource
from tests.factories import assert_error, issued

URL = "/api/v1/certificates"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [c["id"] for c in response.json()["data"]]


@pytest.fixture
def two(tenant):
    first = issued(tenant.client(), tenant, cn="alpha", dns=["alpha.acme.test", "api.alpha.acme.test"])
    second = issued(tenant.client(), tenant, cn="beta", dns=["beta.acme.test"])
    return first, second


@pytest.mark.parametrize("query, field", [
    ({"serial_numbr": "01"}, "serial_numbr"),
    ({"commonname": "alpha"}, "commonname"),
    ({"san_exact": "x"}, "san_exact"),
])
def test_unknown_query_parameter_is_400_naming_it(tenant, two, query, field):
    body = assert_error(tenant.client().get(URL, query), 400, "VALIDATION_ERROR", field)
    assert body["details"]["unknown"] == [field]
    assert "serial_number" in body["details"]["allowed"]


def test_pagination_ordering_and_format_stay_allowed(tenant, two):
    response = tenant.client().get(URL, {"page": 1, "per_page": 1, "ordering": "-requested_at", "format": "json"})
    assert response.status_code == 200 and len(response.json()["data"]) == 1


def test_other_lists_refuse_unknown_parameters_too(tenant):
    for url in ("/api/v1/projects", "/api/v1/organizations", "/api/v1/users/tokens", "/api/v1/ca",
                "/api/v1/certificate-templates", "/api/v1/audit-logs"):
        assert_error(tenant.client().get(url, {"nonsense": "1"}), 400, "VALIDATION_ERROR", "nonsense")
        assert tenant.client().get(url, {"per_page": 5}).status_code == 200


def test_serial_number_in_colon_hex_or_plain_hex_any_case(tenant, two):
    first, _ = two
    serial = first["serial_number"]
    for spelling in (serial, serial.lower(), serial.replace(":", ""), serial.replace(":", "").lower(),
                     "0x" + serial.replace(":", "")):
        assert ids(tenant.client().get(URL, {"serial_number": spelling})) == [first["id"]], spelling
    assert ids(tenant.client().get(URL, {"serial_number": "01:02"})) == []
    assert_error(tenant.client().get(URL, {"serial_number": "xyz"}), 400, "VALIDATION_ERROR", "serial_number")


def test_fingerprint_sha256_with_or_without_colons(tenant, two):
    first, second = two
    fingerprint = Certificate.objects.get(pk=second["id"]).fingerprint_sha256
    for spelling in (fingerprint, fingerprint.replace(":", "").lower()):
        assert ids(tenant.client().get(URL, {"fingerprint_sha256": spelling})) == [second["id"]]
    assert_error(tenant.client().get(URL, {"fingerprint_sha256": "AB:CD"}), 400, "VALIDATION_ERROR",
                 "fingerprint_sha256")


def test_san_exact_and_substring(tenant, two):
    first, second = two
    client = tenant.client()
    assert ids(client.get(URL, {"san": "api.alpha.acme.test"})) == [first["id"]]
    assert ids(client.get(URL, {"san": "API.Alpha.acme.test"})) == [first["id"]]
    assert ids(client.get(URL, {"san": "alpha.acme"})) == []  # exact: a part of a name is not the name
    assert sorted(ids(client.get(URL, {"san_contains": "acme.test"}))) == sorted([first["id"], second["id"]])
    assert ids(client.get(URL, {"san_contains": "BETA."})) == [second["id"]]
    assert ids(client.get(URL, {"san_contains": "100%_"})) == []


def test_san_search_follows_the_stored_sans(tenant, two):
    first, _ = two
    Certificate.objects.filter(pk=first["id"]).update(san=["renamed.acme.test"])
    assert ids(tenant.client().get(URL, {"san": "renamed.acme.test"})) == [first["id"]]
    assert ids(tenant.client().get(URL, {"san": "alpha.acme.test"})) == []


def test_source(tenant, two):
    first, second = two
    Certificate.objects.filter(pk=first["id"]).update(source=CertificateSource.IMPORT)
    assert ids(tenant.client().get(URL, {"source": "import"})) == [first["id"]]
    assert ids(tenant.client().get(URL, {"source": "request"})) == [second["id"]]
    assert_error(tenant.client().get(URL, {"source": "telepathy"}), 400, "VALIDATION_ERROR", "source")


def test_filters_stay_tenant_scoped(tenant, other_tenant, two):
    first, _ = two
    assert ids(other_tenant.client().get(URL, {"serial_number": first["serial_number"]})) == []
    assert ids(other_tenant.client().get(URL, {"san": "alpha.acme.test"})) == []


@pytest.mark.parametrize("query", [{}, {"san": "alpha.acme.test"}, {"san_contains": "acme", "source": "request"},
                                   {"serial_number": "01:02"}, {"fingerprint_sha256": "ab" * 32}])
def test_a_filtered_list_page_stays_three_statements(tenant, two, django_assert_max_num_queries, query):
    """Token, roles, one page (a page with room to spare needs no count): the filters add none."""
    client = tenant.client()
    client.get(URL)  # warm: last_used_at was just written
    with django_assert_max_num_queries(3):
        assert client.get(URL, query).status_code == 200


def test_san_filters_use_the_trigram_index_on_postgresql(tenant, two):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the pg_trgm index exists on PostgreSQL only (SQLite scans)")
    queryset = Certificate.objects.filter(san_search__contains='"alpha.acme.test"').order_by()
    with connection.cursor() as cursor:
        # A handful of rows: make the planner show that the index can serve the LIKE at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = queryset.explain()
    assert "cert_san_search_trgm_idx" in plan, plan
