"""Issue 6, defect 5: template patterns are matched by RE2 (linear time, no backtracking), and a
pattern RE2 cannot run is refused when the template is saved (400 naming the field, in the API;
a form error in the admin), never discovered at request time. One rule for both faces:
``CertificateTemplate.clean()``."""
from __future__ import annotations

import threading

import pytest
from django.urls import reverse

from certificates import policy
from certificates.models import CertificateTemplate
from tests.factories import assert_error, submit, unchanged

URL = "/api/v1/certificate-templates"
# Exponential for a backtracking engine on "a" * n + "!" (each extra "a" doubles the work).
EVIL = "(a|aa)+b"


def body(tenant, **extra):
    return {"name": "patterned", "project_id": str(tenant.project.pk), "ca_id": str(tenant.issuing.pk),
            "key_algorithms": ["ec-p256"], "subject_policy": {"common_name": {"required": True}},
            "san_types": ["dns_names"], "key_usage": ["digitalSignature"], "extended_key_usage": ["clientAuth"],
            "auto_approve": True, **extra}


@pytest.mark.parametrize("extra, field", [
    ({"subject_policy": {"common_name": {"pattern": "(?=svc)[a-z]+"}}}, "subject_policy"),
    ({"subject_policy": {"common_name": {"pattern": r"(a)\1"}}}, "subject_policy"),
    ({"san_patterns": {"dns_names": [r"[a-z]+\.internal", "(?<!x)y"]}}, "san_patterns"),
    ({"san_patterns": {"dns_names": ["((a{100}){100}){100}"]}}, "san_patterns"),
])
def test_a_pattern_re2_cannot_run_is_refused_at_save(tenant, extra, field):
    with unchanged():
        response = tenant.client().post(URL, body(tenant, **extra), format="json")
    data = assert_error(response, 400, "VALIDATION_ERROR", field)
    assert "RE2" in data["details"]["fields"][field][0], data


def test_the_same_rule_refuses_it_on_update(tenant):
    created = tenant.client().post(URL, body(tenant), format="json").json()
    template = CertificateTemplate.objects.get(pk=created["id"])
    with unchanged(template):
        response = tenant.client().patch(f"{URL}/{template.pk}", {"san_patterns": {"dns_names": ["(?=a)a"]}},
                                         format="json")
    assert_error(response, 400, "VALIDATION_ERROR", "san_patterns")


def test_the_admin_form_refuses_it_too(tenant, django_user_model):
    from tests.admin.conftest import login
    from tests.admin.test_admin_core import _template_form

    root_client = login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))

    add = reverse("admin:certificates_certificatetemplate_add")
    with unchanged():
        response = root_client.post(add, _template_form(tenant, subject_policy='{"common_name": {"pattern": "(?=a)a"}}',
                                                        san_patterns='{"dns_names": ["(x)\\\\1"]}'))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"subject_policy", "san_patterns"}, errors
    assert "RE2" in errors["subject_policy"][0] and "dns_names[0]" in errors["san_patterns"][0]


def test_matching_is_linear_so_a_hostile_pattern_cannot_stall_a_request(tenant):
    """With a backtracking engine this check would need ~2^60 steps and never finish; RE2 answers
    at once. The generous join bounds "finishes at all", it is not a speed measurement."""
    template = CertificateTemplate(subject_policy={"common_name": {"pattern": EVIL}})
    violations = policy.Violations()
    worker = threading.Thread(target=policy.check_subject,
                              args=(template, {"common_name": "a" * 60 + "!"}, violations), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "pattern matching backtracks"
    assert [v["code"] for v in violations.items] == ["subject_pattern_mismatch"]


def test_a_request_against_a_hostile_pattern_is_an_ordinary_422(tenant):
    created = tenant.client().post(URL, body(tenant, subject_policy={"common_name": {"pattern": EVIL}}),
                                   format="json")
    assert created.status_code == 201, created.json()
    tenant.templates["patterned"] = CertificateTemplate.objects.get(pk=created.json()["id"])
    with unchanged():
        response = submit(tenant.client(), tenant, "patterned", cn="a" * 60 + "!")
    violation = assert_error(response, 422, "POLICY_VIOLATION", "requested_subject.common_name")
    assert violation["details"]["violations"][0]["code"] == "subject_pattern_mismatch"
    ok = submit(tenant.client(), tenant, "patterned", cn="aaab")
    assert ok.status_code == 201 and ok.json()["status"] == "active"


def test_a_stored_pattern_re2_refuses_allows_nothing(tenant):
    """A template saved before this rule (written directly) fails closed at request time."""
    template = CertificateTemplate(subject_policy={"common_name": {"pattern": "(?=a)a"}})
    violations = policy.Violations()
    policy.check_subject(template, {"common_name": "a"}, violations)
    assert [v["code"] for v in violations.items] == ["subject_pattern_mismatch"]
