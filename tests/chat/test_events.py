"""Chat's webhook events (Event Grid's Microsoft.Communication.Chat* types) through the events
app: one thread-level event per change, and one copy per participant, stored only when some
subscription takes them; nothing when the change rolls back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from apps.chat import services
from apps.chat.models import ChatMessage
from apps.events import services as events
from apps.events.models import Event, EventDelivery, EventSubscription
from tests.chat.conftest import ChatUser, member
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db

P = "Microsoft.Communication."


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
def subscribe(resource: Any, receiver: Receiver) -> Callable[..., EventSubscription]:
    """An active subscription of `resource` (it passes the Event Grid handshake)."""

    def make(event_types: list[str] | None = None) -> EventSubscription:
        subscription = events.create_subscription(
            resource, name="chat-hook", endpoint_url=receiver.url, event_types=event_types
        )
        # The handshake, as the worker makes it.
        assert events.validate_subscription(subscription.pk) == "active"
        subscription.refresh_from_db()
        return subscription

    return make


def grid(user: ChatUser) -> dict[str, Any]:
    """An identifier as Event Grid's chat events carry it."""
    return {"rawId": user.raw_id, "communicationUser": {"id": user.raw_id}}


class NewEvents:
    """The events stored since it was made."""

    def __init__(self) -> None:
        self.before = set(Event.objects.values_list("pk", flat=True))

    def all(self) -> list[Event]:
        return list(Event.objects.exclude(pk__in=self.before).order_by("event_time", "pk"))

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.all() if e.event_type == P + name]

    def types(self) -> set[str]:
        return {e.event_type.removeprefix(P) for e in self.all()}

    def recipients(self, name: str) -> list[str]:
        return sorted(d["recipientCommunicationIdentifier"]["rawId"] for d in self.of(name))


@pytest.fixture
def trio(chat_user: Callable[..., ChatUser]) -> tuple[ChatUser, ChatUser, ChatUser]:
    return chat_user(), chat_user(), chat_user()


def _thread(creator: ChatUser, *others: ChatUser, topic: str = "Launch") -> str:
    body = {"topic": topic, "participants": [member(o, "N") for o in others]}
    thread, _ = services.create_thread(creator.principal, body)
    return str(thread.pk)


def _raw(*users: ChatUser) -> list[str]:
    return sorted(u.raw_id for u in users)


def test_a_message_is_announced_to_the_thread_and_to_each_participant_but_the_sender(
    trio: Any, subscribe: Any
) -> None:
    # given a thread of three, and a subscription that takes every event
    alice, bob, carol = trio
    subscription = subscribe()
    thread_id = _thread(alice, bob, carol)
    new = NewEvents()

    # when alice sends a message
    message = services.send_message(
        alice.principal,
        thread_id,
        {"content": "Hello", "senderDisplayName": "Alice", "metadata": {"k": "v"}},
    )

    # then one event for the thread, and one for bob and one for carol
    assert new.types() == {"ChatMessageReceivedInThread", "ChatMessageReceived"}
    (in_thread,) = new.of("ChatMessageReceivedInThread")
    assert in_thread["messageId"] == str(message.pk) and in_thread["threadId"] == thread_id
    assert in_thread["messageBody"] == "Hello" and in_thread["metadata"] == {"k": "v"}
    assert in_thread["senderCommunicationIdentifier"] == grid(alice)
    assert in_thread["senderDisplayName"] == "Alice" and in_thread["type"] == "Text"
    assert "recipientCommunicationIdentifier" not in in_thread
    assert new.recipients("ChatMessageReceived") == _raw(bob, carol)
    copy = new.of("ChatMessageReceived")[0]
    assert {k: v for k, v in copy.items() if k != "recipientCommunicationIdentifier"} == in_thread
    # and each is queued for the subscription
    deliveries = EventDelivery.objects.filter(event__in=new.all(), subscription=subscription)
    assert deliveries.count() == 3


def test_creating_a_thread_is_announced_per_participant(trio: Any, subscribe: Any) -> None:
    # given
    alice, bob, carol = trio
    subscribe()
    new = NewEvents()

    # when
    thread_id = _thread(alice, bob, carol, topic="Kickoff")

    # then
    assert new.types() == {"ChatThreadCreated", "ChatThreadCreatedWithUser"}
    (created,) = new.of("ChatThreadCreated")
    assert created["threadId"] == thread_id
    assert created["createdByCommunicationIdentifier"] == grid(alice)
    assert created["properties"] == {"topic": "Kickoff"}
    assert sorted(
        p["participantCommunicationIdentifier"]["rawId"] for p in created["participants"]
    ) == _raw(alice, bob, carol)
    assert new.recipients("ChatThreadCreatedWithUser") == _raw(alice, bob, carol)


def test_adding_and_removing_participants_are_announced(trio: Any, subscribe: Any) -> None:
    # given a thread of alice and bob
    alice, bob, carol = trio
    subscribe()
    thread_id = _thread(alice, bob)
    added = NewEvents()

    # when alice adds carol
    body = {"participants": [member(carol, "Carol")]}
    services.add_participants(alice.principal, thread_id, body)

    # then the thread is told once, and each of the three (carol too)
    assert added.types() == {"ChatThreadParticipantAdded", "ChatParticipantAddedToThreadWithUser"}
    (event,) = added.of("ChatThreadParticipantAdded")
    assert event["addedByCommunicationIdentifier"] == grid(alice)
    assert event["participantAdded"] == {
        "displayName": "Carol",
        "participantCommunicationIdentifier": grid(carol),
        "metadata": {},
    }
    assert added.recipients("ChatParticipantAddedToThreadWithUser") == _raw(alice, bob, carol)

    # when alice removes bob
    removed = NewEvents()
    services.remove_participant(alice.principal, thread_id, {"rawId": bob.raw_id})

    # then the thread is told once, and each of the three (bob too)
    assert removed.types() == {
        "ChatThreadParticipantRemoved",
        "ChatParticipantRemovedFromThreadWithUser",
    }
    (event,) = removed.of("ChatThreadParticipantRemoved")
    assert event["removedByCommunicationIdentifier"] == grid(alice)
    assert event["participantRemoved"]["participantCommunicationIdentifier"] == grid(bob)
    assert removed.recipients("ChatParticipantRemovedFromThreadWithUser") == _raw(alice, bob, carol)


def test_retitling_and_deleting_a_thread_are_announced(trio: Any, subscribe: Any) -> None:
    # given
    alice, bob, carol = trio
    subscribe()
    thread_id = _thread(alice, bob, carol)
    updated = NewEvents()

    # when the topic changes
    services.update_thread(alice.principal, thread_id, {"topic": "Renamed"})

    # then
    assert updated.types() == {"ChatThreadPropertiesUpdated", "ChatThreadPropertiesUpdatedPerUser"}
    (event,) = updated.of("ChatThreadPropertiesUpdated")
    assert event["properties"] == {"topic": "Renamed"}
    assert event["editedByCommunicationIdentifier"] == grid(alice)
    assert event["editTime"].endswith("Z")
    assert updated.recipients("ChatThreadPropertiesUpdatedPerUser") == _raw(alice, bob, carol)

    # when the thread is deleted
    deleted = NewEvents()
    services.delete_thread(alice.principal, thread_id)

    # then
    assert deleted.types() == {"ChatThreadDeleted", "ChatThreadWithUserDeleted"}
    (event,) = deleted.of("ChatThreadDeleted")
    assert event["deletedByCommunicationIdentifier"] == grid(alice) and event["threadId"]
    assert event["deleteTime"].endswith("Z")
    assert deleted.recipients("ChatThreadWithUserDeleted") == _raw(alice, bob, carol)


def test_thread_and_participant_metadata_reach_the_events(trio: Any, subscribe: Any) -> None:
    # given
    alice, bob, carol = trio
    subscribe()
    created = NewEvents()

    # when alice creates a thread with metadata, bob with his own
    body = {
        "topic": "Tagged",
        "metadata": {"project": "apollo"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 9},
        "participants": [member(bob, "Bob", metadata={"role": "lead"})],
    }
    thread, _ = services.create_thread(alice.principal, body)

    # then ChatThreadCreated carries the thread's and each participant's metadata
    (event,) = created.of("ChatThreadCreated")
    assert event["metadata"] == {"project": "apollo"}
    by_id = {p["participantCommunicationIdentifier"]["rawId"]: p for p in event["participants"]}
    assert by_id[bob.raw_id]["metadata"] == {"role": "lead"}
    assert by_id[alice.raw_id]["metadata"] == {}

    # when she changes only the metadata, then adds carol with hers
    updated = NewEvents()
    services.update_thread(alice.principal, thread.pk, {"metadata": {"stage": "2"}})
    added = NewEvents()
    services.add_participants(
        alice.principal, thread.pk, {"participants": [member(carol, metadata={"x": "y"})]}
    )

    # then the events carry the merged metadata, and carol's
    (event,) = updated.of("ChatThreadPropertiesUpdated")
    assert event["metadata"] == {"project": "apollo", "stage": "2"}
    assert event["properties"] == {"topic": "Tagged"}
    assert updated.recipients("ChatThreadPropertiesUpdatedPerUser") == _raw(alice, bob)
    (event,) = added.of("ChatThreadParticipantAdded")
    assert event["participantAdded"]["metadata"] == {"x": "y"}


def test_editing_and_deleting_a_message_are_announced(trio: Any, subscribe: Any) -> None:
    # given
    alice, bob, carol = trio
    subscribe()
    thread_id = _thread(alice, bob, carol)
    message = services.send_message(alice.principal, thread_id, {"content": "typo"})
    edited = NewEvents()

    # when alice edits it
    services.edit_message(alice.principal, thread_id, str(message.pk), {"content": "fixed"})

    # then
    assert edited.types() == {"ChatMessageEditedInThread", "ChatMessageEdited"}
    (event,) = edited.of("ChatMessageEditedInThread")
    assert event["messageId"] == str(message.pk) and event["messageBody"] == "fixed"
    assert event["editTime"].endswith("Z")
    assert edited.recipients("ChatMessageEdited") == _raw(bob, carol)

    # when she deletes it
    deleted = NewEvents()
    services.delete_message(alice.principal, thread_id, str(message.pk))

    # then
    assert deleted.types() == {"ChatMessageDeletedInThread", "ChatMessageDeleted"}
    (event,) = deleted.of("ChatMessageDeletedInThread")
    assert event["messageId"] == str(message.pk) and event["deleteTime"].endswith("Z")
    assert "messageBody" not in event
    assert deleted.recipients("ChatMessageDeleted") == _raw(bob, carol)


def test_typing_and_read_receipts_are_not_webhook_events(trio: Any, subscribe: Any) -> None:
    # given
    alice, bob, _ = trio
    subscribe()
    thread_id = _thread(alice, bob)
    message = services.send_message(alice.principal, thread_id, {"content": "hi"})
    new = NewEvents()

    # when
    services.send_typing(bob.principal, thread_id, {})
    services.send_read_receipt(bob.principal, thread_id, {"chatMessageId": str(message.pk)})

    # then
    assert new.all() == []


def _every_change(alice: ChatUser, bob: ChatUser, carol: ChatUser) -> None:
    thread_id = _thread(alice, bob)
    services.add_participants(alice.principal, thread_id, {"participants": [member(carol)]})
    message = services.send_message(alice.principal, thread_id, {"content": "hi"})
    services.edit_message(alice.principal, thread_id, str(message.pk), {"content": "hey"})
    services.delete_message(alice.principal, thread_id, str(message.pk))
    services.remove_participant(alice.principal, thread_id, {"rawId": carol.raw_id})
    services.update_thread(alice.principal, thread_id, {"topic": "New"})
    services.delete_thread(alice.principal, thread_id)


THREAD_LEVEL = {
    "ChatThreadCreated",
    "ChatThreadParticipantAdded",
    "ChatMessageReceivedInThread",
    "ChatMessageEditedInThread",
    "ChatMessageDeletedInThread",
    "ChatThreadParticipantRemoved",
    "ChatThreadPropertiesUpdated",
    "ChatThreadDeleted",
}


def test_without_a_subscription_only_the_thread_level_events_are_stored(trio: Any) -> None:
    # given no subscription
    new = NewEvents()

    # when a thread goes through every change
    _every_change(*trio)

    # then each change is in the event log once, and no per-participant copy is
    assert new.types() == THREAD_LEVEL
    assert len(new.all()) == len(THREAD_LEVEL)
    assert EventDelivery.objects.count() == 0


def test_a_subscription_to_thread_events_only_keeps_no_per_participant_copies(
    trio: Any, subscribe: Any
) -> None:
    # given a subscription to messages in threads only
    subscription = subscribe([P + "ChatMessageReceivedInThread"])
    new = NewEvents()

    # when
    _every_change(*trio)

    # then the copies nobody takes are not stored; the one type taken is delivered
    assert new.types() == THREAD_LEVEL
    deliveries = EventDelivery.objects.filter(subscription=subscription)
    assert [d.event.event_type for d in deliveries] == [P + "ChatMessageReceivedInThread"]


def test_a_change_that_rolls_back_publishes_nothing(
    trio: Any, subscribe: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a thread, and a subscription
    alice, bob, _ = trio
    subscribe()
    thread_id = _thread(alice, bob)
    new = NewEvents()
    messages, deliveries = ChatMessage.objects.count(), EventDelivery.objects.count()

    # when a message is sent inside a transaction that then fails
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.send_message(alice.principal, thread_id, {"content": "never"})
            raise RuntimeError("the caller's transaction fails")

    # then no event, no delivery, no realtime push or delivery task after commit
    assert new.all() == []
    assert EventDelivery.objects.count() == deliveries
    assert callbacks == []
    assert ChatMessage.objects.count() == messages


def test_a_subscriber_receives_the_per_participant_event_over_http(
    trio: Any, subscribe: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    # given a subscription to the per-participant message event only
    alice, bob, _ = trio
    subscribe([P + "ChatMessageReceived"])
    thread_id = _thread(alice, bob)

    # when alice sends a message (the delivery runs after commit)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_message(alice.principal, thread_id, {"content": "over the wire"})

    # then the webhook gets bob's copy in the Event Grid schema
    (notification,) = receiver.notifications
    (event,) = notification.json
    assert event["eventType"] == P + "ChatMessageReceived"
    assert event["data"]["messageBody"] == "over the wire"
    assert event["data"]["recipientCommunicationIdentifier"] == grid(bob)
    assert event["subject"].endswith(f"/recipient/{bob.raw_id}")
