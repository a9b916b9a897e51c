"""Whatever a client sends, the answer is a 4xx in the error shape, never a 500, and nothing is written."""
from __future__ import annotations

import pytest

from tests.factories import csr_body, unchanged

JUNK = [
    [], "text", None, 7, {"name": {"nested": True}}, {"name": "nul\u0000byte"}, {"name": "x" * 10000},
    {"name": ["a"], "organization_id": 12, "project_id": [], "ca_id": {}, "template_id": True},
    {"required_approvals": 2 ** 70, "validity_days": -2 ** 70, "crl_full_validity_hours": 1e308},
    {"subject": {"common_name": "nul\u0000"}, "key_algorithms": [None], "scopes": [{}]},
]


def endpoints(tenant) -> list[tuple[str, str]]:
    cert = "00000000-0000-4000-8000-000000000000"
    return [
        ("post", "/api/v1/organizations"), ("put", f"/api/v1/organizations/{tenant.org.pk}"),
        ("post", "/api/v1/projects"), ("put", f"/api/v1/projects/{tenant.project.pk}"),
        ("post", f"/api/v1/projects/{tenant.project.pk}/approval-policies"),
        ("post", "/api/v1/users/tokens"),
        ("post", "/api/v1/ca"), ("put", f"/api/v1/ca/{tenant.issuing.pk}"),
        ("post", "/api/v1/certificate-templates"),
        ("put", f"/api/v1/certificate-templates/{tenant.templates['web-server'].pk}"),
        ("post", "/api/v1/certificates/csr"), ("put", f"/api/v1/certificates/{cert}"),
        ("post", f"/api/v1/certificates/{cert}/approve"), ("post", f"/api/v1/certificates/{cert}/reject"),
    ]


@pytest.mark.parametrize("junk", JUNK, ids=lambda j: repr(j)[:40])
def test_junk_bodies_are_client_errors(tenant, junk):
    client = tenant.client()
    for method, path in endpoints(tenant):
        # Creating an organization is for platform administrators: the org admin's attempt is a denial.
        audit = ("rbac.permission.denied",) if (method, path) == ("post", "/api/v1/organizations") else ()
        with unchanged(tenant.org, tenant.project, tenant.issuing, tenant.templates["web-server"], audit=audit):
            response = getattr(client, method)(path, junk, format="json")
        assert response.status_code < 500, (method, path, response.status_code, response.content[:300])
        if path.startswith("/api/v1/ca/") and response.status_code == 200:
            continue  # every CA property is optional: a body naming none of them changes nothing
        assert response.status_code >= 400, (method, path, response.status_code, response.content[:300])
        assert set(response.json()) == {"error", "message", "details"}, (method, path)


@pytest.mark.parametrize("change", [
    {"requested_cn": "nul\u0000"}, {"requested_subject": {"common_name": "a\u0000b"}},
    {"requested_san": {"dns_names": ["a\u0000.acme.test"]}}, {"requested_san": {"uris": ["\u0000"]}},
    {"name": "\u0000"}, {"labels": {"k": "\u0000"}}, {"generation_reference": "\u0000"},
    {"requested_subject": {"common_name": "x" * 65}}, {"requested_san": {"dns_names": ["a" * 300]}},
    {"requested_san": {"email_addresses": ["üñî@acme.test"]}}, {"requested_san": {"uris": ["not a uri"]}},
    {"requested_san": {"dns_names": ["ex\u00e4mple.acme.test"]}},
])
def test_odd_request_values_never_500(tenant, change):
    body = csr_body(tenant, "client-auth", csr_source_mode="mazevault_generated", requested_cn="odd",
                    requested_subject={"common_name": "odd"})
    body.pop("csr_pem", None)
    response = tenant.client().post("/api/v1/certificates/csr", {**body, **change}, format="json")
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert set(response.json()) == {"error", "message", "details"}


@pytest.mark.parametrize("path", ["/api/v1/certificates", "/api/v1/audit-logs", "/api/v1/ca", "/api/v1/projects",
                                  "/api/v1/certificate-templates"])
@pytest.mark.parametrize("params", [{"page": "99999999999999999999"}, {"per_page": "-5"}, {"common_name": "\u0000"},
                                    {"actor": "\u0000"}, {"entity_id": "x" * 5000}, {"ordering": "-"},
                                    {"ip_address": "not-an-ip"}])
def test_odd_query_parameters_never_500(tenant, path, params):
    response = tenant.client().get(path, params)
    assert response.status_code < 500, (path, params, response.content[:300])
