"""Domain events, webhook subscriptions, and the deliveries that carry one to the other.

A delivery is a row, not a message: the broker only says "look at this row now", so a lost
message or a killed worker delays a webhook but never loses it (beat's sweep re-sends).
"""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from apps.accounts.models import Resource


class Event(models.Model):
    """One thing that happened in a resource, stored as published (ACS event types)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=128)
    subject = models.CharField(max_length=500, blank=True)
    # DjangoJSONEncoder: a datetime or UUID in a publisher's data becomes a string, not an error.
    data = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    data_version = models.CharField(max_length=16, default="1.0")
    event_time = models.DateTimeField()

    class Meta:
        ordering = ["-event_time"]
        indexes = [
            models.Index(fields=["resource", "-event_time"]),
            models.Index(fields=["resource", "event_type", "-event_time"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class SubscriptionSchema(models.TextChoices):
    EVENT_GRID = "EventGridSchema", "Event Grid schema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0", "CloudEvents 1.0"


class SubscriptionState(models.TextChoices):
    # A worker makes the handshake; the web request that created the subscription never waits.
    VALIDATING = "validating", "Validating"
    ACTIVE = "active", "Active"
    AWAITING_VALIDATION = "awaitingManualValidation", "Awaiting manual validation"
    VALIDATION_FAILED = "validationFailed", "Validation failed"
    DISABLED = "disabled", "Disabled"


class EventSubscription(models.Model):
    """A webhook endpoint that receives a resource's events (all, or the types listed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="event_subscriptions"
    )
    name = models.CharField(max_length=64)
    endpoint_url = models.URLField(max_length=2048)
    # Full ACS type names; empty means every type.
    event_types = models.JSONField(default=list, blank=True)
    schema = models.CharField(
        max_length=32, choices=SubscriptionSchema.choices, default=SubscriptionSchema.EVENT_GRID
    )
    # Standard Webhooks signing secret: "whsec_" + base64 of random bytes.
    secret = models.CharField(max_length=100)
    state = models.CharField(
        max_length=32,
        choices=SubscriptionState.choices,
        default=SubscriptionState.AWAITING_VALIDATION,
    )
    validation_code = models.CharField(max_length=64)
    validation_expires_at = models.DateTimeField()
    # Set once the endpoint proved it wants the events; re-enabling needs it.
    validated_at = models.DateTimeField(null=True, blank=True)
    # Why the last handshake failed, as the subscriber may see it.
    validation_error = models.CharField(max_length=300, blank=True)
    # While `validating`: a queued or running handshake holds the row until then; past it the
    # sweep queues another (the message was lost, or the worker died).
    handshake_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "name"], name="events_subscription_name_per_resource"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    DEAD_LETTERED = "deadLettered", "Dead-lettered"


class EventDelivery(models.Model):
    """One event on its way to one subscription: the unit of retry."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Denormalized from the event, so a resource's deliveries list without a join.
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="event_deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        EventSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Retried until then, then dead-lettered (event time + EVENT_TTL_MINUTES; a manual
    # redelivery starts a new window).
    expires_at = models.DateTimeField()
    # A worker that claimed the row holds it until then; past it, the claim is presumed dead.
    lease_until = models.DateTimeField(null=True, blank=True)
    # A task was queued for the row; the sweep leaves it alone until then (no duplicate
    # messages while a backlog drains), and re-queues it after (the message was lost).
    queued_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    dead_letter_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "event deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscription"], name="events_one_delivery_per_subscription"
            )
        ]
        indexes = [
            # The sweep: pending rows by due time, and nothing else in the index.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="events_delivery_due_idx",
            ),
            models.Index(fields=["resource", "-created_at"]),
            models.Index(fields=["resource", "state", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.state})"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery and what came back."""

    delivery = models.ForeignKey(EventDelivery, on_delete=models.CASCADE, related_name="attempts")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # None: no answer
    error = models.CharField(max_length=200, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["started_at", "pk"]
        indexes = [
            models.Index(fields=["delivery", "started_at"]),
            # The metrics rollup: attempts made in an interval.
            models.Index(fields=["started_at"], name="delivery_attempt_started_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.pk} of {self.delivery_id}"
