"""End-to-end smoke: an uploaded CSR under an auto-approved template is issued and chains."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import make_csr


@pytest.mark.django_db
def test_auto_approved_upload_is_issued_and_verifies_with_openssl(tenant, tmp_path):
    response = tenant.client().post("/api/v1/certificates/csr", {
        "template_id": str(tenant.templates["client-auth"].pk), "project_id": str(tenant.project.pk),
        "csr_source_mode": "uploaded", "csr_pem": make_csr("client-1"),
    }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "active"
    (tmp_path / "root.pem").write_text(tenant.root.certificate_pem)
    (tmp_path / "issuing.pem").write_text(tenant.issuing.certificate_pem)
    (tmp_path / "leaf.pem").write_text(body["certificate_pem"])
    result = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "root.pem", "-untrusted",
                             tmp_path / "issuing.pem", tmp_path / "leaf.pem"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")
