"""Idempotent demo set-up: organization, project, root + issuing CA, stock templates, an approval
policy and an ``admin`` user with a fresh API token, printed as one JSON object."""
from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from certificates import services
from certificates.models import CertificateAuthority, CertificateTemplate
from certificates.stock import STOCK_TEMPLATES
from mazevault import services as core
from mazevault.models import ApiToken, ApprovalPolicy, Environment, Organization, Project
from mazevault.rbac import Role

KEY_TYPES = {"ec-p256": "ec-p256", "ec-p384": "ec-p384", "rsa-2048": "rsa-2048", "rsa-4096": "rsa-4096"}
TOKEN_NAME = "demo-bootstrap"


class Command(BaseCommand):
    help = "Create (or find) the demo tenant, CAs, templates and admin user; print them as JSON."

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
                services.create_object(ApprovalPolicy(project=project, name="One approval", required_approvals=1),
                                       actor=admin, action="approval_policy.created")
            template_ids = {}
            for name, fields in STOCK_TEMPLATES.items():
                template = CertificateTemplate.objects.filter(project=project, name=name).first()
                if template is None:
                    template = services.create_object(
                        CertificateTemplate(organization=org, project=project, name=name, ca=issuing, **fields),
                        actor=admin, action="template.created")
                template_ids[name] = str(template.pk)
            for old in ApiToken.objects.filter(user=admin, name=TOKEN_NAME, revoked_at__isnull=True):
                core.revoke_token(old, actor=admin)
            _, token = core.create_token(user=admin, name=TOKEN_NAME, actor=admin)
        result = {
            "token": token, "admin_username": "admin", "organization_id": str(org.pk), "project_id": str(project.pk),
            "root_ca_id": str(root.pk), "issuing_ca_id": str(issuing.pk), "template_ids": template_ids,
        }
        if password is not None:
            result["admin_password"] = password
        self.stdout.write(json.dumps(result, indent=None if options["json"] else 2))
