"""Wire shapes of the EAB credential API (seed: EAB Credential Management)."""
from __future__ import annotations

import re

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mazevault.api.strict import StrictSerializer

from ..models import Account, EabCredential


class CredentialCreateSerializer(StrictSerializer):
    project_id = serializers.UUIDField()
    default_template_id = serializers.UUIDField()
    cluster_label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    allowed_identifiers = serializers.ListField(
        child=serializers.CharField(max_length=253), required=False, default=list, max_length=100,
        help_text="Regular expressions; when given, every identifier of an order must fully match one.")
    max_accounts = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None,
                                            help_text="How many ACME accounts may bind this credential "
                                                      "(null: any number; 1: strict single use).")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate_allowed_identifiers(self, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error:
                raise serializers.ValidationError({index: ["Not a valid regular expression."]}) from None
        return value

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("expires_at must be in the future.")
        return value


class BoundAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = ("id", "status", "contact", "created_at", "last_used_at")


class CredentialSerializer(serializers.ModelSerializer):
    eab_key_id = serializers.CharField(source="key_id", read_only=True)
    organization_id = serializers.UUIDField(read_only=True)
    project_id = serializers.UUIDField(read_only=True)
    default_template_id = serializers.UUIDField(read_only=True)
    status = serializers.SerializerMethodField()
    accounts = BoundAccountSerializer(many=True, read_only=True)

    class Meta:
        model = EabCredential
        fields = ("id", "eab_key_id", "organization_id", "project_id", "default_template_id", "cluster_label",
                  "allowed_identifiers", "max_accounts", "expires_at", "revoked_at", "status", "created_at",
                  "accounts")

    @extend_schema_field(serializers.ChoiceField(choices=["active", "revoked", "expired"]))
    def get_status(self, obj: EabCredential) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        return "active" if obj.usable() else "expired"


class CredentialCreatedSerializer(CredentialSerializer):
    eab_hmac_key = serializers.SerializerMethodField(
        help_text="The HMAC key, unpadded base64url (256 bits): returned only here, never again.")

    class Meta(CredentialSerializer.Meta):
        fields = (*CredentialSerializer.Meta.fields, "eab_hmac_key")

    def get_eab_hmac_key(self, obj: EabCredential) -> str:
        return self.context["eab_hmac_key"]
