"""Shapes of the management API (/api/v1/)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, IncomingCalls, Membership, Resource, Role


class StrictIntegerField(serializers.IntegerField):
    """An integer that must be a JSON number: "60" or true are refused, not coerced."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class ResourceSerializer(serializers.ModelSerializer[Resource]):
    endpoint = serializers.SerializerMethodField()
    path_endpoint = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()

    class Meta:
        model = Resource
        fields = ["id", "slug", "name", "endpoint", "path_endpoint", "created_at", "role"]
        read_only_fields = ["id", "slug", "endpoint", "path_endpoint", "created_at", "role"]

    def get_endpoint(self, resource: Resource) -> str:
        return services.resource_endpoint(resource)

    def get_path_endpoint(self, resource: Resource) -> str:
        return services.path_endpoint(resource)

    def get_role(self, resource: Resource) -> str | None:
        request = self.context.get("request")
        return services.role_of(request.user, resource) if request else None


class ResourceNameSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=100)


class KeysSerializer(serializers.Serializer[Any]):
    endpoint = serializers.CharField()
    primaryKey = serializers.CharField()
    secondaryKey = serializers.CharField()
    primaryConnectionString = serializers.CharField()
    secondaryConnectionString = serializers.CharField()

    @staticmethod
    def of(resource: Resource) -> dict[str, str]:
        return {
            "endpoint": services.resource_endpoint(resource),
            "primaryKey": resource.primary_key,
            "secondaryKey": resource.secondary_key,
            "primaryConnectionString": services.connection_string(resource, "primary"),
            "secondaryConnectionString": services.connection_string(resource, "secondary"),
        }


class RegenerateKeySerializer(serializers.Serializer[Any]):
    key = serializers.ChoiceField(choices=["primary", "secondary"])


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]


class AddMemberSerializer(serializers.Serializer[Any]):
    user = StrictCharField(help_text="Username or email of an existing portal user.")
    role = serializers.ChoiceField(choices=Role.choices)


class RoleSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices)


class IdentitySerializer(serializers.ModelSerializer[CommunicationIdentity]):
    id = serializers.CharField(source="raw_id", read_only=True)

    class Meta:
        model = CommunicationIdentity
        fields = ["id", "created_at", "last_token_issued_at", "tokens_revoked_at", "incoming_calls"]


class IdentityUpdateSerializer(serializers.Serializer[Any]):
    incoming_calls = serializers.ChoiceField(choices=IncomingCalls.choices)


class TokenRequestSerializer(serializers.Serializer[Any]):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=services.SCOPES), allow_empty=False
    )
    expiresInMinutes = StrictIntegerField(
        min_value=services.MIN_EXPIRY_MINUTES, max_value=services.MAX_EXPIRY_MINUTES, required=False
    )


class CreateIdentitySerializer(serializers.Serializer[Any]):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=services.SCOPES), required=False, allow_empty=False
    )
    expiresInMinutes = StrictIntegerField(
        min_value=services.MIN_EXPIRY_MINUTES, max_value=services.MAX_EXPIRY_MINUTES, required=False
    )


class TokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField()
    expiresOn = serializers.DateTimeField()


class CreatedIdentitySerializer(serializers.Serializer[Any]):
    identity = IdentitySerializer()
    accessToken = TokenSerializer(required=False)
