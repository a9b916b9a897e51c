"""``/api/schema/?format=json`` answers JSON (issue 6); YAML stays the default. Only the schema view
honours ``?format=``: elsewhere it selects a body, not a renderer."""
from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient


@pytest.mark.django_db
def test_schema_format_json_is_json():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/certificates" in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/certificates"]["get"]["parameters"]}
    assert {"serial_number", "fingerprint_sha256", "san", "san_contains", "source"} <= params


@pytest.mark.django_db
def test_schema_default_and_format_yaml_are_yaml():
    for query in ({}, {"format": "yaml"}):
        response = APIClient().get("/api/schema/", query)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/vnd.oai.openapi")
        assert response.content.startswith(b"openapi: 3.")


@pytest.mark.django_db
def test_schema_unknown_format_is_400():
    response = APIClient().get("/api/schema/", {"format": "xml"})
    assert response.status_code == 400 and response.json()["details"]["field"] == "format"
