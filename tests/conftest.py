"""Shared fixtures: real tokens over APIClient, a tenant with a root + issuing CA and the stock
templates, CSR builders, and (when a broker is configured) a real Celery worker process.

Locally, with no DATABASE_URL/CELERY_BROKER_URL, the suite runs on SQLite with eager tasks.
Under CI=true a configured-but-unreachable PostgreSQL, Redis or worker fails the run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from certificates import services as cert_services
from certificates.models import CertificateAuthority, CertificateTemplate
from certificates.pki import csr as pki_csr, keys
from certificates.stock import STOCK_TEMPLATES
from mazevault import services as core
from mazevault.models import ApprovalPolicy, Environment, Organization, Project

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_rate_limits_by_default(settings):
    """Tests that exercise throttling turn it on explicitly."""
    settings.MAZEVAULT_RATE_LIMIT_API = ""
    settings.MAZEVAULT_RATE_LIMIT_AUTH = ""


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from mazevault import cache as process_cache

    # Each test's writes roll back, and SQLite reuses row ids: entries cached by one test must not
    # answer for the next one.
    process_cache.forget()
    try:
        cache.clear()
    except Exception:  # the cache table may not exist before the first migrate in a non-db test
        pass
    yield


@dataclass
class Tenant:
    org: Organization
    project: Project
    root: CertificateAuthority
    issuing: CertificateAuthority
    templates: dict[str, CertificateTemplate]
    admin: object
    admin_token: str
    users: dict[str, tuple[object, str]] = field(default_factory=dict)

    def client(self, token: str | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token or self.admin_token}")
        return client

    def user(self, role: str, *, username: str | None = None, scope: str = "project") -> tuple[object, str, APIClient]:
        """A user holding ``role`` on this tenant's project (or organization), with a token and client."""
        from django.contrib.auth import get_user_model

        name = username or f"{role}-{scope}-{self.org.name}"[:150]
        user, _ = get_user_model().objects.get_or_create(username=name)
        target = {"project": self.project} if scope == "project" else {"organization": self.org}
        core.assign_role(user=user, role=role, actor="test", **target)
        _, raw = core.create_token(user=user, name="test", actor="test")
        return user, raw, self.client(raw)


def make_tenant(name: str = "Acme", *, key_type: str = "ec-p256", environment: str = Environment.PRODUCTION) -> Tenant:
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_user(username=f"admin-{name}")
    org = core.create_organization(name=name, actor=admin)
    project = core.create_project(organization=org, name=f"{name} project", environment=environment, actor=admin)
    root = cert_services.create_ca(cert_services.CASpec(
        name=f"{name} Root", key_type=key_type, path_length=1,
        subject={"common_name": f"{name} Root CA", "organization": name}), actor=admin, organization=org,
        project=project)
    issuing = cert_services.create_ca(cert_services.CASpec(
        name=f"{name} Issuing", key_type=key_type, path_length=0, validity_days=1825,
        subject={"common_name": f"{name} Issuing CA", "organization": name}), actor=admin, organization=org,
        project=project, parent=root)
    ApprovalPolicy.objects.create(project=project, name="default", required_approvals=1)
    templates = {
        tname: CertificateTemplate.objects.create(organization=org, project=project, name=tname, ca=issuing, **fields)
        for tname, fields in STOCK_TEMPLATES.items()
    }
    _, token = core.create_token(user=admin, name="admin", actor=admin)
    return Tenant(org=org, project=project, root=root, issuing=issuing, templates=templates, admin=admin,
                  admin_token=token)


@pytest.fixture
def tenant(db) -> Tenant:
    """Organization "Acme" whose admin (role admin on the org) holds ``admin_token``."""
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("Globex")


_KEY_CACHE: dict[str, object] = {}


def cached_key(key_type: str = "ec-p256"):
    """One key per type per session (RSA generation is slow); CSRs differ by name, not key."""
    if key_type not in _KEY_CACHE:
        _KEY_CACHE[key_type] = keys.generate_private_key(key_type)
    return _KEY_CACHE[key_type]


def make_csr(common_name: str = "", *, dns: list[str] | None = None, key_type: str = "ec-p256",
             subject: dict | None = None, key=None, **sans) -> str:
    key = key or cached_key(key_type)
    subj = dict(subject or {})
    if common_name:
        subj["common_name"] = common_name
    return pki_csr.csr_to_pem(pki_csr.build_csr(key, subj, {"dns_names": dns or [], **sans}))


@pytest.fixture
def csr_pem():
    return make_csr


# --- A real Celery worker ------------------------------------------------------------------------
def _broker_configured() -> bool:
    return not settings.CELERY_EMBEDDED_BROKER and not settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """Start ``celery worker`` against the test database and the configured broker.

    Without a configured broker (local runs) tests that need it are skipped, unless CI=true,
    where a missing broker is a failure.
    """
    if not _broker_configured():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no CELERY_BROKER_URL is configured: the worker tests cannot run")
        pytest.skip("no broker configured (set CELERY_BROKER_URL to run worker tests)")
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("worker tests need a database the worker process can share (PostgreSQL)")
    url = f"postgresql://{db['USER'] or ''}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}@{db['HOST'] or ''}" \
          f"{':' + str(db['PORT']) if db['PORT'] else ''}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "MAZEVAULT_DATA_DIR": str(settings.DATA_DIR),
           "CELERY_TASK_ALWAYS_EAGER": "0"}
    log = open(settings.DATA_DIR / "test-worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mazevault", "worker", "-Q", "default,crl,rotation,acme",
         "--pool", "solo", "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from mazevault.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"celery worker exited with {proc.returncode}; see {log.name}")
        try:
            if app.control.ping(timeout=1.0):
                break
        except Exception:
            pass
        time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("celery worker did not answer a ping within 60 s")
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
