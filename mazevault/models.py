"""Core models: tenants (organizations, projects), role assignments, API tokens, approval
policies, the hash-chained audit log and idempotency records."""
from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .rbac import Role


class UUIDModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    DEVELOPMENT = "development", "Development"


class Organization(UUIDModel):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Project(UUIDModel):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    environment = models.CharField(max_length=20, choices=Environment.choices, default=Environment.DEVELOPMENT)

    class Meta:
        ordering = ("name",)
        constraints = [models.UniqueConstraint(fields=("organization", "name"), name="project_unique_name")]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"


class RoleAssignment(models.Model):
    """A role held on exactly one scope: a whole organization or one project."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=32, choices=Role.choices)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="role_assignments")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="role_assignments")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(organization__isnull=False, project__isnull=True)
                           | Q(organization__isnull=True, project__isnull=False)),
                name="role_assignment_one_scope",
            ),
            models.UniqueConstraint(fields=("user", "role", "organization", "project"), name="role_assignment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} @ {self.organization or self.project}"


TOKEN_PREFIX = "mv_pat_"


def hash_token(raw: str) -> str:
    """Tokens carry 256 bits of entropy, so one SHA-256 is enough (no password stretching)."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(UUIDModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16)
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"


class ApprovalPolicy(UUIDModel):
    """How many distinct approvers a request in this project needs, and which role approves."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="approval_policies")
    name = models.CharField(max_length=100)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    approver_role = models.CharField(max_length=32, choices=Role.choices, blank=True, default="")
    environments = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "approval policies"
        constraints = [models.UniqueConstraint(fields=("project", "name"), name="approval_policy_unique_name")]

    def __str__(self) -> str:
        return self.name

    def covers(self, environment: str) -> bool:
        return not self.environments or environment in self.environments


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class AuditEvent(models.Model):
    """Append-only. Written in two steps (docs/audit.md):

    1. ``audit.record()`` inserts the event with its content inside the transaction whose work it
       describes (``seq`` is the insertion order; ``position``, ``prev_hash`` and ``chain_hash`` NULL);
    2. the sealer, the only writer of those three columns, appends committed events to the chain:
       ``position`` = 1, 2, 3 … with no gap, and
       ``chain_hash`` = SHA-256(``prev_hash`` || canonical content), ``prev_hash`` being the
       ``chain_hash`` of the event at ``position - 1`` (64 zeros for position 1).
    """

    seq = models.BigAutoField(primary_key=True)
    id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", db_constraint=False)
    actor_name = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=64, db_index=True)
    entity_type = models.CharField(max_length=64, blank=True, default="")
    entity_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    project_id = models.UUIDField(null=True, blank=True, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    position = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)
    chain_hash = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        ordering = ("-seq",)
        indexes = [
            models.Index(fields=("entity_type", "entity_id"), name="audit_entity_idx"),
            # The sealer's work list: small (events of the last second or so) whatever the log's size.
            models.Index(fields=("seq",), condition=models.Q(position__isnull=True), name="audit_unsealed_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.entity_type}:{self.entity_id}"


class AuditChainHead(models.Model):
    """Singleton: where the sealed chain ends. Only the sealer writes it, under its row lock (the
    sealer's lock: request paths never touch this row).

    ``signature`` is an Ed25519 signature (mazevault/audit_signing.py, kind ``head``) over
    (``count``, ``last_hash``, ``sealed_at``) by a key the database does not hold, so a database
    writer cannot move the head to a chain they rewrote."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    count = models.BigIntegerField(default=0)
    sealed_at = models.DateTimeField(null=True, blank=True)
    key_id = models.CharField(max_length=16, blank=True, default="")
    signature = models.CharField(max_length=128, blank=True, default="")
    # When the sealer last kept a checkpoint (scheduling only: not part of any signed statement).
    last_checkpoint_at = models.DateTimeField(null=True, blank=True)


class AuditCheckpoint(models.Model):
    """A signed statement kept for good: "the chain had ``length`` events ending in ``chain_hash``".

    Written by the sealer at most every ``MAZEVAULT_AUDIT_CHECKPOINT_SECONDS`` and by
    ``verify_audit --export``, which prints them all for storage outside the database."""

    length = models.BigIntegerField(unique=True)
    chain_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ("length",)


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an ``Idempotency-Key`` header, replayed on retries.

    ``principal`` is the credential that made the request (``token:<id>`` or ``session``): a replay
    is for that credential only. While the work runs the row is a claim (``status_code`` 0) that
    expires at ``locked_until``; the answer is written in the work's own transaction
    (mazevault/idempotency.py).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    principal = models.CharField(max_length=64, blank=True, default="")
    locked_until = models.DateTimeField(null=True, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("user", "key"), name="idempotency_unique_key")]


class CacheStamp(models.Model):
    """Singleton row whose random ``version`` changes with every change to a cached table
    (``mazevault.cache``): processes drop their caches when it moves."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)


class RateCounter(models.Model):
    """A fixed-window rate counter (``mazevault.throttling``) when Redis is not configured: one row
    per key, ``count`` events in the window that started at ``window_start`` (epoch seconds)."""

    key = models.CharField(max_length=200, primary_key=True)
    window_start = models.BigIntegerField(db_index=True)
    count = models.PositiveIntegerField(default=0)
