"""What goes on the wire: the ACS event types, and the Event Grid and CloudEvents envelopes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.accounts.models import Resource
from apps.events.models import Event, EventSubscription, SubscriptionSchema

PREFIX = "Microsoft.Communication."

# The Azure Communication Services event types a subscription may filter on.
EVENT_TYPES: tuple[str, ...] = tuple(
    PREFIX + name
    for name in (
        "SMSReceived",
        "SMSDeliveryReportReceived",
        "ChatMessageReceived",
        "ChatMessageEdited",
        "ChatMessageDeleted",
        "ChatThreadCreatedWithUser",
        "ChatThreadWithUserDeleted",
        "ChatThreadPropertiesUpdatedPerUser",
        "ChatMessageReceivedInThread",
        "ChatMessageEditedInThread",
        "ChatMessageDeletedInThread",
        "ChatThreadCreated",
        "ChatThreadDeleted",
        "ChatThreadPropertiesUpdated",
        "ChatThreadParticipantAdded",
        "ChatThreadParticipantRemoved",
        "ChatParticipantAddedToThreadWithUser",
        "ChatParticipantRemovedFromThreadWithUser",
        "CallStarted",
        "CallEnded",
        "CallParticipantAdded",
        "CallParticipantRemoved",
        "IncomingCall",
        "RecordingFileStatusUpdated",
    )
)
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


def sample_data(event_type: str, now: datetime) -> dict[str, Any]:
    """Data for a test event: the fields a real event of the type carries, made-up values."""
    when = timestamp(now)
    # Keys as ACS sends them for SMS (PascalCase, as in Microsoft's event samples).
    if event_type == SMS_RECEIVED:
        return {
            "MessageId": "Incoming_00000000000000000000000000000000",
            "From": "+15555550100",
            "To": "+15555550199",
            "Message": "A test message from Spool",
            "ReceivedTimestamp": when,
        }
    if event_type == SMS_DELIVERY_REPORT_RECEIVED:
        return {
            "MessageId": "Outgoing_00000000000000000000000000000000",
            "From": "+15555550199",
            "To": "+15555550100",
            "DeliveryStatus": "Delivered",
            "DeliveryStatusDetails": "No error.",
            "ReceivedTimestamp": when,
            "DeliveryAttempts": [{"Timestamp": when, "SegmentsSucceeded": 1, "SegmentsFailed": 0}],
            "Tag": "spool-test",
        }
    return {"spoolTest": True, "note": f"A test {event_type} event sent from Spool."}
