"""What participants and webhooks are told about a thread.

Realtime frames carry the events of the ACS JavaScript chat client, with its names and payload
fields (`@azure/communication-signaling`, events/chat.d.ts), inside a small envelope:

    {"type": "chat", "event": "chatMessageReceived", "threadId": "19:...@thread.v2",
     "sequence": 12, "time": "2026-11-24T12:00:00.123Z", "data": {...the ACS event...}}

`sequence` is the thread's change number (absent on typing indicators, which are not kept);
docs/chat.md describes the protocol. Webhook events are the Event Grid chat events of ACS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from apps.accounts.services import identity_group
from apps.core import random_ids, realtime
from apps.core.identifiers import identifier_kind, identifier_model
from apps.events import schemas
from apps.events.services import Copies, NewEvent, publish_events

if TYPE_CHECKING:
    from apps.accounts.models import Resource
    from apps.chat.models import ChatMessage, ChatParticipant, ChatThread
    from apps.events.models import EventSubscription

FRAME_TYPE = "chat"
MESSAGE_TYPE_NAMES = {"text": "Text", "html": "RichText/Html"}


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def epoch_ms(value: datetime) -> str:
    return str(int(value.timestamp() * 1000))


def raw_id(resource_id: object, identity_id: object) -> str:
    return f"8:acs:{resource_id}_{identity_id}"


def _participant_raw_id(participant: ChatParticipant) -> str:
    return raw_id(participant.thread.resource_id, participant.identity_id)


def signaling_participant(participant: ChatParticipant) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": identifier_kind(_participant_raw_id(participant)),
        "displayName": participant.display_name,
        "metadata": participant.metadata,
    }
    if participant.share_history_time is not None:
        body["shareHistoryTime"] = rfc3339(participant.share_history_time)
    return body


# --- Realtime --------------------------------------------------------------------------------
def frame(
    thread: ChatThread,
    sequence: int | None,
    event: str,
    data: dict[str, Any],
    recipient_identity_id: str,
    *,
    at: datetime,
    replay: bool = False,
) -> dict[str, Any]:
    """One socket's frame. Events addressed to a user (messages, typing, receipts) name their
    recipient, as ACS's do; the log keeps them without it."""
    body = dict(data)
    if "sender" in body:
        body["recipient"] = identifier_kind(raw_id(thread.resource_id, recipient_identity_id))
    payload: dict[str, Any] = {
        "type": FRAME_TYPE,
        "event": event,
        "threadId": thread.pk,
        "time": rfc3339(at),
        "data": body,
    }
    if sequence is not None:
        payload["sequence"] = sequence
    if replay:
        payload["replay"] = True
    return payload


def push(
    thread: ChatThread,
    sequence: int | None,
    event: str,
    data: dict[str, Any],
    identity_ids: Sequence[str],
    *,
    at: datetime,
) -> None:
    """Send the event to each identity's sockets once the transaction commits."""
    push_all([(thread, sequence, event, data, identity_ids)], at=at)


def push_all(
    events: Sequence[tuple[ChatThread, int | None, str, dict[str, Any], Sequence[str]]],
    *,
    at: datetime,
) -> None:
    """`push` for several events (thread, sequence, event, data, identity ids), handed to the
    realtime publisher at once."""
    realtime.send_after_commit(
        [
            (identity_group(identity_id), frame(thread, sequence, event, data, identity_id, at=at))
            for thread, sequence, event, data, identity_ids in events
            for identity_id in dict.fromkeys(identity_ids)
        ]
    )


def _base_event(thread_id: str, sender_raw_id: str, display_name: str) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "sender": identifier_kind(sender_raw_id),
        "senderDisplayName": display_name,
    }


def message_event(
    message: ChatMessage, *, edited: bool = False, deleted: bool = False
) -> dict[str, Any]:
    data = _base_event(message.thread_id, message.sender_raw_id, message.sender_display_name)
    changed = message.deleted_at if deleted else message.edited_at if edited else None
    data.update(
        id=str(message.pk),
        createdOn=rfc3339(message.created_at),
        version=epoch_ms(changed or message.created_at),
        type=MESSAGE_TYPE_NAMES.get(message.type, message.type),
    )
    if deleted:
        data["deletedOn"] = rfc3339(message.deleted_at)  # type: ignore[arg-type]
        return data
    data.update(message=message.content, metadata=message.metadata)
    if edited:
        data["editedOn"] = rfc3339(message.edited_at)  # type: ignore[arg-type]
    return data


def typing(participant: ChatParticipant, display_name: str, now: datetime) -> dict[str, Any]:
    data = _base_event(
        participant.thread_id,
        _participant_raw_id(participant),
        display_name or participant.display_name,
    )
    data.update(version=epoch_ms(now), receivedOn=rfc3339(now))
    return data


def read_receipt(
    participant: ChatParticipant, message: ChatMessage, now: datetime
) -> dict[str, Any]:
    data = _base_event(
        participant.thread_id, _participant_raw_id(participant), participant.display_name
    )
    data.update(chatMessageId=str(message.pk), readOn=rfc3339(now))
    return data


def _properties(thread: ChatThread) -> dict[str, Any]:
    return {"topic": thread.topic, "metadata": thread.metadata}


NO_RETENTION = {"kind": "none"}
DELETED_BY_USER = "deletedByUser"
DELETED_BY_POLICY = "deletedByPolicy"


def retention_policy(thread: ChatThread) -> dict[str, Any]:
    """The thread's ChatRetentionPolicy, `{"kind": "none"}` when it has none (as ACS reports a
    thread created without one, and as the JS client reads an event that names none)."""
    if thread.retention_days is None:
        return dict(NO_RETENTION)
    return {"kind": "threadCreationDate", "deleteThreadAfterDays": thread.retention_days}


def thread_created(
    thread: ChatThread, participants: Sequence[ChatParticipant], creator: ChatParticipant
) -> dict[str, Any]:
    return {
        "threadId": thread.pk,
        "version": epoch_ms(thread.created_at),
        "createdOn": rfc3339(thread.created_at),
        "properties": _properties(thread),
        "participants": [signaling_participant(p) for p in participants],
        "createdBy": signaling_participant(creator),
        "retentionPolicy": retention_policy(thread),
    }


def thread_updated(thread: ChatThread, by: ChatParticipant, now: datetime) -> dict[str, Any]:
    return {
        "threadId": thread.pk,
        "version": epoch_ms(now),
        "properties": _properties(thread),
        "updatedOn": rfc3339(now),
        "updatedBy": signaling_participant(by),
        "retentionPolicy": retention_policy(thread),
    }


def thread_deleted(thread: ChatThread, by: ChatParticipant | None, now: datetime) -> dict[str, Any]:
    """`by` None: deleted by its retention policy, which the JS client reads as `deletedBy:
    null` with reason deletedByPolicy."""
    return {
        "threadId": thread.pk,
        "version": epoch_ms(now),
        "deletedOn": rfc3339(now),
        "deletedBy": signaling_participant(by) if by is not None else None,
        "reason": DELETED_BY_USER if by is not None else DELETED_BY_POLICY,
    }


def participants_added(
    by: ChatParticipant, added: Sequence[ChatParticipant], now: datetime
) -> dict[str, Any]:
    return {
        "threadId": by.thread_id,
        "version": epoch_ms(now),
        "addedOn": rfc3339(now),
        "participantsAdded": [signaling_participant(p) for p in added],
        "addedBy": signaling_participant(by),
    }


def participants_removed(
    by: ChatParticipant, removed: ChatParticipant, now: datetime
) -> dict[str, Any]:
    return {
        "threadId": by.thread_id,
        "version": epoch_ms(now),
        "removedOn": rfc3339(now),
        "participantsRemoved": [signaling_participant(removed)],
        "removedBy": signaling_participant(by),
    }


# --- Webhook events (Event Grid's Microsoft.Communication.Chat* types) -----------------------
def _grid_id(raw: str) -> dict[str, Any]:
    model = identifier_model(raw)
    model.pop("kind", None)
    return model


def _grid_participant(participant: ChatParticipant) -> dict[str, Any]:
    return {
        "displayName": participant.display_name,
        "participantCommunicationIdentifier": _grid_id(_participant_raw_id(participant)),
        "metadata": participant.metadata,
    }


def _per_user(
    event_type: str,
    data: dict[str, Any],
    subject: str,
    recipients: Sequence[str],
    resource_id: object,
) -> Copies:
    """The event's copy for each recipient, made if a subscription takes them."""

    def make() -> list[NewEvent]:
        return [
            NewEvent(
                event_type,
                f"{subject}/recipient/{raw_id(resource_id, identity_id)}",
                {
                    **data,
                    "recipientCommunicationIdentifier": _grid_id(raw_id(resource_id, identity_id)),
                },
            )
            for identity_id in recipients
        ]

    return Copies(event_type, make)


class ThreadEvent(NamedTuple):
    """A thread-level event, and the type of its copy for each recipient (Event Grid's two
    forms)."""

    thread_type: str
    user_type: str
    subject: str
    data: dict[str, Any]
    recipients: Sequence[str]


def _publish(
    resource: Resource,
    events: Sequence[ThreadEvent],
    subscriptions: Callable[[], list[EventSubscription]] | None = None,
) -> None:
    """Events of the resource's threads, with their copies, in one publication."""
    publish_events(
        resource,
        [NewEvent(schemas.PREFIX + e.thread_type, e.subject, e.data) for e in events],
        [
            _per_user(schemas.PREFIX + e.user_type, e.data, e.subject, e.recipients, resource.pk)
            for e in events
        ],
        subscriptions=subscriptions,
    )


def publish_message(message: ChatMessage, change: str, member_ids: Sequence[str]) -> None:
    """ChatMessage{Received,Edited,Deleted}InThread, and the per-user copy for every participant
    but the sender."""
    publish_messages([(message, member_ids)], change)


def publish_messages(
    messages: Sequence[tuple[ChatMessage, Sequence[str]]],
    change: str,
    subscriptions: Mapping[Any, Callable[[], list[EventSubscription]]] | None = None,
) -> None:
    """`publish_message` for several messages (each with its thread's member ids): one
    publication per resource. `subscriptions`: each resource's (by id), when the caller read
    them first (events.services.read_subscriptions)."""
    by_resource: dict[object, tuple[Resource, list[ThreadEvent]]] = {}
    for message, member_ids in messages:
        thread = message.thread
        _, events = by_resource.setdefault(thread.resource_id, (thread.resource, []))
        events.append(_message_event(message, change, member_ids))
    for resource, events in by_resource.values():
        _publish(resource, events, (subscriptions or {}).get(resource.pk))


def _message_event(message: ChatMessage, change: str, member_ids: Sequence[str]) -> ThreadEvent:
    thread = message.thread
    data: dict[str, Any] = {
        "messageId": str(message.pk),
        "senderCommunicationIdentifier": _grid_id(message.sender_raw_id),
        "senderDisplayName": message.sender_display_name,
        "composeTime": rfc3339(message.created_at),
        "type": MESSAGE_TYPE_NAMES.get(message.type, message.type),
        "version": int(epoch_ms(message.deleted_at or message.edited_at or message.created_at)),
        "threadId": thread.pk,
        "transactionId": random_ids.uuid4().hex,
    }
    if change == "deleted":
        data["deleteTime"] = rfc3339(message.deleted_at)  # type: ignore[arg-type]
    else:
        data.update(messageBody=message.content, metadata=message.metadata)
    if change == "edited":
        data["editTime"] = rfc3339(message.edited_at)  # type: ignore[arg-type]
    name = {"received": "ChatMessageReceived", "edited": "ChatMessageEdited"}.get(
        change, "ChatMessageDeleted"
    )
    subject = f"thread/{thread.pk}/sender/{message.sender_raw_id}"
    sender_id = message.sender_raw_id.rsplit("_", 1)[-1]
    others = [m for m in member_ids if m != sender_id]
    return ThreadEvent(name + "InThread", name, subject, data, others)


def _thread_data(thread: ChatThread, now: datetime) -> dict[str, Any]:
    return {
        "createTime": rfc3339(thread.created_at),
        "version": int(epoch_ms(now)),
        "threadId": thread.pk,
        "transactionId": random_ids.uuid4().hex,
    }


def publish_thread_created(thread: ChatThread, participants: Sequence[ChatParticipant]) -> None:
    data = {
        **_thread_data(thread, thread.created_at),
        "createdByCommunicationIdentifier": _grid_id(thread.created_by_raw_id),
        "properties": {"topic": thread.topic},
        "metadata": thread.metadata,
        "participants": [_grid_participant(p) for p in participants],
    }
    subject = f"thread/{thread.pk}/createdBy/{thread.created_by_raw_id}"
    members = [str(p.identity_id) for p in participants]
    _publish(
        thread.resource,
        [ThreadEvent("ChatThreadCreated", "ChatThreadCreatedWithUser", subject, data, members)],
    )


def publish_thread_updated(
    thread: ChatThread, by_raw_id: str, member_ids: Sequence[str], now: datetime
) -> None:
    data = {
        **_thread_data(thread, now),
        "editedByCommunicationIdentifier": _grid_id(by_raw_id),
        "editTime": rfc3339(now),
        "properties": {"topic": thread.topic},
        "metadata": thread.metadata,
    }
    subject = f"thread/{thread.pk}/editedBy/{by_raw_id}"
    _publish(
        thread.resource,
        [
            ThreadEvent(
                "ChatThreadPropertiesUpdated",
                "ChatThreadPropertiesUpdatedPerUser",
                subject,
                data,
                member_ids,
            )
        ],
    )


def publish_thread_deleted(
    thread: ChatThread, by_raw_id: str | None, member_ids: Sequence[str], now: datetime
) -> None:
    """`by_raw_id` None: deleted by its retention policy; the events then name nobody as the
    deleter (no deletedByCommunicationIdentifier, subject `thread/<id>`)."""
    data: dict[str, Any] = {**_thread_data(thread, now), "deleteTime": rfc3339(now)}
    subject = f"thread/{thread.pk}"
    if by_raw_id is not None:
        data["deletedByCommunicationIdentifier"] = _grid_id(by_raw_id)
        subject += f"/deletedBy/{by_raw_id}"
    _publish(
        thread.resource,
        [ThreadEvent("ChatThreadDeleted", "ChatThreadWithUserDeleted", subject, data, member_ids)],
    )


def publish_participants_added(
    thread: ChatThread,
    by_raw_id: str,
    added: Sequence[ChatParticipant],
    member_ids: Sequence[str],
    now: datetime,
) -> None:
    events = []
    for participant in added:
        data = {
            **_thread_data(thread, now),
            "time": rfc3339(now),
            "addedByCommunicationIdentifier": _grid_id(by_raw_id),
            "participantAdded": _grid_participant(participant),
        }
        subject = f"thread/{thread.pk}/participantAdded/{_participant_raw_id(participant)}"
        events.append(
            ThreadEvent(
                "ChatThreadParticipantAdded",
                "ChatParticipantAddedToThreadWithUser",
                subject,
                data,
                member_ids,
            )
        )
    _publish(thread.resource, events)


def publish_participant_removed(
    thread: ChatThread,
    by_raw_id: str,
    removed: ChatParticipant,
    member_ids: Sequence[str],
    now: datetime,
) -> None:
    data = {
        **_thread_data(thread, now),
        "time": rfc3339(now),
        "removedByCommunicationIdentifier": _grid_id(by_raw_id),
        "participantRemoved": _grid_participant(removed),
    }
    subject = f"thread/{thread.pk}/participantRemoved/{_participant_raw_id(removed)}"
    _publish(
        thread.resource,
        [
            ThreadEvent(
                "ChatThreadParticipantRemoved",
                "ChatParticipantRemovedFromThreadWithUser",
                subject,
                data,
                member_ids,
            )
        ],
    )
