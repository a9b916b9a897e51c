"""CAs, templates, the certificate lifecycle resource, its request, approvals and stored keys."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from mazevault.models import ApprovalPolicy, Organization, Project, UUIDModel

from .querysets import CertificateQuerySet


class StoredKey(UUIDModel):
    """A private key: encrypted at rest (envelope, AES-256-GCM under the KEK) or a reference to an
    external secret. ``public_key_der`` lets callers match keys without decrypting anything."""

    class Storage(models.TextChoices):
        LOCAL = "local", "Local (encrypted in the database)"
        EXTERNAL = "external", "External secret manager"

    storage = models.CharField(max_length=16, choices=Storage.choices, default=Storage.LOCAL)
    key_type = models.CharField(max_length=16)
    sealed = models.BinaryField(null=True, blank=True, editable=False)
    kek_id = models.CharField(max_length=16, blank=True, default="")
    external_ref = models.CharField(max_length=500, blank=True, default="")
    public_key_der = models.BinaryField(editable=False)

    def __str__(self) -> str:
        return f"{self.key_type} key {self.id}"


class CAKind(models.TextChoices):
    ROOT = "root", "Root"
    INTERMEDIATE = "intermediate", "Intermediate"


class CAStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"
    REVOKED = "revoked", "Revoked"  # its certificate is revoked (listed in the parent's CRL); it issues nothing


class RevocationReason(models.IntegerChoices):
    """RFC 5280 section 5.3.1 CRLReason codes the API accepts; the label is the name on the wire.

    7 is unused by the RFC; 8 (removeFromCRL) only appears in delta CRLs, for a released hold.
    """

    UNSPECIFIED = 0, "unspecified"
    KEY_COMPROMISE = 1, "keyCompromise"
    CA_COMPROMISE = 2, "caCompromise"
    AFFILIATION_CHANGED = 3, "affiliationChanged"
    SUPERSEDED = 4, "superseded"
    CESSATION_OF_OPERATION = 5, "cessationOfOperation"
    CERTIFICATE_HOLD = 6, "certificateHold"

    @classmethod
    def parse(cls, value: object) -> "RevocationReason | None":
        """The reason for a wire value: a seed name (RFC spelling ``cACompromise`` too) or a code 0-6."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit() and len(value) < 3):
            code = int(value)
            return cls(code) if code in cls.values else None
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.label.lower() == wanted:
                    return member
        return None


class CertificateAuthority(UUIDModel):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="cas")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.PROTECT, related_name="cas")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=CAKind.choices)
    status = models.CharField(max_length=16, choices=CAStatus.choices, default=CAStatus.ACTIVE)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    key = models.OneToOneField(StoredKey, on_delete=models.PROTECT, related_name="ca")
    key_type = models.CharField(max_length=16)
    subject = models.CharField(max_length=500)
    serial_number = models.CharField(max_length=64)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    certificate_pem = models.TextField()
    path_length = models.PositiveSmallIntegerField(null=True, blank=True)
    crl_url = models.URLField(max_length=500, blank=True, default="")
    ocsp_url = models.URLField(max_length=500, blank=True, default="")
    # CRL publication (RFC 5280 5.1.2.4-5): a full CRL every crl_full_interval_hours, valid (nextUpdate)
    # for crl_full_validity_hours; a delta CRL every crl_delta_interval_hours, valid crl_delta_validity_hours.
    crl_full_interval_hours = models.PositiveIntegerField(default=24)
    crl_full_validity_hours = models.PositiveIntegerField(default=168)
    crl_delta_interval_hours = models.PositiveIntegerField(default=1)
    crl_delta_validity_hours = models.PositiveIntegerField(default=24)
    crl_keep_expired = models.BooleanField(default=False, help_text="Keep expired certificates' entries on the CRL "
                                                                    "for good (else one CRL after notAfter).")
    crl_shards = models.PositiveSmallIntegerField(default=0, help_text="Partition the CRL of certificates issued "
                                                                       "from now on into this many shards (0: off).")
    ocsp_sign_with_ca_key = models.BooleanField(default=False, help_text="Sign OCSP responses with the CA key "
                                                                         "instead of a delegated responder.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.PositiveSmallIntegerField(null=True, blank=True, choices=RevocationReason.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ("name",)
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        constraints = [models.UniqueConstraint(fields=("organization", "name"), name="ca_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def public_url(self) -> str:
        return f"{settings.MAZEVAULT_PUBLIC_URL}/api/v1/ca/{self.id}"

    def crl_urls(self, shard: int | None = None) -> tuple[str, ...]:
        """The CRL distribution point of a certificate in ``shard`` (None: the unsharded CRL)."""
        if shard is not None:  # shards are always published here; crl_url overrides the unsharded CRL only
            return (f"{self.public_url}/crl/shard/{shard}",)
        return (self.crl_url or f"{self.public_url}/crl",)

    def delta_crl_urls(self, shard: int | None = None) -> tuple[str, ...]:
        """Where the delta CRL of ``shard`` is published (RFC 5280 5.2.6 Freshest CRL)."""
        suffix = f"/shard/{shard}" if shard is not None else ""
        return (f"{self.public_url}/crl/delta{suffix}",)

    def ocsp_urls(self) -> tuple[str, ...]:
        return (self.ocsp_url or f"{self.public_url}/ocsp",)

    def ca_issuers_urls(self) -> tuple[str, ...]:
        return (f"{self.public_url}/certificate",)


class CertificateTemplate(UUIDModel):
    """The policy a request must satisfy; the source of truth for what gets issued."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="templates")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.PROTECT, related_name="templates")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="templates")
    key_algorithms = models.JSONField(default=list)  # subset of pki.keys.KEY_TYPES
    min_rsa_key_size = models.PositiveIntegerField(default=2048)
    default_key_type = models.CharField(max_length=16, default="ec-p256")
    validity_days = models.PositiveIntegerField(default=365)
    min_validity_days = models.PositiveIntegerField(default=1)
    max_validity_days = models.PositiveIntegerField(default=397)
    subject_policy = models.JSONField(default=dict)  # {field: {"required": bool, "pattern": str|None, "default": str|None}}
    san_types = models.JSONField(default=list)  # subset of pki.names.SAN_KEYS
    san_patterns = models.JSONField(default=dict)  # {san_key: [regex, …]}
    allow_wildcards = models.BooleanField(default=False)
    require_san = models.BooleanField(default=False)
    max_sans = models.PositiveIntegerField(default=100)
    copy_cn_to_san = models.BooleanField(default=True)
    key_usage = models.JSONField(default=list)
    extended_key_usage = models.JSONField(default=list)
    auto_approve = models.BooleanField(default=False)
    approval_policy = models.ForeignKey(ApprovalPolicy, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="templates")
    renewal_window_days = models.PositiveIntegerField(default=30)
    key_export_allowed = models.BooleanField(default=False)
    acme_profile = models.CharField(max_length=64, blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.UniqueConstraint(fields=("organization", "name"), condition=Q(project__isnull=True),
                                    name="template_unique_org_name"),
            models.UniqueConstraint(fields=("project", "name"), name="template_unique_project_name"),
        ]

    def __str__(self) -> str:
        return self.name


class CertificateStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"
    ARCHIVED = "archived", "Archived"


class CertificateSource(models.TextChoices):
    REQUEST = "request", "Request"
    IMPORT = "import", "Import"
    ACME = "acme", "ACME"
    SCEP = "scep", "SCEP"
    RENEWAL = "renewal", "Renewal"


class Certificate(UUIDModel):
    """The lifecycle resource: a request while pending, the issued certificate afterwards."""

    # organization, project and ca lead composite indexes (Meta.indexes), which also serve their
    # foreign keys: no separate single-column index to maintain on every write.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="certificates",
                                     db_index=False)
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="certificates", db_index=False)
    template = models.ForeignKey(CertificateTemplate, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="certificates")
    ca = models.ForeignKey(CertificateAuthority, null=True, blank=True, on_delete=models.PROTECT,
                           related_name="certificates", db_index=False)
    status = models.CharField(max_length=20, choices=CertificateStatus.choices)
    source = models.CharField(max_length=16, choices=CertificateSource.choices, default=CertificateSource.REQUEST)
    common_name = models.CharField(max_length=255, blank=True, default="")
    subject = models.CharField(max_length=1000, blank=True, default="")
    san = models.JSONField(default=list, blank=True)  # flattened display list
    issuer_cn = models.CharField(max_length=255, blank=True, default="")
    serial_number = models.CharField(max_length=64, null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    key_type = models.CharField(max_length=32, blank=True, default="")
    fingerprint_sha256 = models.CharField(max_length=95, blank=True, default="")
    certificate_pem = models.TextField(blank=True, default="")
    chain_pem = models.TextField(blank=True, default="")
    private_key = models.OneToOneField(StoredKey, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="certificate")
    name = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    labels = models.JSONField(default=dict, blank=True)
    owner_contacts = models.JSONField(default=list, blank=True)
    auto_renew = models.BooleanField(default=False)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    approver_role = models.CharField(max_length=32, blank=True, default="")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    issued_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    rejection_reason = models.TextField(blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    revocation_reason = models.PositiveSmallIntegerField(null=True, blank=True, choices=RevocationReason.choices)
    invalidity_date = models.DateTimeField(null=True, blank=True)
    crl_shard = models.PositiveSmallIntegerField(null=True, blank=True)  # chosen at issuance; None: unsharded CRL
    revocation_comment = models.TextField(blank=True, default="")
    archived_at = models.DateTimeField(null=True, blank=True)
    status_before_archive = models.CharField(max_length=20, blank=True, default="")
    predecessor = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="successors")

    objects = CertificateQuerySet.as_manager()

    class Meta:
        # Newest first; the id breaks ties so that pages never overlap or skip rows.
        ordering = ("-requested_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("ca", "serial_number"), condition=Q(serial_number__isnull=False),
                                    name="certificate_unique_serial_per_ca"),
        ]
        # The list: one index per filter (and per tenant scope: organization, project), each
        # ending in the list order "-requested_at, -id", so a page is a walk down one index and the
        # capped count and deep-page keys are index-only scans (mazevault/api/pagination.py;
        # bench/list_scale.py prints the plans). The common_name substring search has a trigram
        # index (migration 0002, PostgreSQL only); the expiry filter and sweep use status+not_after.
        indexes = [
            models.Index(fields=("-requested_at", "-id"), name="cert_order_idx"),
            models.Index(fields=("organization", "-requested_at", "-id"), name="cert_org_order_idx"),
            models.Index(fields=("organization", "status", "-requested_at", "-id"), name="cert_org_status_order_idx"),
            models.Index(fields=("project", "-requested_at", "-id"), name="cert_project_order_idx"),
            models.Index(fields=("project", "status", "-requested_at", "-id"), name="cert_project_status_order_idx"),
            models.Index(fields=("ca", "-requested_at", "-id"), name="cert_ca_order_idx"),
            models.Index(fields=("status", "-requested_at", "-id"), name="cert_status_order_idx"),
            models.Index(fields=("status", "not_after"), name="cert_status_not_after_idx"),
        ]

    def __str__(self) -> str:
        return self.common_name or str(self.id)


class RequestMode(models.TextChoices):
    UPLOADED_CSR = "uploaded_csr", "Uploaded CSR"
    MAZEVAULT_GENERATED = "mazevault_generated", "Key and CSR generated by MazeVault"
    AZURE_KEY_VAULT_GENERATED = "azure_key_vault_generated", "Key and CSR generated in Azure Key Vault"


class CertificateSigningRequest(models.Model):
    """What was asked for, as asked: kept for audit and for re-validation at approval time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    certificate = models.OneToOneField(Certificate, on_delete=models.CASCADE, related_name="request")
    mode = models.CharField(max_length=32, choices=RequestMode.choices)
    csr_pem = models.TextField()
    requested_cn = models.CharField(max_length=255, blank=True, default="")
    requested_subject = models.JSONField(default=dict, blank=True)
    requested_san = models.JSONField(default=dict, blank=True)
    requested_key_algorithm = models.CharField(max_length=16, blank=True, default="")
    requested_key_size = models.PositiveIntegerField(null=True, blank=True)
    requested_validity_days = models.PositiveIntegerField(null=True, blank=True)
    key_storage_mode = models.CharField(max_length=16, blank=True, default="")
    agent_id = models.UUIDField(null=True, blank=True)
    generation_reference = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"request for {self.certificate_id}"


class Approval(models.Model):
    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at",)
        constraints = [models.UniqueConstraint(fields=("certificate", "approver"), name="approval_once_per_user")]


class RevocationKind(models.TextChoices):
    REVOKE = "revoke", "Revoked"
    RELEASE = "release", "Released from hold"


class Revocation(models.Model):
    """One revocation or release of a serial under its issuing CA: the revocation history.

    Rows are never updated except ``current``, which is true on the revoke row that describes the
    serial's present status (false once it is released from hold or superseded by a final reason).
    ``id`` is the order CRLs follow: a delta CRL lists the rows after its base's ``max_revocation_id``.
    ``entry_der`` is the DER of the CRL entry (RFC 5280 5.1.2.6 revokedCertificates element), encoded
    once here so that a CRL is assembled by concatenation; a release row holds its removeFromCRL entry.
    Rows outlive the certificate (SET_NULL): a deleted certificate stays revoked.
    """

    id = models.BigAutoField(primary_key=True)
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="revocations")
    certificate = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="revocations")
    revoked_ca = models.ForeignKey(CertificateAuthority, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="own_revocations")
    serial_number = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=RevocationKind.choices)
    reason = models.PositiveSmallIntegerField(null=True, blank=True, choices=RevocationReason.choices)
    revoked_at = models.DateTimeField()
    invalidity_date = models.DateTimeField(null=True, blank=True)
    not_after = models.DateTimeField()
    shard = models.PositiveSmallIntegerField(null=True, blank=True)
    entry_der = models.BinaryField()
    current = models.BooleanField(default=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        indexes = [
            # The full CRL of a scope: its current revoke rows in order (index-only for the filter).
            models.Index(fields=("ca", "shard", "id"), condition=Q(current=True), name="revocation_current_idx"),
            # Deltas: every row after the base's max_revocation_id.
            models.Index(fields=("ca", "id"), name="revocation_ca_seq_idx"),
            models.Index(fields=("ca", "serial_number"), name="revocation_ca_serial_idx"),
        ]
        constraints = [
            # At most one row in effect per serial and CA.
            models.UniqueConstraint(fields=("ca", "serial_number"), condition=Q(current=True),
                                    name="revocation_one_current_per_serial"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.serial_number}"
