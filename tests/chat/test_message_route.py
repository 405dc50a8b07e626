"""The chat message route (apps/chat/message_route.py): message posts answered before Django.

It must answer exactly as the view does when it answers, store and announce the same, and
leave everything else to Django (which the rest of tests/chat tests through the view): each
refusal below gets None from the route, and Django's answer to the same request is checked to
be the refusal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from apps.accounts import services as accounts
from apps.accounts import tokens
from apps.accounts.models import Resource
from apps.chat import message_route, services
from apps.chat.exceptions import ThreadNotFound
from apps.chat.models import ChatActivity, ChatMessage, ChatThread
from apps.core import quotas
from apps.core.batching import GroupCommit
from apps.core.models import RequestLog
from apps.core.request_log import writer
from apps.events import services as events
from apps.events.models import Event, EventDelivery
from tests.chat.conftest import API_VERSION, ChatUser, thread_path
from tests.conftest import django_answer, origin_host

pytestmark = pytest.mark.django_db

BODY = {"content": "Hello", "senderDisplayName": "Alice", "metadata": {"k": "v"}}


def post_scope(
    user: ChatUser,
    thread_id: str,
    body: Any = BODY,
    *,
    raw_body: bytes | None = None,
    paths: bool = True,
    host: str = "",
    token: str | None = None,
    query: str = f"api-version={API_VERSION}",
    headers: dict[str, str] | None = None,
    scheme: str = "http",
    client: str = "127.0.0.1",
    to: Resource | None = None,
) -> tuple[dict[str, Any], bytes]:
    """An ASGI scope and body of a message post with the user's token to the API of `to` (by
    default the user's resource), as uvicorn hands them on: under /r/<slug>/ on the console's
    origin, or (`paths=False`) at the root of the resource's own."""
    resource = to or user.identity.resource
    prefix = f"/r/{resource.slug}" if paths else ""
    host = host or ("testserver" if paths else origin_host(resource))
    content = raw_body if raw_body is not None else json.dumps(body).encode()
    sent = {
        "host": host,
        "content-type": "application/json",
        "authorization": f"Bearer {user.token if token is None else token}",
        **(headers or {}),
    }
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "path": f"{prefix}/chat/threads/{thread_id}/messages",
        "raw_path": f"{prefix}/chat/threads/{quote(thread_id, safe='')}/messages".encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "client": (client, 50000),
    }
    return scope, content


def route_answer(scope: dict[str, Any], body: bytes) -> Any:
    """The route's answer (waiting for the commit of a deferred one, and made then, as the
    event loop makes it), or None."""
    answer = message_route.answer(scope, body)
    if isinstance(answer, Future):
        answer = answer.result(5)
    return answer() if callable(answer) else answer


def answered(answer: Any) -> tuple[int, dict[str, str], Any]:
    assert answer is not None, "the route left the request to Django"
    status, headers, content = answer
    return status, {k.decode(): v.decode() for k, v in headers}, json.loads(content)


@pytest.fixture
def thread(alice: ChatUser, bob: ChatUser, make_thread: Callable[..., str]) -> str:
    return make_thread(alice, bob)


def _stored(message_id: str) -> dict[str, Any]:
    """What a message left behind, but for what differs per message."""
    message = ChatMessage.objects.get(pk=message_id)
    activity = ChatActivity.objects.get(thread=message.thread, sequence=message.sequence_id)
    data = {k: v for k, v in activity.data.items() if k not in ("id", "createdOn", "version")}
    return {
        "message": (message.type, message.content, message.sender_raw_id),
        "name and metadata": (message.sender_display_name, message.metadata),
        "activity": (activity.event, activity.also_to, data),
    }


@pytest.mark.parametrize("paths", [False, True], ids=["own origin", "/r/<slug>"])
def test_the_route_answers_and_stores_as_the_view_does(
    alice: ChatUser, thread: str, paths: bool
) -> None:
    # when the same post goes to the route and to the view
    scope, body = post_scope(alice, thread, paths=paths)
    status, headers, route_body = answered(route_answer(scope, body))
    view = django_answer(scope, body)

    # then the answers match but for the message id
    assert status == view.status_code == 201
    assert set(headers) == {name.lower() for name in view.headers}
    assert headers["allow"] == view.headers["Allow"]
    assert set(route_body) == set(view.json()) == {"id"}
    # and so do the message, its activity and its events
    assert _stored(route_body["id"]) == _stored(view.json()["id"])
    kinds = [
        list(Event.objects.filter(data__messageId=m).values_list("event_type", "subject"))
        for m in (route_body["id"], view.json()["id"])
    ]
    assert kinds[0] == kinds[1] != []


def test_a_post_from_the_route_reaches_every_participant(
    alice: ChatUser,
    bob: ChatUser,
    thread: str,
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr("apps.core.realtime.send_now", sent.extend)
    with django_capture_on_commit_callbacks(execute=True):
        _, _, body = answered(route_answer(*post_scope(alice, thread)))

    frames = {group: payload for group, payload in sent if group.startswith("identity.")}
    assert set(frames) == {accounts.identity_group(u.identity.id) for u in (alice, bob)}
    assert {f["event"] for f in frames.values()} == {"chatMessageReceived"}
    assert {f["data"]["id"] for f in frames.values()} == {body["id"]}


def test_a_post_from_the_route_is_logged_and_counted_as_the_views_are(
    alice: ChatUser, thread: str
) -> None:
    scope, body = post_scope(alice, thread, headers={"x-ms-client-request-id": "mine-1"})
    _, headers, _ = answered(route_answer(scope, body))
    view = django_answer(*post_scope(alice, thread))
    writer.flush()

    assert headers["x-ms-client-request-id"] == "mine-1"
    ours = RequestLog.objects.get(request_id=headers["x-ms-request-id"])
    theirs = RequestLog.objects.get(request_id=view.headers["x-ms-request-id"])
    fields = ("kind", "route", "method", "status", "caller", "resource_slug", "api_version")
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert ours.caller == alice.raw_id
    assert ours.client_address == "127.0.0.1"


# Each request the route leaves to Django, with what Django answers it.
REFUSALS: dict[str, tuple[dict[str, Any], int]] = {
    "no token": ({"token": ""}, 401),
    "a token that is no token": ({"token": "not.a.token"}, 401),
    "another api-version": ({"query": "api-version=2020-01-01"}, 400),
    "an extra query parameter": ({"query": f"api-version={API_VERSION}&x=1"}, 201),
    "a browser's request": ({"headers": {"Origin": "https://app.example"}}, 201),
    "a body that is not JSON": ({"raw_body": b"{nope"}, 400),
    "a body that is not an object": ({"body": [1]}, 400),
    "no content": ({"body": {"senderDisplayName": "A"}}, 400),
    "another message type": ({"body": {"content": "hi", "type": "topicUpdated"}}, 400),
    "metadata that is not text": ({"body": {"content": "hi", "metadata": {"k": 1}}}, 400),
    "a NUL in the content": ({"raw_body": b'{"content": "a\\u0000b"}'}, 400),
    "another media type": ({"headers": {"content-type": "text/plain"}}, 415),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_route_leaves_anything_but_an_ordinary_success_to_django(
    alice: ChatUser, thread: str, case: str
) -> None:
    change, django_status = REFUSALS[case]
    scope, body = post_scope(alice, thread, **change)
    before = ChatMessage.objects.count()

    assert route_answer(scope, body) is None
    assert ChatMessage.objects.count() == before

    view = django_answer(scope, body)
    assert view.status_code == django_status, view.content


def test_a_revoked_token_is_refused_at_once(alice: ChatUser, thread: str) -> None:
    assert route_answer(*post_scope(alice, thread)) is not None
    accounts.revoke_tokens(alice.identity)

    scope, body = post_scope(alice, thread)
    assert route_answer(scope, body) is None
    assert django_answer(scope, body).status_code == 401


def test_a_removed_participant_is_refused_at_once(
    alice: ChatUser, bob: ChatUser, thread: str
) -> None:
    assert route_answer(*post_scope(bob, thread)) is not None
    services.remove_participant(alice.principal, thread, {"rawId": bob.raw_id})

    scope, body = post_scope(bob, thread)
    assert route_answer(scope, body) is None
    assert django_answer(scope, body).status_code == 403


def test_a_deleted_thread_or_an_unknown_one_is_left_to_django(alice: ChatUser, thread: str) -> None:
    services.delete_thread(alice.principal, thread)
    for thread_id in (thread, "19:nothing@thread.v2", "19:a\x00b@thread.v2"):
        scope, body = post_scope(alice, thread_id)
        assert route_answer(scope, body) is None
        assert django_answer(scope, body).status_code == 404


def test_tenants_stay_apart_on_the_route(
    alice: ChatUser,
    thread: str,
    other_resource: Resource,
    chat_user: Callable[..., ChatUser],
    make_thread: Callable[..., str],
) -> None:
    mine = alice.identity.resource
    mallory = chat_user(on=other_resource)
    theirs = make_thread(mallory, chat_user(on=other_resource))
    cases = {
        "their token on alice's path, her thread": (post_scope(mallory, thread, to=mine), 401),
        "their token on alice's path, theirs": (post_scope(mallory, theirs, to=mine), 401),
        "their token on alice's origin": (post_scope(mallory, thread, to=mine, paths=False), 401),
        "their token, alice's thread": (post_scope(mallory, thread), 404),
        "alice's token, their thread": (post_scope(alice, theirs), 404),
        "alice's token on their path": (post_scope(alice, theirs, to=other_resource), 401),
        "alice's token on their origin": (
            post_scope(alice, thread, to=other_resource, paths=False),
            401,
        ),
    }
    for case, ((scope, body), django_status) in cases.items():
        assert route_answer(scope, body) is None, case
        assert ChatMessage.objects.count() == 0
        assert django_answer(scope, body).status_code == django_status, case


def test_plain_http_from_afar_and_unknown_hosts_are_left_to_django(
    alice: ChatUser, thread: str
) -> None:
    assert route_answer(*post_scope(alice, thread, client="203.0.113.9")) is None
    scope, body = post_scope(alice, thread, scheme="https", client="203.0.113.9")
    assert route_answer(scope, body) is not None

    assert route_answer(*post_scope(alice, thread, host="evil.example")) is None
    scope, body = post_scope(alice, thread)
    scope["headers"].append((b"host", b"testserver"))  # Host twice
    assert route_answer(scope, body) is None
    # A resource's origin serves its API at the root: /r/<slug>/ there is another path.
    resource = alice.identity.resource
    assert route_answer(*post_scope(alice, thread, host=origin_host(resource))) is None


def test_on_a_port_of_no_console_and_no_resource_the_route_answers_as_the_console(
    alice: ChatUser, thread: str
) -> None:
    # given a web process on a port of its own (behind a load balancer, or bench/chat.py's)
    scope, body = post_scope(alice, thread, host="127.0.0.1:1")

    # then /r/<slug>/ is the console's path there, for Django and for the route
    status, _, _ = answered(route_answer(scope, body))
    assert status == django_answer(scope, body).status_code == 201


def test_on_a_resource_port_no_resource_holds_the_route_leaves_it_to_django(
    alice: ChatUser, thread: str, settings: Any
) -> None:
    # given a port of SPOOL_RESOURCE_PORTS that no resource holds (a deleted one's, say)
    first, last = settings.RESOURCE_PORTS
    held = set(Resource.objects.values_list("port", flat=True))
    free = next(port for port in range(last, first - 1, -1) if port not in held)
    scope, body = post_scope(alice, thread, host=f"127.0.0.1:{free}")

    # then Django refuses it as no resource's origin, and the route leaves it to Django
    assert route_answer(scope, body) is None
    assert django_answer(scope, body).status_code == 401


def test_a_database_error_leaves_the_request_to_django(
    alice: ChatUser, thread: str, monkeypatch: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("the database is away")

    monkeypatch.setattr(services, "_take_message_sequences", broken)
    assert route_answer(*post_scope(alice, thread)) is None
    assert ChatMessage.objects.count() == 0


def test_the_route_refuses_past_the_quota_in_acs_shape_and_counts_once(
    bob: ChatUser, thread: str, settings: Any
) -> None:
    settings.QUOTAS = {**settings.QUOTAS, "chat": (3, 30)}  # per identity: bob's first calls
    answers = [route_answer(*post_scope(bob, thread)) for _ in range(4)]

    assert [a[0] for a in answers if a] == [201, 201, 201, 429]
    status, headers, body = answered(answers[3])
    assert body["error"]["code"] == "TooManyRequests"
    assert 1 <= int(headers["retry-after"]) <= 30
    # The view shares the count: the next post through Django is refused too, with the same
    # headers.
    view = django_answer(*post_scope(bob, thread))
    assert view.status_code == 429
    assert set(headers) == {name.lower() for name in view.headers}
    quotas.leases.forget()


def test_a_subscription_takes_events_from_the_next_post_on(
    alice: ChatUser, thread: str, monkeypatch: Any
) -> None:
    # given a post while the resource has no subscription
    answered(route_answer(*post_scope(alice, thread)))
    resource = alice.identity.resource
    monkeypatch.setattr("apps.events.dispatch.queue_validation_on_commit", lambda pk: None)
    subscription = events.create_subscription(
        resource, name="hook", endpoint_url="https://hooks.example/chat"
    )
    events.set_subscription_enabled(subscription, False)
    subscription.validated_at = subscription.created_at
    subscription.save(update_fields=["validated_at"])

    # when it becomes active, the next post is delivered to it
    events.set_subscription_enabled(subscription, True)
    _, _, body = answered(route_answer(*post_scope(alice, thread)))
    delivered = EventDelivery.objects.filter(subscription=subscription)
    assert {d.event.data["messageId"] for d in delivered} == {body["id"]}

    # and once disabled, no longer
    events.set_subscription_enabled(subscription, False)
    answered(route_answer(*post_scope(alice, thread)))
    assert delivered.count() == 2  # the thread event and bob's copy of the one message


def test_the_route_takes_no_more_queries_than_the_view(
    chat_user: Callable[..., ChatUser], make_thread: Callable[..., str]
) -> None:
    # given a thread of ten
    alice = chat_user()
    thread = make_thread(alice, *(chat_user() for _ in range(9)))

    # when alice posts through the route, then through the view
    with CaptureQueriesContext(connection) as route:
        assert route_answer(*post_scope(alice, thread)) is not None
    with CaptureQueriesContext(connection) as view:
        response = alice.call("POST", thread_path(thread, "/messages"), {"content": "hi"})
    assert response.status_code == 201

    # then the route takes as few: token, thread with participants, sequence, message,
    # activity, subscriptions, event (and the savepoints of the test's own transaction)
    assert len(route.captured_queries) <= len(view.captured_queries) <= 9


def test_a_token_is_refused_at_once_when_it_expires_though_it_was_accepted_before(
    alice: ChatUser, thread: str
) -> None:
    # given a token accepted a moment before it expires (its signature is then remembered)
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    expires_at = int(time.time()) + 1
    token = tokens.sign({**claims, "exp": expires_at})
    assert route_answer(*post_scope(alice, thread, token=token)) is not None

    # when it expires
    time.sleep(max(0.0, expires_at - time.time()) + 0.05)

    # then the route leaves it to Django, which refuses it
    scope, body = post_scope(alice, thread, token=token)
    assert route_answer(scope, body) is None
    assert django_answer(scope, body).status_code == 401


def test_a_token_is_refused_at_once_when_its_signing_key_is_deleted(
    alice: ChatUser, thread: str, settings: Any, tmp_path: Any
) -> None:
    # given a token accepted before (its signature is then remembered)
    settings.SIGNING_KEYS_DIR = tmp_path / "keys"
    key = tokens.key_store().rotate(immediately=True)
    token = accounts.issue_token(alice.identity, ["chat"]).token
    assert route_answer(*post_scope(alice, thread, token=token)) is not None

    # when its key is deleted (it leaked), and a new one signs
    tokens.key_store().rotate(immediately=True)
    for path in (tmp_path / "keys").glob(f"*-{key.kid}.pem"):
        path.unlink()
    tokens.key_store()._refresh(force=True)  # (the store looks at its folder each second)

    # then the route leaves it to Django, which refuses it
    scope, body = post_scope(alice, thread, token=token)
    assert route_answer(scope, body) is None
    assert django_answer(scope, body).status_code == 401


# --- The group commit -------------------------------------------------------------------------
def test_posts_stored_together_take_their_threads_numbers_in_order_and_share_each_statement(
    alice: ChatUser,
    bob: ChatUser,
    make_thread: Callable[..., str],
    monkeypatch: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given two threads of alice and bob (each created as change 1, so a post is 2), and posts
    # checked for them in turn
    first, second = make_thread(alice, bob), make_thread(alice, bob)

    def checked(thread_id: str, content: str) -> services.MessageRequest:
        return services.check_send_message(alice.principal, thread_id, {"content": content})

    sent: list[Any] = []
    monkeypatch.setattr("apps.core.realtime.send_now", sent.extend)

    # when two of them are stored together, then four
    pair = [checked(first, "a"), checked(second, "b")]
    with CaptureQueriesContext(connection) as two:
        services.do_send_messages(pair)
    posts = [checked(first, "c"), checked(second, "d"), checked(first, "e"), checked(first, "f")]
    with (
        CaptureQueriesContext(connection) as four,
        django_capture_on_commit_callbacks(execute=True),
    ):
        messages = services.do_send_messages(posts)

    # then twice the posts take no more statements: a number per thread, one INSERT for each
    # of the messages, their activity and their events
    assert len(four) == len(two)
    # each message is its post's, its thread's next numbers in the order given
    assert [m.content for m in messages] == ["c", "d", "e", "f"]
    assert [(m.thread_id, m.sequence_id) for m in messages] == [
        (first, 3),
        (second, 3),
        (first, 4),
        (first, 5),
    ]
    assert [m.pk for m in messages] == sorted(m.pk for m in messages)
    for message in messages:
        activity = ChatActivity.objects.get(thread=message.thread, sequence=message.sequence_id)
        assert activity.data["id"] == str(message.pk)
        assert Event.objects.filter(
            data__messageId=str(message.pk), event_type__endswith="ChatMessageReceivedInThread"
        ).exists()
    # and after the commit bob hears of each, a thread's in its order
    heard = [
        (frame["threadId"], frame["sequence"], frame["data"]["message"])
        for group, frame in sent
        if group == accounts.identity_group(bob.identity.id)
    ]
    assert heard == [(first, 3, "c"), (second, 3, "d"), (first, 4, "e"), (first, 5, "f")]


def test_each_post_of_a_group_commit_is_answered_with_its_own_message(
    alice: ChatUser, bob: ChatUser, make_thread: Callable[..., str]
) -> None:
    # given posts of several requests handed to the commit as one batch
    thread_id = make_thread(alice, bob)
    posts = [
        pending_post(who, thread_id, {"content": f"from {name}"})
        for who, name in ((alice, "alice"), (bob, "bob"), (alice, "alice again"))
    ]

    message_route._store(posts)

    # then each request learns its own message
    assert [answered(p.answer())[2]["id"] for p in posts] == [str(p.message.pk) for p in posts]
    assert [p.message.content for p in posts] == ["from alice", "from bob", "from alice again"]
    assert [p.message.sender_raw_id for p in posts] == [alice.raw_id, bob.raw_id, alice.raw_id]


def pending_post(who: ChatUser, thread_id: str, body: Any = BODY, **change: Any) -> Any:
    """A post read on the loop, before its batch checks it (message_route.pending); its scope
    and body kept as `sent`, to send the same request to Django."""
    sent = post_scope(who, thread_id, body, **change)
    post = message_route.pending(*sent)
    assert post is not None
    post.sent = sent
    return post


def test_a_batch_checks_each_post_as_the_view_does_and_stores_only_those_that_pass(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: Callable[..., ChatUser],
    make_thread: Callable[..., str],
    other_resource: Resource,
) -> None:
    # given, in one batch, posts that pass between posts that must not
    thread_id = make_thread(alice, bob)
    carol = chat_user()  # of the resource, in no thread
    dave = chat_user()
    revoked = pending_post(dave, make_thread(dave, bob), {"content": "revoked"})
    accounts.revoke_tokens(dave.identity)
    mallory = chat_user(on=other_resource)
    theirs = make_thread(mallory, chat_user(on=other_resource))
    refused = {
        "a non-participant": (pending_post(carol, thread_id, {"content": "carol"}), 403),
        "a revoked token": (revoked, 401),
        "an unknown thread": (pending_post(alice, "19:no@thread.v2", {"content": "x"}), 404),
        "another tenant's thread": (pending_post(alice, theirs, {"content": "theirs"}), 404),
        "another tenant's token on alice's path": (
            pending_post(mallory, thread_id, {"content": "m"}, to=alice.identity.resource),
            401,
        ),
    }
    passing = [pending_post(alice, thread_id, {"content": "one"})]
    passing.append(pending_post(bob, thread_id, {"content": "two"}))
    batch = [passing[0], *(post for post, _ in refused.values()), passing[1]]

    # when the batch is stored
    message_route._store(batch)

    # then the two that pass are stored and answered, in order
    assert [answered(p.answer())[0] for p in passing] == [201, 201]
    stored = ChatMessage.objects.filter(thread_id=thread_id, type="text")
    assert list(stored.order_by("sequence_id").values_list("content", flat=True)) == [
        "one",
        "two",
    ]
    assert not ChatMessage.objects.filter(thread_id=theirs, type="text").exists()
    # and each other one is left to Django, which refuses it as the view does
    for case, (post, status) in refused.items():
        assert post.answerer() is None, case
        assert post.message is None, case
        assert django_answer(*post.sent).status_code == status, case


def test_a_batch_counts_each_post_against_its_quota_once_and_refuses_past_it(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: Callable[..., ChatUser],
    make_thread: Callable[..., str],
    settings: Any,
) -> None:
    # given bob's quota of three posts, and a batch of four of his, one of carol's and two of
    # dave's, who is in no thread
    carol, dave = chat_user(), chat_user()
    thread = make_thread(alice, bob, carol)
    settings.QUOTAS = {**settings.QUOTAS, "chat": (3, 30)}  # per identity: their first calls
    batch = [pending_post(bob, thread, {"content": f"bob {n}"}) for n in range(4)]
    batch.insert(2, pending_post(carol, thread, {"content": "carol"}))
    strays = [pending_post(dave, thread, {"content": "dave"}) for _ in range(2)]

    message_route._store([*batch, *strays])

    # then his first three and hers are stored, and his fourth refused in the ACS shape
    statuses = [answered(post.answer())[0] for post in batch]
    assert statuses == [201, 201, 201, 201, 429]
    # dave's are left to Django, which counts them: the batch gave their counts back
    assert [post.answerer() for post in strays] == [None, None]
    dave_through_django = [django_answer(*post_scope(dave, thread)).status_code for _ in range(4)]
    assert dave_through_django == [403, 403, 403, 429]
    _, headers, body = answered(batch[4].answer())
    assert body["error"]["code"] == "TooManyRequests"
    assert 1 <= int(headers["retry-after"]) <= 30
    assert ChatMessage.objects.filter(thread_id=thread, type="text").count() == 4
    # and the count is shared: his next post through Django is refused too
    assert django_answer(*post_scope(bob, thread)).status_code == 429
    quotas.leases.forget()


@pytest.mark.django_db(transaction=True)
def test_a_thread_gone_between_its_check_and_the_commit_fails_only_its_own_post(
    alice: ChatUser, bob: ChatUser, make_thread: Callable[..., str], monkeypatch: Any
) -> None:
    # given posts for two threads, and one of the threads removed once the batch checked them
    kept, gone = make_thread(alice, bob), make_thread(alice, bob)
    posts = [pending_post(alice, t, {"content": t}) for t in (kept, gone, kept)]
    check = message_route._check

    def check_then_remove(batch: list[Any]) -> None:
        check(batch)
        ChatThread.objects.filter(pk=gone).delete()

    monkeypatch.setattr(message_route, "_check", check_then_remove)

    def store(batch: list[message_route._Post]) -> None:
        try:
            message_route._store(batch)
        finally:
            connection.close()  # (the commit thread's, so the test database can go)

    # when a group commit (its own thread and connection) stores them as one batch
    commit = GroupCommit("test-posts", store, inline=lambda: False, gather=0.05)
    answers = [commit.submit(post, then=post.answerer) for post in posts]

    # then the gone thread's post fails alone, and the others are stored and answered
    with pytest.raises(ThreadNotFound):
        answers[1].result(10)
    assert [answered(answers[n].result(10)())[0] for n in (0, 2)] == [201, 201]
    assert list(
        ChatMessage.objects.filter(thread_id=kept, type="text").values_list("content", flat=True)
    ) == [kept, kept]
    assert not ChatMessage.objects.filter(thread_id=gone).exists()
