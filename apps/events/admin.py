from __future__ import annotations

from django.contrib import admin

from apps.events.models import DeliveryAttempt, Event, EventDelivery, EventSubscription


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["id", "resource", "event_type", "subject", "event_time"]
    list_filter = ["event_type"]
    search_fields = ["id", "subject"]
    readonly_fields = ["resource", "event_type", "subject", "data", "data_version", "event_time"]

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False


@admin.register(EventSubscription)
class EventSubscriptionAdmin(admin.ModelAdmin[EventSubscription]):
    list_display = ["name", "resource", "endpoint_url", "schema", "state", "created_at"]
    list_filter = ["state", "schema"]
    search_fields = ["name", "endpoint_url"]
    # Created through the console or API only: creation runs the endpoint's handshake.
    readonly_fields = ["resource", "secret", "validation_code", "validated_at", "created_at"]

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False


class DeliveryAttemptInline(admin.TabularInline[DeliveryAttempt, EventDelivery]):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = [
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
    ]


@admin.register(EventDelivery)
class EventDeliveryAdmin(admin.ModelAdmin[EventDelivery]):
    list_display = [
        "id",
        "resource",
        "subscription",
        "state",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["state"]
    readonly_fields = [
        "resource",
        "event",
        "subscription",
        "attempt_count",
        "lease_until",
        "queued_until",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    inlines = [DeliveryAttemptInline]

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False
