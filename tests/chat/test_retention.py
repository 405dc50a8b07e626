"""Retention policies applied for real: apply_retention (and beat's task) deletes a thread once
`created_at + deleteThreadAfterDays` has passed, as a participant's delete would, with events
that name no deleter; threads without a policy, or not yet due, stay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.chat import retention, services, tasks
from apps.chat.models import ChatActivity, ChatThread
from apps.events import services as events
from apps.events.models import Event
from tests.chat.conftest import ChatUser, assert_acs_error, chat_state, member, thread_path
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db

P = "Microsoft.Communication."


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


def thread_with(
    creator: ChatUser, *others: ChatUser, days: int | None, topic: str = "Kept a while"
) -> str:
    body: dict[str, Any] = {"topic": topic, "participants": [member(o) for o in others]}
    if days is not None:
        body["retentionPolicy"] = {"kind": "threadCreationDate", "deleteThreadAfterDays": days}
    thread, _ = services.create_thread(creator.principal, body)
    return str(thread.pk)


def age(thread_id: str, days: float) -> None:
    """Make a thread `days` older, its deadline with it (test setup only)."""
    thread = ChatThread.objects.get(pk=thread_id)
    thread.created_at -= timedelta(days=days)
    if thread.expires_at is not None:
        thread.expires_at -= timedelta(days=days)
    thread.save(update_fields=["created_at", "expires_at"])


def test_a_thread_past_its_retention_is_deleted_and_the_others_stay(
    alice: ChatUser, bob: ChatUser
) -> None:
    # given threads of 1 and 30 days, one without a policy, all 2 days old
    short = thread_with(alice, bob, days=1)
    long = thread_with(alice, bob, days=30)
    kept = thread_with(alice, bob, days=None)
    for thread_id in (short, long, kept):
        age(thread_id, 2)

    # when retention is applied
    deleted = retention.apply_retention()

    # then only the 1-day thread went, soft-deleted as the API deletes
    assert deleted == 1
    assert ChatThread.objects.get(pk=short).deleted_at is not None
    assert ChatThread.objects.filter(pk__in=[long, kept], deleted_at__isnull=True).count() == 2
    assert_acs_error(bob.call("GET", thread_path(short)), 404, "NotFound")
    listed = {t["id"]: t for t in bob.call("GET", "/threads").json()["value"]}
    assert "deletedOn" in listed[short] and "deletedOn" not in listed[long]


def test_the_deletion_is_announced_as_done_by_the_policy(
    alice: ChatUser, bob: ChatUser, resource: Any, receiver: Receiver
) -> None:
    # given a subscription to every event (the per-user copies too), and a thread that is due
    subscription = events.create_subscription(
        resource, name="all", endpoint_url=receiver.url, event_types=None
    )
    assert events.validate_subscription(subscription.pk) == "active"
    thread_id = thread_with(alice, bob, days=3)
    before = set(Event.objects.values_list("pk", flat=True))

    # when retention runs after its deadline
    assert retention.apply_retention(now=timezone.now() + timedelta(days=3, seconds=1)) == 1

    # then participants' sockets get chatThreadDeleted with no deleter (deletedByPolicy)
    activity = ChatActivity.objects.filter(thread_id=thread_id).order_by("sequence").last()
    assert activity is not None and activity.event == "chatThreadDeleted"
    assert activity.data["deletedBy"] is None
    assert activity.data["reason"] == "deletedByPolicy"
    assert activity.sequence == ChatThread.objects.get(pk=thread_id).last_sequence
    # and webhooks get ChatThreadDeleted and a copy per participant, naming no deleter
    new = Event.objects.exclude(pk__in=before)
    (grid,) = new.filter(event_type=P + "ChatThreadDeleted")
    assert grid.subject == f"thread/{thread_id}"
    assert "deletedByCommunicationIdentifier" not in grid.data
    assert grid.data["threadId"] == thread_id and grid.data["deleteTime"].endswith("Z")
    copies = new.filter(event_type=P + "ChatThreadWithUserDeleted")
    assert sorted(e.data["recipientCommunicationIdentifier"]["rawId"] for e in copies) == sorted(
        [alice.raw_id, bob.raw_id]
    )


def test_a_participant_deletion_still_names_its_deleter(alice: ChatUser, bob: ChatUser) -> None:
    # given
    thread_id = thread_with(alice, bob, days=10)

    # when alice deletes it herself
    services.delete_thread(alice.principal, thread_id)

    # then
    activity = ChatActivity.objects.get(thread_id=thread_id, event="chatThreadDeleted")
    assert activity.data["reason"] == "deletedByUser"
    assert activity.data["deletedBy"]["id"]["communicationUserId"] == alice.raw_id
    (grid,) = Event.objects.filter(event_type=P + "ChatThreadDeleted")
    assert grid.subject == f"thread/{thread_id}/deletedBy/{alice.raw_id}"
    assert grid.data["deletedByCommunicationIdentifier"]["rawId"] == alice.raw_id


def test_a_thread_is_kept_until_its_deadline(alice: ChatUser) -> None:
    # given a 5-day thread
    thread_id = thread_with(alice, days=5)
    deadline = ChatThread.objects.get(pk=thread_id).expires_at
    assert deadline is not None
    before = chat_state()

    # when retention runs just before its deadline
    deleted = retention.apply_retention(now=deadline - timedelta(seconds=1))

    # then nothing changes
    assert deleted == 0
    assert chat_state() == before


def test_a_policy_removed_before_the_deadline_keeps_the_thread(alice: ChatUser) -> None:
    # given a 1-day thread whose policy is then removed
    thread_id = thread_with(alice, days=1)
    services.update_thread(alice.principal, thread_id, {"retentionPolicy": {"kind": "none"}})

    # when retention runs days later
    deleted = retention.apply_retention(now=timezone.now() + timedelta(days=5))

    # then it stays
    assert deleted == 0
    assert ChatThread.objects.get(pk=thread_id).deleted_at is None


def test_a_shorter_policy_on_an_old_thread_makes_it_due_at_once(alice: ChatUser) -> None:
    # given a 10-day-old thread of 30 days
    thread_id = thread_with(alice, days=30)
    age(thread_id, 10)

    # when its policy is cut to 5 days (counted from its creation)
    policy = {"kind": "threadCreationDate", "deleteThreadAfterDays": 5}
    services.update_thread(alice.principal, thread_id, {"retentionPolicy": policy})

    # then the next run deletes it
    assert retention.apply_retention() == 1
    assert ChatThread.objects.get(pk=thread_id).deleted_at is not None


def test_a_thread_deleted_already_is_left_alone(alice: ChatUser) -> None:
    # given a due thread that alice deleted herself
    thread_id = thread_with(alice, days=1)
    services.delete_thread(alice.principal, thread_id)
    age(thread_id, 2)
    before = chat_state()

    # when
    deleted = retention.apply_retention()

    # then it is not deleted again
    assert deleted == 0
    assert chat_state() == before


def test_one_run_deletes_at_most_its_limit_and_the_next_takes_the_rest(alice: ChatUser) -> None:
    # given three due threads
    due = [thread_with(alice, days=1) for _ in range(3)]
    for thread_id in due:
        age(thread_id, 2)

    # when
    first = retention.apply_retention(limit=2)
    second = retention.apply_retention(limit=2)

    # then
    assert (first, second) == (2, 1)
    assert not ChatThread.objects.filter(pk__in=due, deleted_at__isnull=True).exists()


def test_the_beat_task_applies_retention(
    alice: ChatUser, bob: ChatUser, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given a due thread and one that is not
    due = thread_with(alice, bob, days=2)
    age(due, 3)
    not_yet = thread_with(alice, bob, days=2)

    # when beat runs the task
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deleted = tasks.apply_retention()

    # then the due one went, and its announcement was sent after the commit
    assert deleted == 1
    assert ChatThread.objects.get(pk=due).deleted_at is not None
    assert ChatThread.objects.get(pk=not_yet).deleted_at is None
    assert callbacks
