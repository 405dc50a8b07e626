"""Sample `data` for test events: for each ACS event type, the fields the app that publishes it
sends (sms/services.py and sms/delivery.py, chat/notifications.py, calls/signaling.py,
automation/services/calls.py, automation/media_steps.py), with made-up values. A receiver that
parses Spool's real events parses these too; tests/events/test_samples.py holds the shapes to
the real publishers'.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apps.accounts.models import Resource
from apps.accounts.services import resource_endpoint
from apps.events import schemas

SENDER_NUMBER = "+15555550100"
RESOURCE_NUMBER = "+15555550199"
THREAD_ID = "19:5a3c9e0b7d2f41c6a8e4b1d9f0c2a7e3@thread.v2"
MESSAGE_ID = "1732435200123"
CALL_ID = "4f1d2c3b-0a9e-4b8c-8d7e-6f5a4b3c2d1e"
# Two identities of the resource: the one who acts, and another participant (the recipient).
ACTOR = "7c1e0d2a-4b3f-4e5d-9a8b-1c2d3e4f5a6b"
OTHER = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def sample_data(event_type: str, resource: Resource, now: datetime) -> dict[str, Any]:
    """Data for a test event of `event_type` (one of schemas.EVENT_TYPES) in `resource`.
    Raises KeyError for any other type."""
    return _BUILDERS[event_type.removeprefix(schemas.PREFIX)](_Sample(resource, now))


class _Sample:
    """What every builder needs: the resource's raw ids, and times around `now`."""

    def __init__(self, resource: Resource, now: datetime) -> None:
        self.resource = resource
        self.now = now
        self.actor = f"8:acs:{resource.pk}_{ACTOR}"
        self.other = f"8:acs:{resource.pk}_{OTHER}"

    def time(self, seconds_ago: float = 0) -> str:
        return schemas.timestamp(self.now - timedelta(seconds=seconds_ago))

    def version(self) -> int:
        return int(self.now.timestamp() * 1000)


# --- SMS (PascalCase keys, as ACS sends them) ------------------------------------------------
def _sms_received(s: _Sample) -> dict[str, Any]:
    return {
        "MessageId": "Incoming_20241124070000123456abcdef0123456789",
        "From": SENDER_NUMBER,
        "To": RESOURCE_NUMBER,
        "Message": "A test message from Spool",
        "ReceivedTimestamp": s.time(),
    }


def _sms_delivery_report(s: _Sample) -> dict[str, Any]:
    return {
        "MessageId": "Outgoing_20241124070000123456abcdef0123456789",
        "From": RESOURCE_NUMBER,
        "To": SENDER_NUMBER,
        "DeliveryStatus": "Delivered",
        "DeliveryStatusDetails": "Delivered to the handset.",
        "ReceivedTimestamp": s.time(),
        "DeliveryAttempts": [{"Timestamp": s.time(2), "SegmentsSucceeded": 1, "SegmentsFailed": 0}],
        "Tag": "spool-test",
    }


# --- Chat ------------------------------------------------------------------------------------
def _grid(raw_id: str) -> dict[str, Any]:
    """An identifier as Event Grid's chat events carry it."""
    return {"rawId": raw_id, "communicationUser": {"id": raw_id}}


def _participant(raw_id: str, name: str) -> dict[str, Any]:
    return {
        "displayName": name,
        "participantCommunicationIdentifier": _grid(raw_id),
        "metadata": {},
    }


def _per_user(build: Callable[[_Sample], dict[str, Any]]) -> Callable[[_Sample], dict[str, Any]]:
    """The copy of a thread event addressed to one participant."""
    return lambda s: {**build(s), "recipientCommunicationIdentifier": _grid(s.other)}


def _message(change: str) -> Callable[[_Sample], dict[str, Any]]:
    def build(s: _Sample) -> dict[str, Any]:
        data: dict[str, Any] = {
            "messageId": MESSAGE_ID,
            "senderCommunicationIdentifier": _grid(s.actor),
            "senderDisplayName": "Alice",
            "composeTime": s.time(60),
            "type": "Text",
            "version": s.version(),
            "threadId": THREAD_ID,
            "transactionId": uuid.uuid4().hex,
        }
        if change == "deleted":
            data["deleteTime"] = s.time()
            return data
        data.update(messageBody="A test message from Spool", metadata={})
        if change == "edited":
            data["editTime"] = s.time()
        return data

    return build


def _thread(s: _Sample) -> dict[str, Any]:
    return {
        "createTime": s.time(3600),
        "version": s.version(),
        "threadId": THREAD_ID,
        "transactionId": uuid.uuid4().hex,
    }


def _thread_created(s: _Sample) -> dict[str, Any]:
    return {
        **_thread(s),
        "createdByCommunicationIdentifier": _grid(s.actor),
        "properties": {"topic": "A test thread from Spool"},
        "metadata": {},
        "participants": [_participant(s.actor, "Alice"), _participant(s.other, "Bob")],
    }


def _thread_updated(s: _Sample) -> dict[str, Any]:
    return {
        **_thread(s),
        "editedByCommunicationIdentifier": _grid(s.actor),
        "editTime": s.time(),
        "properties": {"topic": "A new topic from Spool"},
        "metadata": {},
    }


def _thread_deleted(s: _Sample) -> dict[str, Any]:
    return {
        **_thread(s),
        "deleteTime": s.time(),
        "deletedByCommunicationIdentifier": _grid(s.actor),
    }


def _participant_added(s: _Sample) -> dict[str, Any]:
    return {
        **_thread(s),
        "time": s.time(),
        "addedByCommunicationIdentifier": _grid(s.actor),
        "participantAdded": _participant(s.other, "Bob"),
    }


def _participant_removed(s: _Sample) -> dict[str, Any]:
    return {
        **_thread(s),
        "time": s.time(),
        "removedByCommunicationIdentifier": _grid(s.actor),
        "participantRemoved": _participant(s.other, "Bob"),
    }


# --- Calling ---------------------------------------------------------------------------------
def _call_user(raw_id: str) -> dict[str, Any]:
    return {"communicationIdentifier": _grid(raw_id), "role": "Attendee"}


def _call(s: _Sample) -> dict[str, Any]:
    return {"correlationId": CALL_ID, "isTwoParty": True, "isRoomsCall": False}


def _call_started(s: _Sample) -> dict[str, Any]:
    return {**_call(s), "startedBy": _call_user(s.actor)}


def _call_participant_added(s: _Sample) -> dict[str, Any]:
    return {
        **_call(s),
        "startedBy": _call_user(s.actor),
        "user": _call_user(s.other),
        "participantId": s.other,
    }


def _call_participant_removed(s: _Sample) -> dict[str, Any]:
    return {**_call(s), "user": _call_user(s.other), "participantId": s.other}


def _call_ended(s: _Sample) -> dict[str, Any]:
    return {
        **_call(s),
        "startedBy": _call_user(s.actor),
        "endedBy": _call_user(s.other),
        "reason": {"code": 0, "subCode": 0, "message": "The call ended normally."},
        "callDurationInSeconds": 42.0,
    }


def _incoming_call(s: _Sample) -> dict[str, Any]:
    return {
        "to": {"rawId": s.other, "kind": "communicationUser", "communicationUser": {"id": s.other}},
        "from": {
            "rawId": "4:" + SENDER_NUMBER,
            "kind": "phoneNumber",
            "phoneNumber": {"value": SENDER_NUMBER},
        },
        "callerDisplayName": "",
        "serverCallId": CALL_ID,
        # Not a context Spool signed: answering a test call is refused, as it should be.
        "incomingCallContext": "spool-test-event.not-a-real-incoming-call-context",
        "correlationId": CALL_ID,
    }


def _recording_file_status(s: _Sample) -> dict[str, Any]:
    endpoint = resource_endpoint(s.resource)
    recording = "spool-test-recording"
    content = f"{endpoint}recordings/{recording}/content"
    return {
        "recordingStorageInfo": {
            "recordingChunks": [
                {
                    "documentId": recording,
                    "index": 0,
                    "endReason": "SessionEnded",
                    "contentLocation": content,
                    "metadataLocation": f"{endpoint}recordings/{recording}/metadata",
                    "deleteLocation": content,
                }
            ]
        },
        "recordingStartTime": s.time(42),
        "recordingDurationMs": 42000,
        "recordingContentType": "Audio",
        "recordingChannelType": "Mixed",
        "recordingFormatType": "Wav",
        "sessionEndReason": "CallEnded",
    }


_BUILDERS: dict[str, Callable[[_Sample], dict[str, Any]]] = {
    "SMSReceived": _sms_received,
    "SMSDeliveryReportReceived": _sms_delivery_report,
    "ChatMessageReceivedInThread": _message("received"),
    "ChatMessageEditedInThread": _message("edited"),
    "ChatMessageDeletedInThread": _message("deleted"),
    "ChatMessageReceived": _per_user(_message("received")),
    "ChatMessageEdited": _per_user(_message("edited")),
    "ChatMessageDeleted": _per_user(_message("deleted")),
    "ChatThreadCreated": _thread_created,
    "ChatThreadCreatedWithUser": _per_user(_thread_created),
    "ChatThreadPropertiesUpdated": _thread_updated,
    "ChatThreadPropertiesUpdatedPerUser": _per_user(_thread_updated),
    "ChatThreadDeleted": _thread_deleted,
    "ChatThreadWithUserDeleted": _per_user(_thread_deleted),
    "ChatThreadParticipantAdded": _participant_added,
    "ChatParticipantAddedToThreadWithUser": _per_user(_participant_added),
    "ChatThreadParticipantRemoved": _participant_removed,
    "ChatParticipantRemovedFromThreadWithUser": _per_user(_participant_removed),
    "CallStarted": _call_started,
    "CallEnded": _call_ended,
    "CallParticipantAdded": _call_participant_added,
    "CallParticipantRemoved": _call_participant_removed,
    "IncomingCall": _incoming_call,
    "RecordingFileStatusUpdated": _recording_file_status,
}
