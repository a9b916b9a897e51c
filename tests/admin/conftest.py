"""Admin fixtures: staff operators logged in with Django's test Client, and requests submitted
through the same service the API uses."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from certificates import services
from certificates.models import Certificate
from tests.conftest import make_csr

CHANGELIST = "admin:certificates_certificate_changelist"


def login(user: Any, *, staff: bool = True) -> Client:
    if staff and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def operator(tenant, role: str, username: str, *, scope: str = "project") -> tuple[Any, Client]:
    """A staff user (not a superuser) holding ``role`` on the tenant's project or organization."""
    user, _, _ = tenant.user(role, username=username, scope=scope)
    return user, login(user)


def submit(tenant, requester: Any, common_name: str, *, dns: list[str] | None = None,
           template: str = "web-server") -> Certificate:
    """A request under ``template`` as the API would create it (web-server waits for approval)."""
    data = services.RequestInput(mode="uploaded_csr", csr_pem=make_csr(common_name, dns=dns or [common_name]))
    return services.submit_request(data, actor=requester, project=tenant.project,
                                   template=tenant.templates[template])


def change_url(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def run_action(client: Client, action: str, objects: list[Any], **extra: Any):
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], "index": "0", **extra}
    return client.post(reverse(CHANGELIST), data)


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")


@pytest.fixture
def root_client(superuser) -> Client:
    return login(superuser)


@pytest.fixture
def requester(tenant):
    user, _, _ = tenant.user("user", username="alice")
    return user
