"""Print a new API token for a user (created if missing), optionally granting a role first.

The token expires like every token: after --duration, or MAZEVAULT_DEFAULT_TOKEN_DAYS without one.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from mazevault import services
from mazevault.errors import DomainError
from mazevault.models import Organization, Project
from mazevault.rbac import Role


class Command(BaseCommand):
    help = "Create an API token for --user; with --role and --project (or --organization) grant that role."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True)
        parser.add_argument("--role", choices=Role.values)
        parser.add_argument("--project", help="project id the role applies to")
        parser.add_argument("--organization", help="organization id the role applies to")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--duration", help="lifetime such as 24h or 30d (default: MAZEVAULT_DEFAULT_TOKEN_DAYS)")

    def handle(self, *args, **options) -> None:
        scope: dict = {}
        if options["role"]:
            if bool(options["project"]) == bool(options["organization"]):
                raise CommandError("--role needs exactly one of --project or --organization")
            try:
                if options["project"]:
                    scope = {"project": Project.objects.get(pk=options["project"])}
                else:
                    scope = {"organization": Organization.objects.get(pk=options["organization"])}
            except (Project.DoesNotExist, Organization.DoesNotExist, ValueError, ValidationError) as exc:
                raise CommandError(f"no such scope: {exc}") from None
        if options["duration"]:
            try:
                services.parse_duration(options["duration"])
            except DomainError as exc:
                raise CommandError(exc.message) from None
        with transaction.atomic():  # nothing is left behind when a step fails
            user, _ = get_user_model().objects.get_or_create(username=options["user"])
            if scope:
                services.assign_role(user=user, role=options["role"], actor="cli", **scope)
            try:
                _, raw = services.create_token(user=user, name=options["name"], duration=options["duration"],
                                               actor="cli")
            except DomainError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(raw)
