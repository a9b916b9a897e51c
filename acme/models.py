"""ACME state (RFC 8555 section 7.1): EAB credentials, accounts, orders, authorizations, challenges, nonces.

Everything lives in the database so that any number of web replicas behave as one server. Status
fields use the RFC's own tokens; every status change is a compare-and-set in ``acme/services.py``.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from certificates.models import Certificate, CertificateTemplate
from mazevault.models import Organization, Project


class EabCredential(models.Model):
    """An External Account Binding key (RFC 8555 7.3.4) that ties ACME accounts to a project.

    ``hmac_sealed`` is the HMAC key sealed under the KEK (certificates/pki/envelope.py, associated data
    = this row's id): it is shown once, at creation, and cannot be read back through any API.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="acme_credentials")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="acme_credentials")
    default_template = models.ForeignKey(CertificateTemplate, on_delete=models.PROTECT, related_name="+")
    key_id = models.CharField(max_length=64, unique=True)
    hmac_sealed = models.BinaryField(editable=False)
    kek_id = models.CharField(max_length=16)
    cluster_label = models.CharField(max_length=200, blank=True, default="")
    allowed_identifiers = models.JSONField(default=list, blank=True)  # regexes an identifier must fullmatch
    max_accounts = models.PositiveIntegerField(null=True, blank=True)  # None: any number
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.cluster_label or self.key_id

    def usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AccountStatus(models.TextChoices):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class Account(models.Model):
    """An ACME account (RFC 8555 7.1.2), identified by its key's RFC 7638 thumbprint."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    credential = models.ForeignKey(EabCredential, on_delete=models.PROTECT, related_name="accounts")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="acme_accounts")
    status = models.CharField(max_length=16, choices=AccountStatus.choices, default=AccountStatus.VALID)
    jwk = models.JSONField()
    thumbprint = models.CharField(max_length=64, unique=True)
    contact = models.JSONField(default=list, blank=True)
    eab_jws = models.JSONField(default=dict, blank=True)  # the externalAccountBinding as sent (RFC 8555 7.1.2)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"acme account {self.id}"


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="orders")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey(CertificateTemplate, on_delete=models.PROTECT, related_name="+")
    profile = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    identifiers = models.JSONField()  # [{"type": "dns"|"ip", "value": …}] as normalised
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField()
    error = models.JSONField(null=True, blank=True)
    certificate = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="acme_orders")
    replaces = models.CharField(max_length=200, blank=True, default="")
    authorizations = models.ManyToManyField("Authorization", related_name="orders")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=("status", "expires"), name="acme_order_status_exp_idx")]


class AuthzStatus(models.TextChoices):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class Authorization(models.Model):
    """An account's authorization for one identifier (RFC 8555 7.1.4). Orders share a valid one of the same
    account (``Order.authorizations``) until it expires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="authorizations")
    identifier_type = models.CharField(max_length=8)
    identifier_value = models.CharField(max_length=255)
    wildcard = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=AuthzStatus.choices, default=AuthzStatus.PENDING)
    expires = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("status", "expires"), name="acme_authz_status_exp_idx"),
                   models.Index(fields=("account", "identifier_value", "status"), name="acme_authz_acct_ident_idx")]


class ChallengeType(models.TextChoices):
    HTTP_01 = "http-01"
    DNS_01 = "dns-01"
    TLS_ALPN_01 = "tls-alpn-01"


class ChallengeStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class Challenge(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    authorization = models.ForeignKey(Authorization, on_delete=models.CASCADE, related_name="challenges")
    type = models.CharField(max_length=16, choices=ChallengeType.choices)
    token = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ChallengeStatus.choices, default=ChallengeStatus.PENDING)
    validated_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ("type",)


class Nonce(models.Model):
    """A Replay-Nonce (RFC 8555 6.5): issued here, deleted when used, so each one is accepted once."""

    value = models.CharField(max_length=64, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)


__all__ = ["EabCredential", "Account", "AccountStatus", "Order", "OrderStatus", "Authorization", "AuthzStatus",
           "Challenge", "ChallengeType", "ChallengeStatus", "Nonce"]
