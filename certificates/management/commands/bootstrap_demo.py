"""Idempotent demo set-up: organization, project, root + issuing CA, stock templates, an approval
policy, an ``admin`` superuser and an ``operator`` (role certificate_manager, console login), each
with a fresh API token, printed as one JSON object.

Two people because nobody approves their own request: the README walks through "submit as admin,
approve as operator", in the API and in the console. A password is printed only by the run that
created its user (``MAZEVAULT_DEMO_ADMIN_PASSWORD`` / ``MAZEVAULT_DEMO_OPERATOR_PASSWORD`` choose
them; random otherwise).
"""
from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from certificates import services
from certificates.models import CertificateAuthority, CertificateTemplate
from certificates.pki.keys import KEY_TYPES as _ALL_KEY_TYPES
from certificates.stock import STOCK_TEMPLATES
from mazevault import services as core
from mazevault.models import ApiToken, ApprovalPolicy, Environment, Organization, Project
from mazevault.rbac import Role

# The demo CAs' key types (run_embedded offers the same list; a test keeps the two equal).
KEY_TYPES = {k: k for k in ("ec-p256", "ec-p384", "rsa-2048", "rsa-4096") if k in _ALL_KEY_TYPES}
TOKEN_NAME = "demo-bootstrap"
OPERATOR = "operator"


class Command(BaseCommand):
    help = "Create (or find) the demo tenant, CAs, templates, admin and operator; print them as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print only the JSON object")
        parser.add_argument("--key-type", default="ec-p256", choices=sorted(KEY_TYPES))

    def handle(self, *args, **options) -> None:
        key_type = KEY_TYPES[options["key_type"]]
        User = get_user_model()
        password = None
        with transaction.atomic():
            admin = User.objects.filter(username="admin").first()
            if admin is None:
                password = settings.MAZEVAULT_DEMO_ADMIN_PASSWORD or secrets.token_urlsafe(16)
                admin = User.objects.create_superuser("admin", "admin@example.invalid", password)
            org = Organization.objects.filter(name="Demo").first() or core.create_organization(
                name="Demo", actor=admin, description="Demo organization")
            core.assign_role(user=admin, role=Role.ADMIN, organization=org, actor=admin)
            operator = User.objects.filter(username=OPERATOR).first()
            operator_password = None
            if operator is None:
                operator_password = settings.MAZEVAULT_DEMO_OPERATOR_PASSWORD or secrets.token_urlsafe(16)
                # is_staff: the console login; what it may do there comes from the role alone.
                operator = User.objects.create_user(OPERATOR, "operator@example.invalid", operator_password,
                                                    is_staff=True)
            core.assign_role(user=operator, role=Role.CERTIFICATE_MANAGER, organization=org, actor=admin)
            project = Project.objects.filter(organization=org, name="Demo").first() or core.create_project(
                organization=org, name="Demo", environment=Environment.PRODUCTION, actor=admin,
                description="Demo project")
            root = CertificateAuthority.objects.filter(organization=org, name="MazeVault Demo Root CA").first()
            if root is None:
                root = services.create_ca(services.CASpec(
                    name="MazeVault Demo Root CA", key_type=key_type, validity_days=20 * 365, path_length=1,
                    subject={"common_name": "MazeVault Demo Root CA", "organization": "Demo", "country": "US"}),
                    actor=admin, organization=org, project=project)
            issuing = CertificateAuthority.objects.filter(organization=org, name="MazeVault Demo Issuing CA").first()
            if issuing is None:
                issuing = services.create_ca(services.CASpec(
                    name="MazeVault Demo Issuing CA", key_type=key_type, validity_days=10 * 365, path_length=0,
                    subject={"common_name": "MazeVault Demo Issuing CA", "organization": "Demo", "country": "US"}),
                    actor=admin, organization=org, project=project, parent=root)
            if not ApprovalPolicy.objects.filter(project=project).exists():
                core.create_object(ApprovalPolicy(project=project, name="One approval", required_approvals=1),
                                       actor=admin, action="approval_policy.created")
            template_ids = {}
            for name, fields in STOCK_TEMPLATES.items():
                template = CertificateTemplate.objects.filter(project=project, name=name).first()
                if template is None:
                    template = core.create_object(
                        CertificateTemplate(organization=org, project=project, name=name, ca=issuing, **fields),
                        actor=admin, action="template.created")
                template_ids[name] = str(template.pk)
            for old in ApiToken.objects.filter(user__in=(admin, operator), name=TOKEN_NAME, revoked_at__isnull=True):
                core.revoke_token(old, actor=admin)
            _, token = core.create_token(user=admin, name=TOKEN_NAME, actor=admin)
            _, operator_token = core.create_token(user=operator, name=TOKEN_NAME, actor=admin)
        result = {
            "token": token, "admin_username": "admin", "operator_username": OPERATOR, "operator_token": operator_token,
            "organization_id": str(org.pk), "project_id": str(project.pk),
            "root_ca_id": str(root.pk), "issuing_ca_id": str(issuing.pk), "template_ids": template_ids,
        }
        if password is not None:
            result["admin_password"] = password
        if operator_password is not None:
            result["operator_password"] = operator_password
        self.stdout.write(json.dumps(result, indent=None if options["json"] else 2))
