"""The send path is the hot one (bench/chat.py): guard how many queries a message costs."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.chat.conftest import thread_path

pytestmark = pytest.mark.django_db


def test_sending_a_message_to_a_thread_of_ten_takes_a_fixed_number_of_queries(
    chat_user: Any, make_thread: Any
) -> None:
    # given a thread of ten
    alice = chat_user()
    others = [chat_user() for _ in range(9)]
    thread_id = make_thread(alice, *others)

    # when alice sends a message
    with CaptureQueriesContext(connection) as queries:
        response = alice.call("POST", thread_path(thread_id, "/messages"), {"content": "hi"})

    # then it is accepted in few queries, however many participants there are
    assert response.status_code == 201
    # (token's identity, thread with participants, sequence, message, activity, subscriptions,
    # event; the savepoint pair is the test's own transaction: COMMIT in production)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert len(statements) <= 9, statements
