"""Round trips of a chat post on PostgreSQL: its checks wait on the server once, and its batch
five times whatever its size. On a busy box a round trip is ~1.3 ms (bench/chat.py)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
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


def test_a_posts_token_and_thread_are_read_in_one_round_trip(
    chat_user: Callable[..., ChatUser], make_thread: Callable[..., str], monkeypatch: Any
) -> None:
    # given a thread of alice and bob, and the route's group commit holding what it is given
    alice, bob = chat_user(), chat_user()
    thread_id = make_thread(alice, bob)
    handed: list[Any] = []
    monkeypatch.setattr(
        message_route.posted, "submit", lambda post, then: handed.append(post) or Future()
    )

    # when alice posts through the route
    with counted_round_trips() as server:
        message_route.answer(*post_scope(alice, thread_id))  # (its statements prepared)
        server.round_trips = 0
        answer = message_route.answer(*post_scope(alice, thread_id))

    # then her token's identity and the thread were read together, and the post checked
    assert server.round_trips == 1
    assert isinstance(answer, Future)
    post = handed[-1]
    assert post.request.principal.identity.pk == alice.identity.pk
    assert post.request.access.thread.pk == thread_id
    assert sorted(post.request.access.member_ids) == sorted(
        [str(alice.identity.pk), str(bob.identity.pk)]
    )
