"""What goes on the wire: the ACS event types, and the Event Grid and CloudEvents envelopes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.accounts.models import Resource
from apps.events.models import Event, EventSubscription, SubscriptionSchema

PREFIX = "Microsoft.Communication."

# The Azure Communication Services event types a subscription may filter on, by service (as
# Microsoft's event schema pages group them; the console shows one group of checkboxes each).
EVENT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (service, tuple(PREFIX + name for name in names))
    for service, names in (
        ("SMS", ("SMSReceived", "SMSDeliveryReportReceived")),
        (
            "Chat",
            # Each change's thread-level event beside its copy per participant.
            (
                "ChatMessageReceivedInThread",
                "ChatMessageReceived",
                "ChatMessageEditedInThread",
                "ChatMessageEdited",
                "ChatMessageDeletedInThread",
                "ChatMessageDeleted",
                "ChatThreadCreated",
                "ChatThreadCreatedWithUser",
                "ChatThreadPropertiesUpdated",
                "ChatThreadPropertiesUpdatedPerUser",
                "ChatThreadDeleted",
                "ChatThreadWithUserDeleted",
                "ChatThreadParticipantAdded",
                "ChatParticipantAddedToThreadWithUser",
                "ChatThreadParticipantRemoved",
                "ChatParticipantRemovedFromThreadWithUser",
            ),
        ),
        (
            "Calling",
            (
                "CallStarted",
                "CallEnded",
                "CallParticipantAdded",
                "CallParticipantRemoved",
                "IncomingCall",
            ),
        ),
        ("Call recording", ("RecordingFileStatusUpdated",)),
    )
)
EVENT_TYPES: tuple[str, ...] = tuple(t for _, types in EVENT_GROUPS for t in types)
SMS_RECEIVED = PREFIX + "SMSReceived"
SMS_DELIVERY_REPORT_RECEIVED = PREFIX + "SMSDeliveryReportReceived"

VALIDATION_EVENT_TYPE = "Microsoft.EventGrid.SubscriptionValidationEvent"
# Event Grid's own subscriptions live in an Azure subscription; Spool has none, so every topic
# names the all-zero subscription and a fixed resource group, with the resource's slug last.
TOPIC_PREFIX = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/spool"
    "/providers/Microsoft.Communication/communicationServices/"
)
TEST_SUBJECT = "/spool/test"

EVENT_GRID_CONTENT_TYPE = "application/json"
CLOUD_EVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def topic(resource: Resource) -> str:
    return TOPIC_PREFIX + resource.slug


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_grid_event(event: Event, resource: Resource) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "topic": topic(resource),
        "subject": event.subject,
        "data": event.data,
        "eventType": event.event_type,
        "dataVersion": event.data_version,
        "metadataVersion": "1",
        "eventTime": timestamp(event.event_time),
    }


def cloud_event(event: Event, resource: Resource) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(event.id),
        "source": topic(resource),
        "type": event.event_type,
        "subject": event.subject,
        "time": timestamp(event.event_time),
        "datacontenttype": "application/json",
        "data": event.data,
    }


def envelope(event: Event, subscription: EventSubscription) -> tuple[Any, str]:
    """The JSON document a subscription receives for `event`, and its content type: Event
    Grid sends an array (of one event), CloudEvents structured mode a single object."""
    resource = subscription.resource
    if subscription.schema == SubscriptionSchema.CLOUD_EVENTS:
        return cloud_event(event, resource), CLOUD_EVENTS_CONTENT_TYPE
    return [event_grid_event(event, resource)], EVENT_GRID_CONTENT_TYPE


def validation_event(
    subscription: EventSubscription, *, validation_url: str, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "id": str(subscription.id),
            "topic": topic(subscription.resource),
            "subject": "",
            "data": {
                "validationCode": subscription.validation_code,
                "validationUrl": validation_url,
            },
            "eventType": VALIDATION_EVENT_TYPE,
            "eventTime": timestamp(now),
            "metadataVersion": "1",
            "dataVersion": "2",
        }
    ]
