"""Wire shapes for CAs, templates and certificates (snake_case, UUID ids, RFC 3339 UTC)."""
from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from certificates.models import (CAKind, CAStatus, Certificate, CertificateAuthority, CertificateTemplate,
                                 RequestMode, RevocationReason)
from certificates.pki import extensions, keys, names
from mazevault.api.strict import StrictModelSerializer, StrictSerializer
from mazevault.models import Environment

SUBJECT_KEYS = ("common_name", "organization", "organizational_unit", "locality", "state", "country",
                "email_address")
CA_KEY_TYPES = [k for k in keys.KEY_TYPES if k != "ed25519"]


def _at_most(count: int):
    def check(value):
        if len(value) > count:
            raise serializers.ValidationError(f"At most {count} entries.")
    return check


class SubjectSerializer(StrictSerializer):
    common_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    organization = serializers.CharField(max_length=64, required=False, allow_blank=True)
    organizational_unit = serializers.CharField(max_length=64, required=False, allow_blank=True)
    locality = serializers.CharField(max_length=128, required=False, allow_blank=True)
    state = serializers.CharField(max_length=128, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, min_length=2, required=False, allow_blank=True)
    email_address = serializers.CharField(max_length=255, required=False, allow_blank=True)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(SUBJECT_KEYS)
            if unknown:
                raise serializers.ValidationError({k: ["Unknown subject field."] for k in sorted(unknown)})
        values = super().to_internal_value(data)
        return {k: v for k, v in values.items() if v}


class SanSerializer(StrictSerializer):
    dns_names = serializers.ListField(child=serializers.CharField(max_length=253), required=False, max_length=1000)
    ip_addresses = serializers.ListField(child=serializers.IPAddressField(), required=False, max_length=1000)
    email_addresses = serializers.ListField(child=serializers.EmailField(max_length=255), required=False,
                                            max_length=1000)
    uris = serializers.ListField(child=serializers.CharField(max_length=2048), required=False, max_length=1000)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(names.SAN_KEYS)
            if unknown:
                raise serializers.ValidationError({k: ["Unknown SAN type."] for k in sorted(unknown)})
        return super().to_internal_value(data)


# --- CAs -------------------------------------------------------------------------------------
@extend_schema_field({"type": "string", "nullable": True, "enum": [label for _, label in RevocationReason.choices],
                      "description": "RFC 5280 reason name; the numeric codes 0-6 are accepted on input."})
class RevocationReasonField(serializers.Field):
    """An RFC 5280 CRLReason: rendered by name (the seed's spelling), parsed from a name or a code."""

    default_error_messages = {"invalid": "Unknown revocation reason {value!r}: one of "
                                         + ", ".join(label for _, label in RevocationReason.choices)
                                         + " (or their codes 0-6)."}

    def to_representation(self, value):
        return RevocationReason(value).label if value is not None else None

    def to_internal_value(self, data):
        reason = RevocationReason.parse(data)
        if reason is None:
            self.fail("invalid", value=data)
        return reason


# The CA's CRL/OCSP publication settings, one vocabulary for the API, the admin and docs/crl.md.
CRL_SETTING_FIELDS = ("crl_full_interval_hours", "crl_full_validity_hours", "crl_delta_interval_hours",
                      "crl_delta_validity_hours", "crl_keep_expired", "crl_shards", "ocsp_sign_with_ca_key")


class CASerializer(serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)
    project_id = serializers.UUIDField(read_only=True, allow_null=True)
    parent_id = serializers.UUIDField(read_only=True, allow_null=True)
    crl_url = serializers.CharField(read_only=True, help_text="CRL URL override; empty: the default under "
                                                              "MAZEVAULT_PUBLIC_URL (see crl_distribution_url).")
    ocsp_url = serializers.CharField(read_only=True, help_text="OCSP URL override; empty: the default under "
                                                               "MAZEVAULT_PUBLIC_URL (see ocsp_responder_url).")
    crl_distribution_url = serializers.SerializerMethodField()
    ocsp_responder_url = serializers.SerializerMethodField()
    ca_issuers_url = serializers.SerializerMethodField()
    revocation_reason = RevocationReasonField(read_only=True)

    class Meta:
        model = CertificateAuthority
        fields = ("id", "organization_id", "project_id", "name", "kind", "status", "parent_id", "key_type",
                  "subject", "serial_number", "not_before", "not_after", "path_length", "certificate_pem",
                  "crl_url", "ocsp_url", *CRL_SETTING_FIELDS, "revoked_at", "revocation_reason",
                  "crl_distribution_url", "ocsp_responder_url", "ca_issuers_url", "created_at", "updated_at")
        read_only_fields = fields

    def get_crl_distribution_url(self, obj: CertificateAuthority) -> str:
        return obj.crl_urls()[0]

    def get_ocsp_responder_url(self, obj: CertificateAuthority) -> str:
        return obj.ocsp_urls()[0]

    def get_ca_issuers_url(self, obj: CertificateAuthority) -> str:
        return obj.ca_issuers_urls()[0]


class CASubjectSerializer(SubjectSerializer):
    common_name = serializers.CharField(max_length=64, help_text="A CA always has a common name.")


class CACreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=CAKind.choices, default=CAKind.ROOT)
    organization_id = serializers.UUIDField(required=False)
    project_id = serializers.UUIDField(required=False, allow_null=True)
    parent_id = serializers.UUIDField(required=False, allow_null=True,
                                      help_text="The issuing CA (one of ours) for an intermediate.")
    subject = CASubjectSerializer()
    key_type = serializers.ChoiceField(choices=CA_KEY_TYPES, default="ec-p256")
    validity_days = serializers.IntegerField(min_value=1, max_value=36500, default=3650)
    path_length = serializers.IntegerField(min_value=0, max_value=10, required=False, allow_null=True, default=None)
    crl_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    ocsp_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    crl_full_interval_hours = serializers.IntegerField(min_value=1, max_value=24 * 366, default=24)
    crl_full_validity_hours = serializers.IntegerField(min_value=1, max_value=24 * 366, default=168)
    crl_delta_interval_hours = serializers.IntegerField(min_value=1, max_value=24 * 31, default=1)
    crl_delta_validity_hours = serializers.IntegerField(min_value=1, max_value=24 * 31, default=24)
    crl_keep_expired = serializers.BooleanField(default=False)
    crl_shards = serializers.IntegerField(min_value=0, max_value=1024, default=0)
    ocsp_sign_with_ca_key = serializers.BooleanField(default=False)

    def validate(self, attrs):
        if attrs["kind"] == CAKind.INTERMEDIATE and not attrs.get("parent_id"):
            raise serializers.ValidationError({"parent_id": ["An intermediate CA needs parent_id."]})
        if attrs["kind"] == CAKind.ROOT and attrs.get("parent_id"):
            raise serializers.ValidationError({"parent_id": ["A root CA has no parent."]})
        if not attrs.get("organization_id") and not attrs.get("project_id") and not attrs.get("parent_id"):
            raise serializers.ValidationError({"organization_id": ["organization_id or project_id is required."]})
        if not attrs["subject"].get("common_name"):
            raise serializers.ValidationError({"subject": {"common_name": ["A CA needs a common name."]}})
        check_crl_intervals(attrs)
        return attrs


def check_crl_intervals(attrs: dict, instance=None) -> None:
    """A CRL must be replaced before its nextUpdate: each interval is at most its validity."""
    for kind in ("full", "delta"):
        interval = attrs.get(f"crl_{kind}_interval_hours", getattr(instance, f"crl_{kind}_interval_hours", None))
        validity = attrs.get(f"crl_{kind}_validity_hours", getattr(instance, f"crl_{kind}_validity_hours", None))
        if interval is not None and validity is not None and interval > validity:
            raise serializers.ValidationError({f"crl_{kind}_interval_hours": [
                f"Must not exceed crl_{kind}_validity_hours ({validity})."]})


class CAUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=[CAStatus.ACTIVE, CAStatus.DISABLED], required=False,
                                     help_text="active or disabled; a CA is revoked through POST /ca/{id}/revoke.")
    crl_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    ocsp_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    crl_full_interval_hours = serializers.IntegerField(min_value=1, max_value=24 * 366, required=False)
    crl_full_validity_hours = serializers.IntegerField(min_value=1, max_value=24 * 366, required=False)
    crl_delta_interval_hours = serializers.IntegerField(min_value=1, max_value=24 * 31, required=False)
    crl_delta_validity_hours = serializers.IntegerField(min_value=1, max_value=24 * 31, required=False)
    crl_keep_expired = serializers.BooleanField(required=False)
    crl_shards = serializers.IntegerField(min_value=0, max_value=1024, required=False)
    ocsp_sign_with_ca_key = serializers.BooleanField(required=False)


# --- Templates -------------------------------------------------------------------------------
class SubjectRuleSerializer(StrictSerializer):
    required = serializers.BooleanField(default=False)
    pattern = serializers.CharField(max_length=500, required=False, allow_null=True, allow_blank=True, default=None)
    default = serializers.CharField(max_length=128, required=False, allow_null=True, allow_blank=True, default=None)

    def validate_pattern(self, value):
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise serializers.ValidationError(f"Not a valid regular expression: {exc}") from None
        return value or None


class TemplateSerializer(StrictModelSerializer):
    organization_id = serializers.UUIDField(required=False)
    project_id = serializers.UUIDField(required=False, allow_null=True)
    ca_id = serializers.UUIDField()
    approval_policy_id = serializers.UUIDField(required=False, allow_null=True)
    key_algorithms = serializers.ListField(child=serializers.ChoiceField(choices=keys.KEY_TYPES), min_length=1,
                                           max_length=len(keys.KEY_TYPES))
    default_key_type = serializers.ChoiceField(choices=keys.KEY_TYPES, required=False)
    min_rsa_key_size = serializers.IntegerField(min_value=2048, max_value=8192, default=2048)
    validity_days = serializers.IntegerField(min_value=1, max_value=36500, default=365)
    min_validity_days = serializers.IntegerField(min_value=1, max_value=36500, default=1)
    max_validity_days = serializers.IntegerField(min_value=1, max_value=36500, default=397)
    subject_policy = serializers.DictField(child=SubjectRuleSerializer(), required=False, default=dict)
    san_types = serializers.ListField(child=serializers.ChoiceField(choices=names.SAN_KEYS), required=False,
                                      default=list, max_length=4)
    san_patterns = serializers.DictField(child=serializers.ListField(child=serializers.CharField(max_length=500),
                                                                     max_length=50),
                                         required=False, default=dict)
    max_sans = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    key_usage = serializers.ListField(child=serializers.ChoiceField(choices=extensions.KEY_USAGES), min_length=1,
                                      max_length=9)
    extended_key_usage = serializers.ListField(
        child=serializers.ChoiceField(choices=list(extensions.EXTENDED_KEY_USAGES)), default=list, max_length=6)
    renewal_window_days = serializers.IntegerField(min_value=0, max_value=365, default=30)

    class Meta:
        model = CertificateTemplate
        fields = ("id", "organization_id", "project_id", "name", "description", "ca_id", "key_algorithms",
                  "min_rsa_key_size", "default_key_type", "validity_days", "min_validity_days", "max_validity_days",
                  "subject_policy", "san_types", "san_patterns", "allow_wildcards", "require_san", "max_sans",
                  "copy_cn_to_san", "key_usage", "extended_key_usage", "auto_approve", "approval_policy_id",
                  "renewal_window_days", "key_export_allowed", "acme_profile", "is_active", "created_at",
                  "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        extra_kwargs = {"name": {"max_length": 100}}

    def validate_key_usage(self, value):
        ca_only = {"keyCertSign", "cRLSign"} & set(value)
        if ca_only:
            raise serializers.ValidationError(f"{sorted(ca_only)} are for CA certificates, not templates.")
        return value

    def validate_subject_policy(self, value):
        unknown = set(value) - set(SUBJECT_KEYS)
        if unknown:
            raise serializers.ValidationError(f"Unknown subject fields: {sorted(unknown)}")
        return value

    def validate_san_patterns(self, value):
        for key, patterns in value.items():
            if key not in names.SAN_KEYS:
                raise serializers.ValidationError(f"Unknown SAN type {key}.")
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise serializers.ValidationError(f"{key}: not a valid regular expression: {exc}") from None
        return value

    def validate(self, attrs):
        instance = self.instance
        get = lambda name: attrs.get(name, getattr(instance, name, None))  # noqa: E731
        lo, default, hi = get("min_validity_days"), get("validity_days"), get("max_validity_days")
        if not (lo <= default <= hi):
            raise serializers.ValidationError(
                {"validity_days": ["Must lie between min_validity_days and max_validity_days."]})
        algorithms = get("key_algorithms") or []
        default_key = attrs.get("default_key_type") or getattr(instance, "default_key_type", None)
        if default_key not in algorithms:
            if "default_key_type" in attrs:
                raise serializers.ValidationError({"default_key_type": ["Must be one of key_algorithms."]})
            attrs["default_key_type"] = algorithms[0]
        return attrs


# --- Certificates ----------------------------------------------------------------------------
class CSRSubmitSerializer(StrictSerializer):
    template_id = serializers.UUIDField()
    project_id = serializers.UUIDField()
    organization_id = serializers.UUIDField(required=False, allow_null=True)
    csr_source_mode = serializers.ChoiceField(choices=[*RequestMode.values, "uploaded"])
    csr_pem = serializers.CharField(required=False, allow_blank=True, max_length=65536, trim_whitespace=False)
    requested_cn = serializers.CharField(required=False, allow_blank=True, max_length=64)
    requested_san = SanSerializer(required=False)
    requested_subject = SubjectSerializer(required=False)
    requested_key_algorithm = serializers.ChoiceField(choices=["RSA", "ECDSA", "EC", "Ed25519", "rsa", "ecdsa", "ec",
                                                               "ed25519"], required=False, allow_blank=True)
    requested_key_size = serializers.IntegerField(required=False, allow_null=True, min_value=256, max_value=8192)
    key_storage_mode = serializers.ChoiceField(choices=["local", "external"], required=False, allow_blank=True)
    key_integration_id = serializers.UUIDField(required=False, allow_null=True)
    key_secret_path = serializers.CharField(required=False, allow_blank=True, max_length=500)
    key_secret_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    create_new_secret = serializers.BooleanField(required=False, default=False)
    generation_reference = serializers.CharField(required=False, allow_blank=True, max_length=200)
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False,
                                    validators=[_at_most(50)])
    owner_contacts = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)
    auto_renew = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs["csr_source_mode"] == "uploaded":
            attrs["csr_source_mode"] = RequestMode.UPLOADED_CSR
        mode = attrs["csr_source_mode"]
        if mode == RequestMode.UPLOADED_CSR and not attrs.get("csr_pem", "").strip():
            raise serializers.ValidationError({"csr_pem": ["Required for uploaded_csr."]})
        if mode == RequestMode.AZURE_KEY_VAULT_GENERATED and not attrs.get("key_integration_id"):
            raise serializers.ValidationError({"key_integration_id": ["Required for azure_key_vault_generated."]})
        if mode != RequestMode.AZURE_KEY_VAULT_GENERATED and attrs.get("key_storage_mode") != "external":
            # These steer external key custody; accepting and ignoring them would mislead the caller.
            stray = [name for name in ("key_integration_id", "key_secret_path", "key_secret_name", "create_new_secret")
                     if attrs.get(name)]
            if stray:
                raise serializers.ValidationError(
                    {name: ["Only with key_storage_mode external."] for name in stray})
        return attrs


class ApprovalSerializer(serializers.Serializer):
    approver = serializers.CharField(source="approver.username")
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()


class CertificateListSerializer(serializers.ModelSerializer):
    project_id = serializers.UUIDField(read_only=True)
    ca_id = serializers.UUIDField(read_only=True, allow_null=True)
    template_id = serializers.UUIDField(read_only=True, allow_null=True)
    san = serializers.ListField(child=serializers.CharField(), read_only=True)
    expiry_date = serializers.DateTimeField(source="not_after", read_only=True, allow_null=True)

    class Meta:
        model = Certificate
        fields = ("id", "common_name", "serial_number", "status", "issuer_cn", "not_before", "not_after",
                  "expiry_date", "key_type", "san", "project_id", "ca_id", "template_id", "requested_at")
        read_only_fields = fields


class CertificateDetailSerializer(CertificateListSerializer):
    organization_id = serializers.UUIDField(read_only=True)
    requested_by = serializers.SerializerMethodField()
    rejected_by = serializers.SerializerMethodField()
    revoked_by = serializers.SerializerMethodField()
    revocation_reason = RevocationReasonField(read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    csr_source_mode = serializers.SerializerMethodField()
    has_private_key = serializers.SerializerMethodField()
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    owner_contacts = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(CertificateListSerializer.Meta):
        fields = (*CertificateListSerializer.Meta.fields, "organization_id", "source", "subject",
                  "fingerprint_sha256", "certificate_pem", "chain_pem", "csr_source_mode", "has_private_key",
                  "name", "description", "labels", "owner_contacts", "auto_renew", "required_approvals",
                  "approver_role", "approvals", "requested_by", "issued_at", "rejected_at", "rejected_by",
                  "rejection_reason", "revoked_at", "revoked_by", "revocation_reason", "revocation_comment",
                  "invalidity_date", "archived_at", "predecessor_id", "updated_at")
        read_only_fields = fields

    def get_requested_by(self, obj: Certificate) -> str | None:
        return obj.requested_by.username if obj.requested_by_id else None

    def get_rejected_by(self, obj: Certificate) -> str | None:
        return obj.rejected_by.username if obj.rejected_by_id else None

    def get_revoked_by(self, obj: Certificate) -> str | None:
        return obj.revoked_by.username if obj.revoked_by_id else None

    def get_csr_source_mode(self, obj: Certificate) -> str | None:
        request = getattr(obj, "request", None)
        return request.mode if request is not None else None

    def get_has_private_key(self, obj: Certificate) -> bool:
        return obj.private_key_id is not None


class CertificateUpdateSerializer(StrictSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False,
                                    validators=[_at_most(50)])
    owner_contacts = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)
    auto_renew = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {k: ["This property cannot be changed (only name, description, labels, owner_contacts, "
                         "auto_renew)."] for k in sorted(unknown)})
        return super().to_internal_value(data)


class ApproveSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RejectSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000)


ENVIRONMENTS = Environment.values


# --- Revocation -----------------------------------------------------------------------------------
class RevokeSerializer(StrictSerializer):
    reason = RevocationReasonField(required=False, default=RevocationReason.UNSPECIFIED)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    invalidity_date = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                                help_text="RFC 5280 5.3.2: when the key was known or suspected "
                                                          "to be compromised (RFC 3339, not in the future).")


class UnrevokeSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class RevocationResultSerializer(serializers.ModelSerializer):
    """The seed's revoke response: id, status, revocation_reason, revoked_at, revoked_by."""

    revocation_reason = RevocationReasonField(read_only=True)
    revoked_by = serializers.SerializerMethodField()

    class Meta:
        model = Certificate
        fields = ("id", "status", "revocation_reason", "revoked_at", "revoked_by")
        read_only_fields = fields

    def get_revoked_by(self, obj: Certificate) -> str | None:
        return obj.revoked_by.username if obj.revoked_by_id else None
