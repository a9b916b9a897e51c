"""Issue 6, defect 1: using a CA to sign (as a new CA's parent, as a template's issuer) needs ca:admin
on that CA's own scope, in the API and in the admin. A project-level admin holds ca:admin on the
project only, so an organization-wide CA is out of reach: no intermediate under it, no template
(auto-approve, any names) pointing at it, no edit of a template that issues from it."""
from __future__ import annotations

import pytest
from django.urls import reverse

from certificates import services as cert_services
from certificates.models import CertificateAuthority, CertificateTemplate
from tests.admin.conftest import change_url, operator
from tests.factories import assert_denied, last_seq, unchanged

CA_URL = "/api/v1/ca"
TEMPLATE_URL = "/api/v1/certificate-templates"


@pytest.fixture
def org_cas(tenant):
    """An organization-wide root and an organization-wide issuing CA under it (project None)."""
    root = cert_services.create_ca(cert_services.CASpec(
        name="Org Root", path_length=1, subject={"common_name": "Acme Org Root"}), actor=tenant.admin,
        organization=tenant.org)
    issuing = cert_services.create_ca(cert_services.CASpec(
        name="Org Issuing", path_length=0, subject={"common_name": "Acme Org Issuing"}), actor=tenant.admin,
        organization=tenant.org, parent=root)
    return root, issuing


def intermediate(tenant, parent, name="Team CA"):
    return {"name": name, "kind": "intermediate", "project_id": str(tenant.project.pk), "parent_id": str(parent.pk),
            "subject": {"common_name": name}, "path_length": 0}


def template(tenant, ca, name="team-anything"):
    return {"name": name, "project_id": str(tenant.project.pk), "ca_id": str(ca.pk), "key_algorithms": ["ec-p256"],
            "san_types": ["dns_names"], "key_usage": ["digitalSignature"], "extended_key_usage": ["serverAuth"],
            "auto_approve": True}


def test_project_admin_cannot_create_an_intermediate_under_an_organization_root(tenant, org_cas):
    root, _ = org_cas
    user, _, client = tenant.user("project_admin")
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = client.post(CA_URL, intermediate(tenant, root), format="json")
    event = assert_denied(response, "ca:admin", user, seq)
    assert response.json()["details"]["field"] == "parent_id"
    assert event.entity_id == str(root.pk)
    # The organization's admin may; and the project admin may under the project's own root.
    assert tenant.client().post(CA_URL, intermediate(tenant, root), format="json").status_code == 201
    response = client.post(CA_URL, {**intermediate(tenant, tenant.root, "Team CA 2"), "path_length": None},
                           format="json")
    assert response.status_code == 201, response.json()


def test_project_template_write_cannot_point_a_template_at_an_organization_ca(tenant, org_cas):
    _, org_issuing = org_cas
    user, _, client = tenant.user("project_admin")
    seq = last_seq()
    with unchanged(audit=("rbac.permission.denied",)):
        response = client.post(TEMPLATE_URL, template(tenant, org_issuing), format="json")
    assert_denied(response, "ca:admin", user, seq)
    assert response.json()["details"]["field"] == "ca_id"
    # The project's own issuing CA is fine.
    assert client.post(TEMPLATE_URL, template(tenant, tenant.issuing), format="json").status_code == 201
    # Nor may it re-point an existing template, or rewrite one that issues from the organization CA.
    own = CertificateTemplate.objects.get(name="team-anything")
    with unchanged(own, audit=("rbac.permission.denied",)):
        response = client.patch(f"{TEMPLATE_URL}/{own.pk}", {"ca_id": str(org_issuing.pk)}, format="json")
    assert response.status_code == 403
    by_org_admin = tenant.client().post(TEMPLATE_URL, template(tenant, org_issuing, "org-issued"), format="json")
    assert by_org_admin.status_code == 201, by_org_admin.json()
    org_issued = CertificateTemplate.objects.get(pk=by_org_admin.json()["id"])
    with unchanged(org_issued, audit=("rbac.permission.denied",)):
        response = client.patch(f"{TEMPLATE_URL}/{org_issued.pk}", {"san_patterns": {}}, format="json")
    assert response.status_code == 403


def test_admin_template_form_refuses_an_organization_ca_for_a_project_admin(tenant, org_cas):
    from tests.admin.test_admin_core import _template_form

    _, org_issuing = org_cas
    _, client = operator(tenant, "project_admin", "pa-console")
    add = reverse("admin:certificates_certificatetemplate_add")
    form = client.get(add).context["adminform"].form
    assert org_issuing.pk not in {ca.pk for ca in form.fields["ca"].queryset}
    with unchanged():
        refused = client.post(add, _template_form(tenant, ca=str(org_issuing.pk)))
    assert refused.status_code == 200 and "ca" in refused.context["adminform"].form.errors
    accepted = client.post(add, _template_form(tenant))
    assert accepted.status_code == 302, accepted.context["adminform"].form.errors


def test_admin_refuses_editing_a_template_issued_by_an_organization_ca(tenant, org_cas):
    from certificates.admin import TemplateForm

    _, org_issuing = org_cas
    user, client = operator(tenant, "project_admin", "pa-editor")
    shared = tenant.templates["client-auth"]
    CertificateTemplate.objects.filter(pk=shared.pk).update(ca=org_issuing)
    shared.refresh_from_db()
    page = client.get(change_url(shared))
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("on" if v is True else v) for k, v in data.items() if v not in (None, False)}
    data["ca"] = str(org_issuing.pk)
    data["auto_approve"] = "on"
    seq = last_seq()
    with unchanged(shared, audit=("rbac.permission.denied",)):
        response = client.post(change_url(shared), data)
    assert response.status_code == 200
    assert "ca" in response.context["adminform"].form.errors
    assert issubclass(type(response.context["adminform"].form), TemplateForm)
