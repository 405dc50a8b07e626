"""What api-version 2025-03-15 (@azure/communication-chat 1.6) adds to the Chat API, through
DRF's client: thread and participant metadata and the thread's retention policy, shown to
callers of that version only; the rules on them (400 naming the field, nothing changed); and
the behaviours the JS SDK relies on: removing someone not in the thread succeeds, and its
realtime configuration request gets a clear 501."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from apps.chat.models import ChatActivity, ChatMessage, ChatParticipant, ChatThread, MessageType
from tests.chat.conftest import ChatUser, assert_acs_error, chat_state, ident, member, thread_path
from tests.conftest import origin_host

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., ChatUser]
MakeThread = Callable[..., str]
NEW = "2025-03-15"
OLD = "2024-03-07"
MERGE_PATCH = "application/merge-patch+json"


def create(user: ChatUser, body: dict[str, Any], api_version: str = NEW) -> dict[str, Any]:
    response = user.call("POST", "/threads", body, api_version=api_version)
    assert response.status_code == 201, response.content
    return dict(response.json()["chatThread"])


def properties(user: ChatUser, thread_id: str, api_version: str = NEW) -> dict[str, Any]:
    response = user.call("GET", thread_path(thread_id), api_version=api_version)
    assert response.status_code == 200, response.content
    return dict(response.json())


def patch(user: ChatUser, thread_id: str, body: Any) -> Any:
    return user.call(
        "PATCH", thread_path(thread_id), body, api_version=NEW, content_type=MERGE_PATCH
    )


def participants(user: ChatUser, thread_id: str, api_version: str = NEW) -> dict[str, Any]:
    response = user.call("GET", thread_path(thread_id, "/participants"), api_version=api_version)
    assert response.status_code == 200, response.content
    return {p["communicationIdentifier"]["rawId"]: p for p in response.json()["value"]}


# --- Metadata and retention policy -----------------------------------------------------------
def test_a_thread_is_created_with_metadata_a_retention_policy_and_participant_metadata(
    alice: ChatUser, bob: ChatUser
) -> None:
    # when alice creates a thread with all three
    body = {
        "topic": "Launch",
        "metadata": {"threadType": "primary", "secondaryThread": "19:x@thread.v2"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
        "participants": [member(bob, "Bob", metadata={"role": "reviewer"})],
    }
    created = create(alice, body)

    # then the answer, the thread and its participants carry them
    assert created["metadata"] == body["metadata"]
    assert created["retentionPolicy"] == {"kind": "threadCreationDate", "deleteThreadAfterDays": 30}
    assert properties(bob, created["id"]) == created
    listed = participants(bob, created["id"])
    assert listed[bob.raw_id]["metadata"] == {"role": "reviewer"}
    assert listed[alice.raw_id]["metadata"] == {}
    # and the thread is due for deletion 30 days after its creation
    thread = ChatThread.objects.get(pk=created["id"])
    assert thread.retention_days == 30
    assert thread.expires_at == thread.created_at + timedelta(days=30)


def test_a_thread_without_them_reports_no_metadata_and_the_none_policy(alice: ChatUser) -> None:
    # when
    created = create(alice, {"topic": "Plain"})

    # then (ACS answers a thread created without a policy with kind none)
    assert created["metadata"] == {}
    assert created["retentionPolicy"] == {"kind": "none"}
    assert properties(alice, created["id"])["retentionPolicy"] == {"kind": "none"}
    assert ChatThread.objects.get(pk=created["id"]).expires_at is None


def test_a_none_policy_is_accepted_on_creation(alice: ChatUser) -> None:
    # when
    created = create(alice, {"topic": "Kept", "retentionPolicy": {"kind": "none"}})

    # then
    assert created["retentionPolicy"] == {"kind": "none"}
    assert ChatThread.objects.get(pk=created["id"]).retention_days is None


def test_older_api_versions_get_the_shapes_they_knew(alice: ChatUser, bob: ChatUser) -> None:
    # given a thread with metadata, a policy and participant metadata, created by an older
    # client (requests may set them under any version)
    body = {
        "topic": "Mixed",
        "metadata": {"k": "v"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 7},
        "participants": [member(bob, metadata={"a": "b"})],
    }
    created = create(alice, body, api_version=OLD)

    # then 2024-03-07 answers without the new fields
    assert set(created) == {"id", "topic", "createdOn", "createdByCommunicationIdentifier"}
    assert set(properties(alice, created["id"], OLD)) == set(created)
    assert all("metadata" not in p for p in participants(alice, created["id"], OLD).values())
    # and 2025-03-15 shows what was stored
    shown = properties(alice, created["id"], NEW)
    assert shown["metadata"] == {"k": "v"}
    assert shown["retentionPolicy"] == {"kind": "threadCreationDate", "deleteThreadAfterDays": 7}
    assert participants(alice, created["id"], NEW)[bob.raw_id]["metadata"] == {"a": "b"}


def test_metadata_may_fill_exactly_1_kb(alice: ChatUser) -> None:
    # given keys and values of 1024 UTF-8 bytes in all (an "é" is two)
    metadata = {"k": "v" * 1021, "é": ""}

    # when
    created = create(alice, {"topic": "Full", "metadata": metadata})

    # then
    assert created["metadata"] == metadata


def test_updating_properties_merges_metadata_and_replaces_the_policy(
    alice: ChatUser, bob: ChatUser
) -> None:
    # given a thread with metadata and no policy
    body = {"topic": "Start", "metadata": {"a": "1", "b": "2"}, "participants": [member(bob)]}
    thread_id = create(alice, body)["id"]

    # when alice changes one key, removes another (null) and adds a third
    response = patch(alice, thread_id, {"metadata": {"a": "one", "b": None, "c": "3"}})

    # then the metadata is merged, the topic kept
    assert response.status_code == 204, response.content
    shown = properties(bob, thread_id)
    assert shown["metadata"] == {"a": "one", "c": "3"} and shown["topic"] == "Start"

    # when she sets a policy, then changes it
    assert patch(alice, thread_id, {"retentionPolicy": _policy(40)}).status_code == 204
    assert properties(bob, thread_id)["retentionPolicy"] == _policy(40)
    assert patch(alice, thread_id, {"retentionPolicy": _policy(50)}).status_code == 204

    # then the last one holds, counted from the thread's creation, and the metadata stays
    thread = ChatThread.objects.get(pk=thread_id)
    assert thread.expires_at == thread.created_at + timedelta(days=50)
    assert properties(bob, thread_id)["metadata"] == {"a": "one", "c": "3"}

    # when she removes the policy with kind none, then sets one and removes it with null
    assert patch(alice, thread_id, {"retentionPolicy": {"kind": "none"}}).status_code == 204
    assert properties(bob, thread_id)["retentionPolicy"] == {"kind": "none"}
    assert ChatThread.objects.get(pk=thread_id).expires_at is None
    assert patch(alice, thread_id, {"retentionPolicy": _policy(90)}).status_code == 204
    assert patch(alice, thread_id, {"retentionPolicy": None}).status_code == 204

    # then the thread has none
    assert properties(bob, thread_id)["retentionPolicy"] == {"kind": "none"}
    assert ChatThread.objects.get(pk=thread_id).expires_at is None

    # when she updates all three at once
    body = {"topic": "All", "metadata": {"KeyA": "ValueA"}, "retentionPolicy": _policy(90)}
    assert patch(alice, thread_id, body).status_code == 204

    # then
    shown = properties(bob, thread_id)
    assert shown["topic"] == "All" and shown["retentionPolicy"] == _policy(90)
    assert shown["metadata"] == {"a": "one", "c": "3", "KeyA": "ValueA"}


def _policy(days: int) -> dict[str, Any]:
    return {"kind": "threadCreationDate", "deleteThreadAfterDays": days}


def test_only_a_topic_change_leaves_a_system_message(alice: ChatUser, bob: ChatUser) -> None:
    # given
    thread_id = create(alice, {"topic": "Start", "participants": [member(bob)]})["id"]

    # when the metadata and the policy change, then the topic
    patch(alice, thread_id, {"metadata": {"k": "v"}, "retentionPolicy": _policy(3)})
    patch(alice, thread_id, {"topic": "Renamed"})

    # then both changes are told to the participants, but only the topic is in the history
    updates = ChatActivity.objects.filter(thread_id=thread_id, event="chatThreadPropertiesUpdated")
    assert [a.data["properties"] for a in updates.order_by("sequence")] == [
        {"topic": "Start", "metadata": {"k": "v"}},
        {"topic": "Renamed", "metadata": {"k": "v"}},
    ]
    assert [a.data["retentionPolicy"] for a in updates.order_by("sequence")] == [_policy(3)] * 2
    kinds = ChatMessage.objects.filter(thread_id=thread_id).values_list("type", flat=True)
    assert list(kinds) == [MessageType.TOPIC_UPDATED]


@pytest.mark.parametrize(
    "body",
    [{}, {"metadata": {}}, {"metadata": {"a": "1"}}, {"retentionPolicy": _policy(5)}],
    ids=["empty", "empty metadata", "same metadata", "same policy"],
)
def test_a_patch_that_changes_nothing_is_accepted_and_silent(
    alice: ChatUser, body: dict[str, Any]
) -> None:
    # given
    thread_id = create(
        alice, {"topic": "Same", "metadata": {"a": "1"}, "retentionPolicy": _policy(5)}
    )["id"]
    before = chat_state()

    # when
    response = patch(alice, thread_id, body)

    # then
    assert response.status_code == 204
    assert chat_state() == before


def test_participant_metadata_is_set_when_added_and_replaced_when_added_again(
    alice: ChatUser, bob: ChatUser, chat_user: MakeUser, make_thread: MakeThread
) -> None:
    # given
    carol = chat_user()
    thread_id = make_thread(alice, bob)
    add = thread_path(thread_id, "/participants/:add")

    # when alice adds carol with metadata
    response = alice.call(
        "POST", add, {"participants": [member(carol, "Carol", metadata={"team": "red"})]},
        api_version=NEW,
    )  # fmt: skip

    # then it is listed with it, and the system message and events carry it
    assert response.status_code == 201 and response.json() == {}
    assert participants(bob, thread_id)[carol.raw_id]["metadata"] == {"team": "red"}
    added = ChatActivity.objects.get(thread_id=thread_id, event="participantsAdded")
    assert added.data["participantsAdded"][0]["metadata"] == {"team": "red"}

    # when she adds carol again with other metadata
    again = {"participants": [member(carol, "Carol", metadata={"team": "blue"})]}
    assert alice.call("POST", add, again, api_version=NEW).status_code == 201

    # then it is replaced
    assert participants(bob, thread_id)[carol.raw_id]["metadata"] == {"team": "blue"}


# --- Bad metadata and policies change nothing ------------------------------------------------
BIG = "v" * 1024
BAD_PROPERTIES: list[tuple[str, str, str, Any, str]] = [
    # (id, method, path, body, target)
    ("create: metadata not an object", "POST", "/threads", {"topic": "t", "metadata": ["a"]}, "metadata"),
    ("create: metadata value not a string", "POST", "/threads", {"topic": "t", "metadata": {"a": 1}}, "metadata"),
    ("create: metadata value null", "POST", "/threads", {"topic": "t", "metadata": {"a": None}}, "metadata"),
    ("create: metadata over 1 KB", "POST", "/threads", {"topic": "t", "metadata": {"k": BIG}}, "metadata"),
    ("create: metadata over 1 KB in UTF-8", "POST", "/threads", {"topic": "t", "metadata": {"k": "é" * 512}}, "metadata"),
    ("create: metadata over 1 KB in keys", "POST", "/threads", {"topic": "t", "metadata": {f"key{n:04}": "" for n in range(150)}}, "metadata"),
    ("create: metadata key with a lone surrogate", "POST", "/threads", {"topic": "t", "metadata": {"\ud800": "v"}}, "metadata"),
    ("create: metadata value with a lone surrogate", "POST", "/threads", {"topic": "t", "metadata": {"k": "a\udfffb"}}, "metadata"),
    ("create: metadata value with a NUL", "POST", "/threads", {"topic": "t", "metadata": {"k": "a\x00b"}}, "metadata"),
    ("create: policy not an object", "POST", "/threads", {"topic": "t", "retentionPolicy": "30 days"}, "retentionPolicy"),
    ("create: policy without kind", "POST", "/threads", {"topic": "t", "retentionPolicy": {"deleteThreadAfterDays": 30}}, "retentionPolicy.kind"),
    ("create: policy of an unknown kind", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "afterLastMessage", "deleteThreadAfterDays": 30}}, "retentionPolicy.kind"),
    ("create: policy kind with a lone surrogate", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "\ud800"}}, "retentionPolicy.kind"),
    ("create: policy without days", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "threadCreationDate"}}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy of 0 days", "POST", "/threads", {"topic": "t", "retentionPolicy": _policy(0)}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy of 91 days", "POST", "/threads", {"topic": "t", "retentionPolicy": _policy(91)}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy of -1 days", "POST", "/threads", {"topic": "t", "retentionPolicy": _policy(-1)}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy days a string", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": "30"}}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy days a fraction", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 1.5}}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: policy days a boolean", "POST", "/threads", {"topic": "t", "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": True}}, "retentionPolicy.deleteThreadAfterDays"),
    ("create: participant metadata not strings", "POST", "/threads", {"topic": "t", "participants": [member("{bob}", metadata={"a": ["b"]})]}, "participants[0].metadata"),
    ("create: participant metadata over 1 KB", "POST", "/threads", {"topic": "t", "participants": [member("{bob}", metadata={"k": BIG})]}, "participants[0].metadata"),
    ("create: participant metadata with a lone surrogate", "POST", "/threads", {"topic": "t", "participants": [member("{bob}", metadata={"k": "\udbff"})]}, "participants[0].metadata"),
    ("update: metadata not an object", "PATCH", "{thread}", {"metadata": "k=v"}, "metadata"),
    ("update: metadata value not a string", "PATCH", "{thread}", {"metadata": {"k": 5}}, "metadata"),
    ("update: metadata over 1 KB once merged", "PATCH", "{thread}", {"metadata": {"more": "x" * 1020}}, "metadata"),
    ("update: metadata with a lone surrogate", "PATCH", "{thread}", {"metadata": {"k": "\ud800"}}, "metadata"),
    ("update: metadata key with a NUL", "PATCH", "{thread}", {"metadata": {"\x00": "v"}}, "metadata"),
    ("update: policy of 91 days", "PATCH", "{thread}", {"retentionPolicy": _policy(91)}, "retentionPolicy.deleteThreadAfterDays"),
    ("update: policy of an unknown kind", "PATCH", "{thread}", {"retentionPolicy": {"kind": "forever"}}, "retentionPolicy.kind"),
    ("update: a good topic with a bad policy", "PATCH", "{thread}", {"topic": "New", "metadata": {"k": "v"}, "retentionPolicy": _policy(0)}, "retentionPolicy.deleteThreadAfterDays"),
    ("update: a good policy with bad metadata", "PATCH", "{thread}", {"retentionPolicy": _policy(9), "metadata": {"k": BIG}}, "metadata"),
    ("add: participant metadata over 1 KB", "POST", "{thread}/participants/:add", {"participants": [member("{carol}", metadata={"k": BIG})]}, "participants[0].metadata"),
    ("add: participant metadata not an object", "POST", "{thread}/participants/:add", {"participants": [member("{carol}", metadata="team=red")]}, "participants[0].metadata"),
    ("add: participant metadata with a lone surrogate", "POST", "{thread}/participants/:add", {"participants": [member("{carol}", metadata={"\udc00": "v"})]}, "participants[0].metadata"),
]  # fmt: skip


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("api_version", [NEW, OLD])
@pytest.mark.parametrize(
    ("method", "path", "body", "target"),
    [case[1:] for case in BAD_PROPERTIES],
    ids=[case[0] for case in BAD_PROPERTIES],
)
def test_bad_metadata_and_policies_are_400_naming_the_field_and_change_nothing(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: MakeUser,
    method: str,
    path: str,
    body: Any,
    target: str,
    api_version: str,
) -> None:
    # given a thread with some metadata and a policy
    carol = chat_user()
    thread_id = create(
        alice,
        {"topic": "t", "metadata": {"k": "v"}, "retentionPolicy": _policy(30)},
        api_version=api_version,
    )["id"]
    names = {"bob": bob.raw_id, "carol": carol.raw_id}
    path = path.replace("{thread}", thread_path(thread_id))
    before = chat_state()

    # when
    response = alice.call(
        method,
        path,
        _fill(body, names),
        api_version=api_version,
        content_type=MERGE_PATCH if method == "PATCH" else "application/json",
    )

    # then
    error = assert_acs_error(response, 400, "InvalidRequest")
    assert error.get("target") == target, error
    assert chat_state() == before


# --- Removing someone not in the thread ------------------------------------------------------
@pytest.mark.parametrize("api_version", [NEW, OLD])
def test_removing_someone_not_in_the_thread_succeeds_and_changes_nothing(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: MakeUser,
    other_resource: Any,
    make_thread: MakeThread,
    api_version: str,
) -> None:
    # given a thread of alice and bob, and identities that are not in it
    thread_id = make_thread(alice, bob)
    remove = thread_path(thread_id, "/participants/:remove")
    outsiders = [
        chat_user().raw_id,  # of this resource
        f"8:acs:{alice.identity.resource_id}_00000000-0000-4000-8000-000000000000",  # unknown
        chat_user(on=other_resource).raw_id,  # of another resource
        "4:+14255550123",  # a phone number
    ]
    before = chat_state()

    for raw_id in outsiders:
        # when alice removes one (as the official samples do)
        response = alice.call("POST", remove, ident(raw_id), api_version=api_version)

        # then it succeeds, with no system message, no event and no change
        assert response.status_code == 204 and response.content == b"", raw_id
    assert chat_state() == before


def test_removing_someone_not_in_the_thread_still_needs_the_right_to_remove(
    alice: ChatUser, bob: ChatUser, chat_user: MakeUser, make_thread: MakeThread
) -> None:
    # given a chat.join.limited participant, and an outsider
    carol = chat_user(["chat.join.limited"])
    thread_id = make_thread(alice, bob, carol)
    before = chat_state()

    # when carol removes the outsider, or an outsider removes anyone
    refused = carol.call(
        "POST", thread_path(thread_id, "/participants/:remove"), ident(chat_user().raw_id)
    )
    outsider = chat_user().call(
        "POST", thread_path(thread_id, "/participants/:remove"), ident(bob.raw_id)
    )

    # then both are 403, as before
    assert_acs_error(refused, 403, "Forbidden")
    assert_acs_error(outsider, 403, "Forbidden")
    assert chat_state() == before


# --- startRealtimeNotifications() in a browser -----------------------------------------------
CONFIG = "chat/config/realTimeNotifications?api-version=2024-09-01"


def _config(user: ChatUser, path: str, *, host: str = "testserver", **headers: str) -> Any:
    """GET a raw path, kept as it is (the test client would take `//chat` for a host name)."""
    route, _, query = path.partition("?")
    return Client().get(
        f"http://{host}{route}",
        QUERY_STRING=query,
        HTTP_HOST=host,
        HTTP_AUTHORIZATION=f"Bearer {user.token}",
        **headers,
    )


@pytest.mark.parametrize(
    "where",
    ["console path", "console path, double slash", "own origin", "own origin, double slash"],
)
def test_the_realtime_configuration_is_501_pointing_to_spools_socket(
    alice: ChatUser, where: str
) -> None:
    # given the URL the JS SDK builds from an endpoint (one that ends with "/" gives "//chat")
    resource = alice.identity.resource
    host = origin_host(resource) if "own origin" in where else "testserver"
    prefix = "" if "own origin" in where else f"/r/{resource.slug}"
    slash = "//" if "double slash" in where else "/"
    before = chat_state()

    # when
    response = _config(alice, f"{prefix}{slash}{CONFIG}", host=host)

    # then a 501 in the ACS shape tells the developer what to use instead
    error = assert_acs_error(response, 501, "RealtimeNotificationsNotSupported")
    assert "/static/chat/spool-chat.js" in error["message"]
    assert "docs/chat-realtime-with-sdk.md" in error["message"]
    assert "/ws/?access_token=" in error["message"]
    assert chat_state() == before


def test_the_realtime_configuration_answers_any_api_version_but_needs_a_token(
    alice: ChatUser,
) -> None:
    # given
    path = f"/r/{alice.identity.resource.slug}//chat/config/realTimeNotifications"

    # when
    unversioned = _config(alice, path)
    anonymous = Client().get(path, QUERY_STRING="api-version=2024-09-01")

    # then
    assert_acs_error(unversioned, 501, "RealtimeNotificationsNotSupported")
    assert_acs_error(anonymous, 401, "Unauthorized")


def test_a_browser_may_read_the_realtime_configuration_answer(alice: ChatUser) -> None:
    # given a page on another origin (the SDK puts the body into its error)
    resource = alice.identity.resource
    host = origin_host(resource)
    origin = "http://localhost:3000"

    # when the browser sends its preflight, then the GET
    preflight = Client().options(
        f"http://{host}//chat/config/realTimeNotifications",
        QUERY_STRING="api-version=2024-09-01",
        HTTP_HOST=host,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    response = _config(alice, f"//{CONFIG}", host=host, HTTP_ORIGIN=origin)

    # then both are allowed for that origin
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] in (origin, "*")
    assert "authorization" in preflight["Access-Control-Allow-Headers"].lower()
    assert response.status_code == 501
    assert response["Access-Control-Allow-Origin"] in (origin, "*")
    assert json.loads(response.content)["error"]["code"] == "RealtimeNotificationsNotSupported"


def test_the_headers_the_browser_sdk_sends_pass_the_preflight(alice: ChatUser) -> None:
    # given the headers @azure/core-rest-pipeline's browser build sets on every request
    host = origin_host(alice.identity.resource)
    requested = ["authorization", "x-ms-client-request-id", "x-ms-useragent"]

    # when the browser sends its preflight
    preflight = Client().options(
        f"http://{host}//chat/config/realTimeNotifications",
        QUERY_STRING="api-version=2024-09-01",
        HTTP_HOST=host,
        HTTP_ORIGIN="http://localhost:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=",".join(requested),
    )

    # then every one is allowed
    allowed = {h.strip().lower() for h in preflight["Access-Control-Allow-Headers"].split(",")}
    assert set(requested) <= allowed, allowed


def test_a_thread_created_without_the_new_fields_has_no_metadata_and_no_policy(
    alice: ChatUser, bob: ChatUser
) -> None:
    # when a thread is created the old way
    response = alice.call("POST", "/threads", {"topic": "Old", "participants": [member(bob)]})

    # then its rows hold no metadata and no policy
    thread = ChatThread.objects.get(pk=response.json()["chatThread"]["id"])
    assert (thread.metadata, thread.retention_days, thread.expires_at) == ({}, None, None)
    metadata = ChatParticipant.objects.filter(thread=thread).values_list("metadata", flat=True)
    assert list(metadata) == [{}, {}]
