"""Issue 6, defect 7 (second half): the console's role-assignment form looks usernames up only
among the accounts the operator may see: members of the target organization and accounts that
belong to no organization yet. Another tenant's user answers exactly like an unknown name."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from mazevault.models import RoleAssignment
from tests.admin.conftest import login
from tests.factories import unchanged

ADD = "admin:mazevault_roleassignment_add"


def grant(client, username, tenant, role="user"):
    return client.post(reverse(ADD), {"user": username, "role": role, "project": str(tenant.project.pk)})


def test_another_tenants_user_is_invisible_to_the_role_form(tenant, other_tenant):
    client = login(tenant.admin)
    foreign = other_tenant.admin.username
    with unchanged():
        foreign_answer = grant(client, foreign, tenant)
    with unchanged():
        ghost_answer = grant(client, "no-such-user", tenant)
    assert foreign_answer.status_code == ghost_answer.status_code == 200
    assert (foreign_answer.context["adminform"].form.errors["user"]
            == ghost_answer.context["adminform"].form.errors["user"])
    assert not RoleAssignment.objects.filter(user=other_tenant.admin, project=tenant.project).exists()


def test_members_and_unaffiliated_accounts_can_be_granted(tenant, other_tenant):
    client = login(tenant.admin)
    member, _, _ = tenant.user("viewer", username="acme-viewer")
    newcomer = get_user_model().objects.create_user(username="fresh")
    assert grant(client, "acme-viewer", tenant, "certificate_manager").status_code == 302
    assert grant(client, "fresh", tenant).status_code == 302
    assert RoleAssignment.objects.filter(user=member, role="certificate_manager").exists()
    assert RoleAssignment.objects.filter(user=newcomer, project=tenant.project).exists()


def test_a_superuser_may_grant_any_account(tenant, other_tenant):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    assert grant(login(root), other_tenant.admin.username, tenant).status_code == 302
    assert RoleAssignment.objects.filter(user=other_tenant.admin, project=tenant.project).exists()
