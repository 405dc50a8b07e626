"""Two web processes' batches of posts to the same threads, at once, on PostgreSQL: each
takes its threads' rows in one order, so neither waits for a row the other holds while
holding one it wants (a deadlock, which PostgreSQL breaks by failing one of them)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from apps.chat import services
from apps.chat.models import ChatMessage
from tests.chat.conftest import ChatUser

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes writers instead")


def test_batches_posting_to_the_same_threads_in_opposite_orders_never_deadlock(
    chat_user: Callable[..., ChatUser], make_thread: Callable[..., str]
) -> None:
    # given eight threads, and two writers that post one message to each in every batch,
    # one in the threads' order and the other in reverse
    alice, bob = chat_user(), chat_user()
    threads = [make_thread(alice, bob) for _ in range(8)]
    rounds = 25
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(user: ChatUser, order: list[str]) -> None:
        try:
            posts = [
                services.check_send_message(user.principal, thread_id, {"content": "hi"})
                for thread_id in order
            ]
            start.wait()
            for _ in range(rounds):
                services.do_send_messages(posts)
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    # when both write their batches at the same time
    writers = [
        threading.Thread(target=writer, args=(alice, threads)),
        threading.Thread(target=writer, args=(bob, threads[::-1])),
    ]
    for each in writers:
        each.start()
    for each in writers:
        each.join(timeout=60)

    # then every batch went through (no deadlock broke one), each thread numbered in turn
    assert failures == []
    for thread_id in threads:
        sequences = sorted(
            ChatMessage.objects.filter(thread_id=thread_id).values_list("sequence_id", flat=True)
        )
        assert len(sequences) == 2 * rounds
        assert len(set(sequences)) == len(sequences)
