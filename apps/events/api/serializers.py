"""Shapes of the events part of the management API (/api/v1/)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.api.serializers import StrictCharField
from apps.events import services
from apps.events.models import (
    DeliveryAttempt,
    Event,
    EventDelivery,
    EventSubscription,
    SubscriptionSchema,
)


class SubscriptionSerializer(serializers.ModelSerializer[EventSubscription]):
    """A subscription; `secret` only for those who may manage events: pass
    context={"show_secret": True}. The manual validation link is never shown: it goes to the
    endpoint only, in the validation event, as with Event Grid."""

    secret = serializers.SerializerMethodField()

    class Meta:
        model = EventSubscription
        fields = [
            "id",
            "name",
            "endpoint_url",
            "event_types",
            "schema",
            "state",
            "validation_error",
            "secret",
            "created_at",
        ]

    def get_secret(self, subscription: EventSubscription) -> str | None:
        return subscription.secret if self.context.get("show_secret") else None


class SubscriptionCreateSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=64)
    endpoint_url = StrictCharField(max_length=2048)
    event_types = serializers.ListField(child=StrictCharField(), required=False, default=list)
    schema = serializers.ChoiceField(
        choices=SubscriptionSchema.choices, required=False, default=SubscriptionSchema.EVENT_GRID
    )


class SubscriptionUpdateSerializer(serializers.Serializer[Any]):
    enabled = serializers.BooleanField(required=False)
    event_types = serializers.ListField(child=StrictCharField(), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give enabled, event_types, or both.")
        return attrs


class SampleEventSerializer(serializers.Serializer[Any]):
    event_type = StrictCharField(required=False, allow_blank=True)


class EventSerializer(serializers.ModelSerializer[Event]):
    class Meta:
        model = Event
        fields = ["id", "event_type", "subject", "data", "data_version", "event_time"]


class AttemptSerializer(serializers.ModelSerializer[DeliveryAttempt]):
    class Meta:
        model = DeliveryAttempt
        fields = ["started_at", "duration_ms", "status_code", "error", "response_excerpt"]


class DeliverySerializer(serializers.ModelSerializer[EventDelivery]):
    event_type = serializers.CharField(source="event.event_type", read_only=True)
    subscription_name = serializers.CharField(source="subscription.name", read_only=True)

    class Meta:
        model = EventDelivery
        fields = [
            "id",
            "event",
            "event_type",
            "subscription",
            "subscription_name",
            "state",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "dead_letter_reason",
            "created_at",
            "delivered_at",
        ]


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = serializers.SerializerMethodField()
    document = serializers.SerializerMethodField()

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempts", "document"]

    def get_attempts(self, delivery: EventDelivery) -> list[dict[str, Any]]:
        return list(AttemptSerializer(services.list_attempts(delivery), many=True).data)

    def get_document(self, delivery: EventDelivery) -> Any:
        """The JSON body this delivery POSTs."""
        return services.delivery_document(delivery)


class ValidationResultSerializer(serializers.Serializer[Any]):
    validationResult = serializers.CharField()
    subscriptionName = serializers.CharField()
    state = serializers.CharField()
