"""The CRLs each CA published: number, kind, scope (shard), validity and the signed DER."""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from certificates.models import CertificateAuthority


class CRLKind(models.TextChoices):
    FULL = "full", "Full"
    DELTA = "delta", "Delta"


class CRLState(models.Model):
    """Per CA: the CRL Number counter shared by full and delta CRLs (RFC 5280 5.2.3: "monotonically
    increasing sequence number for a given CRL scope and CRL issuer"). Its row is locked for the whole
    of a generation, so generations of one CA are serialised: numbers are never reused or skipped, and a
    higher number always has newer content."""

    ca = models.OneToOneField(CertificateAuthority, primary_key=True, on_delete=models.CASCADE,
                              related_name="crl_state")
    last_number = models.PositiveBigIntegerField(default=0)
    # The most shards the CA was ever configured with: each keeps being published (its certificates
    # carry its URL) when crl_shards is lowered later.
    shards_published = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"CRL #{self.last_number} of {self.ca_id}"


class CRL(models.Model):
    """One signed CRL. ``number`` comes from the CA's single counter (full and delta share it,
    RFC 5280 5.2.3); ``max_revocation_id`` is the revocation history the CRL covers, so that a delta
    whose base is this CRL lists every Revocation row after it. ``shard`` None is the unsharded CRL."""

    id = models.BigAutoField(primary_key=True)
    ca = models.ForeignKey(CertificateAuthority, on_delete=models.CASCADE, related_name="crls")
    number = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=8, choices=CRLKind.choices)
    shard = models.PositiveSmallIntegerField(null=True, blank=True)
    base_number = models.PositiveBigIntegerField(null=True, blank=True)  # delta CRLs: the full CRL they extend
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()
    max_revocation_id = models.BigIntegerField(default=0)
    entry_count = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    der = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-number",)
        verbose_name = "CRL"
        constraints = [
            models.UniqueConstraint(fields=("ca", "number"), name="crl_unique_number_per_ca"),
            models.CheckConstraint(condition=Q(kind="full", base_number__isnull=True)
                                   | Q(kind="delta", base_number__isnull=False), name="crl_delta_has_base"),
        ]
        indexes = [models.Index(fields=("ca", "kind", "shard", "-number"), name="crl_latest_idx")]

    def __str__(self) -> str:
        scope = f" shard {self.shard}" if self.shard is not None else ""
        return f"{self.kind} CRL #{self.number}{scope} of {self.ca_id}"
