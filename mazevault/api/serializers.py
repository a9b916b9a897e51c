"""Serializers for tenancy, tokens, approval policies and audit events."""
from __future__ import annotations

from rest_framework import serializers

from mazevault.api.strict import StrictModelSerializer, StrictSerializer
from mazevault.models import ApiToken, ApprovalPolicy, AuditEvent, Environment, Organization, Project
from mazevault.rbac import PERMISSIONS, Role


class OrganizationSerializer(StrictModelSerializer):
    class Meta:
        model = Organization
        fields = ("id", "name", "description", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        extra_kwargs = {"name": {"validators": []}}


class ProjectSerializer(StrictModelSerializer):
    organization_id = serializers.UUIDField()
    environment = serializers.ChoiceField(choices=Environment.choices, default=Environment.DEVELOPMENT)

    class Meta:
        model = Project
        fields = ("id", "organization_id", "name", "description", "environment", "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")


class ProjectUpdateSerializer(StrictModelSerializer):
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)

    class Meta:
        model = Project
        fields = ("name", "description", "environment")


class ApprovalPolicySerializer(StrictModelSerializer):
    project_id = serializers.UUIDField(read_only=True)
    required_approvals = serializers.IntegerField(min_value=1, max_value=10, default=1)
    approver_role = serializers.ChoiceField(choices=Role.choices, required=False, allow_blank=True, default="")
    environments = serializers.ListField(child=serializers.ChoiceField(choices=Environment.choices), required=False,
                                         default=list, max_length=3)

    class Meta:
        model = ApprovalPolicy
        fields = ("id", "project_id", "name", "required_approvals", "approver_role", "environments",
                  "created_at", "updated_at")
        read_only_fields = ("id", "project_id", "created_at", "updated_at")


class TokenCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=PERMISSIONS), required=False, default=list,
                                   max_length=len(PERMISSIONS))
    duration = serializers.RegexField(r"^[1-9]\d{0,5}[smhdw]$", required=False, allow_null=True, default=None,
                                      help_text="Lifetime such as 30m, 24h, 90d; omitted: MAZEVAULT_DEFAULT_TOKEN_DAYS. "
                                                "Never beyond MAZEVAULT_MAX_TOKEN_DAYS, nor beyond the expiry of "
                                                "the token making the call.")


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ("id", "name", "token_prefix", "scopes", "expires_at", "revoked_at", "last_used_at", "created_at")
        read_only_fields = fields


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(help_text="The token; shown only in this response.")

    class Meta(TokenSerializer.Meta):
        fields = (*TokenSerializer.Meta.fields, "token")
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    actor_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = AuditEvent
        fields = ("id", "seq", "created_at", "actor_id", "actor_name", "action", "entity_type", "entity_id",
                  "organization_id", "project_id", "severity", "ip_address", "request_id", "details",
                  "prev_hash", "chain_hash")
        read_only_fields = fields


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded"])
    version = serializers.CharField()
    components = serializers.DictField(child=serializers.DictField())
