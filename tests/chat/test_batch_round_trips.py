"""Round trips of chat posts on PostgreSQL: a batch's checks wait on the server once, and its
writes five times, whatever its size. On a busy box a round trip is ~1.3 ms (bench/chat.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from apps.chat import message_route, services
from apps.chat.models import ChatActivity, ChatMessage
from apps.events import services as events
from apps.events.models import Event, EventDelivery
from tests.chat.conftest import ChatUser
from tests.chat.test_message_route import post_scope
from tests.round_trips import counted_round_trips

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("round trips to a database server: SQLite is in the process")


def test_a_batch_of_posts_waits_on_the_server_five_times_and_stores_everything(
    chat_user: Callable[..., ChatUser], make_thread: Callable[..., str], monkeypatch: Any
) -> None:
    # given two threads of alice and bob, and a webhook subscription to the resource's events
    alice, bob = chat_user(), chat_user()
    first, second = make_thread(alice, bob), make_thread(alice, bob)
    monkeypatch.setattr("apps.events.dispatch.queue_validation_on_commit", lambda pk: None)
    subscription = events.create_subscription(
        alice.identity.resource, name="hook", endpoint_url="https://hooks.example/chat"
    )
    events.set_subscription_enabled(subscription, False)
    subscription.validated_at = subscription.created_at  # (its endpoint's handshake)
    subscription.save(update_fields=["validated_at"])
    events.set_subscription_enabled(subscription, True)
    queued: list[str] = []  # the deliveries handed to the broker after each commit
    monkeypatch.setattr("apps.events.dispatch.queue_tasks", queued.extend)

    def batch(size: int) -> list[ChatMessage]:
        posts = [
            services.check_send_message(
                alice.principal, (first, second)[n % 2], {"content": f"post {n}"}
            )
            for n in range(size)
        ]
        with counted_round_trips() as server:
            services.do_send_messages(posts)  # (its statements prepared on the connection)
            server.round_trips = 0
            stored = services.do_send_messages(posts)
            waits[size] = server.round_trips
        return stored

    # when a batch of two posts is stored, and one of six
    waits: dict[int, int] = {}
    batch(2)
    messages = batch(6)

    # then each took five round trips: BEGIN; the sequence numbers with the subscriptions;
    # the messages; their activity, events and deliveries with the pipeline's end; COMMIT
    assert waits == {2: 5, 6: 5}
    # and everything of each message is stored, each thread's numbered without a gap
    assert [(m.thread_id, m.content) for m in messages] == [
        ((first, second)[n % 2], f"post {n}") for n in range(6)
    ]
    for thread_id in (first, second):
        numbers = sorted(
            ChatMessage.objects.filter(thread_id=thread_id, type="text").values_list(
                "sequence_id", flat=True
            )
        )
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no gap or repeat
    for message in messages:
        stored = ChatMessage.objects.get(pk=message.pk)
        assert (stored.thread_id, stored.sequence_id) == (message.thread_id, message.sequence_id)
        activity = ChatActivity.objects.get(thread=message.thread, sequence=message.sequence_id)
        assert activity.data["id"] == str(message.pk)
        # the thread's event and bob's copy, each delivered to the subscription
        received = Event.objects.filter(data__messageId=str(message.pk))
        assert sorted(e.event_type.rsplit(".", 1)[-1] for e in received) == [
            "ChatMessageReceived",
            "ChatMessageReceivedInThread",
        ]
        deliveries = EventDelivery.objects.filter(event__in=received, subscription=subscription)
        assert len(deliveries) == 2
        assert {str(d.pk) for d in deliveries} <= set(queued)


def test_a_batchs_posts_are_checked_in_one_round_trip_whatever_their_number(
    chat_user: Callable[..., ChatUser], make_thread: Callable[..., str]
) -> None:
    # given threads of alice and bob, and of bob and carol
    alice, bob, carol = chat_user(), chat_user(), chat_user()
    ours, theirs = make_thread(alice, bob), make_thread(bob, carol)
    senders = [(alice, ours), (bob, ours), (bob, theirs), (carol, theirs)]

    def check(size: int) -> list[Any]:
        with counted_round_trips() as server:
            posts = [message_route.pending(*post_scope(*senders[n % 4])) for n in range(size)]
            read_on_the_loop[size] = server.round_trips
            message_route._check(list(posts))  # (its statements prepared on the connection)
            posts = [message_route.pending(*post_scope(*senders[n % 4])) for n in range(size)]
            server.round_trips = 0
            message_route._check(list(posts))
            waits[size] = server.round_trips
        return posts

    # when a batch of two posts is checked, and one of six
    waits: dict[int, int] = {}
    read_on_the_loop: dict[int, int] = {}
    check(2)
    posts = check(6)

    # then the loop read nothing, and each batch read its tokens' identities and its threads
    # with their participants in one round trip
    assert read_on_the_loop == {2: 0, 6: 0}
    assert waits == {2: 1, 6: 1}
    # and each post was checked for its own sender and thread
    for n, post in enumerate(posts):
        sender, thread_id = senders[n % 4]
        assert post.send.principal.identity.pk == sender.identity.pk
        assert post.send.access.thread.pk == thread_id
        assert post.send.access.participant.identity_id == sender.identity.pk
    assert sorted(posts[0].send.access.member_ids) == sorted(
        [str(alice.identity.pk), str(bob.identity.pk)]
    )
