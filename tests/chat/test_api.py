"""The ACS Chat API (`/r/<slug>/chat/...`, Bearer user tokens) through DRF's client: threads,
messages, participants, read receipts and typing, with ACS's rules and limits; bad input is
refused in the ACS error shape and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from apps.accounts.models import CommunicationIdentity
from apps.chat.models import ChatMessage, ChatParticipant, ChatThread
from tests.chat.conftest import (
    ChatUser,
    assert_acs_error,
    chat_state,
    ident,
    member,
    thread_path,
)

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., ChatUser]
MakeThread = Callable[..., str]
Send = Callable[..., str]


def rfc3339(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def messages_of(user: ChatUser, thread_id: str, **query: Any) -> list[dict[str, Any]]:
    response = user.call("GET", thread_path(thread_id, "/messages"), query=query)
    assert response.status_code == 200, response.content
    return list(response.json()["value"])


def all_pages(user: ChatUser, path: str, **query: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged list, following nextLink; and how many pages there were."""
    response = user.call("GET", path, query=query)
    items, pages = [], 0
    while True:
        assert response.status_code == 200, response.content
        pages += 1
        items += response.json()["value"]
        next_link = response.json().get("nextLink")
        if not next_link:
            return items, pages
        response = user.follow(next_link)


def participant_ids(user: ChatUser, thread_id: str) -> dict[str, str]:
    items, _ = all_pages(user, thread_path(thread_id, "/participants"))
    return {p["communicationIdentifier"]["rawId"]: p.get("displayName", "") for p in items}


# --- Threads ---------------------------------------------------------------------------------
def test_creating_a_thread_adds_the_creator_and_the_participants(
    alice: ChatUser, bob: ChatUser
) -> None:
    # when alice creates a thread naming only bob
    response = alice.call(
        "POST", "/threads", {"topic": "Launch", "participants": [member(bob, "Bob")]}
    )

    # then it is created by her, with both of them in it
    assert response.status_code == 201, response.content
    body = response.json()
    assert "invalidParticipants" not in body
    thread = body["chatThread"]
    assert thread["topic"] == "Launch" and thread["id"].startswith("19:")
    assert thread["id"].endswith("@thread.v2")
    assert thread["createdByCommunicationIdentifier"]["rawId"] == alice.raw_id
    assert thread["createdOn"].endswith("Z")
    assert participant_ids(alice, thread["id"]) == {alice.raw_id: "", bob.raw_id: "Bob"}
    # and bob reads the same thread
    got = bob.call("GET", thread_path(thread["id"]))
    assert got.status_code == 200 and got.json() == thread


def test_invalid_participants_are_reported_one_by_one_and_the_thread_is_created_without_them(
    alice: ChatUser, bob: ChatUser, chat_user: MakeUser, other_resource: Any
) -> None:
    # given an unknown identity of this resource, another resource's identity, a phone number
    unknown = f"8:acs:{alice.identity.resource_id}_00000000-0000-4000-8000-000000000000"
    foreign = chat_user(on=other_resource).raw_id
    phone = "4:+14255550123"
    participants = [member(bob), member(unknown), member(foreign), member(phone)]

    # when alice creates a thread with all of them
    response = alice.call("POST", "/threads", {"topic": "Mixed", "participants": participants})

    # then each bad one comes back with its raw id as target, and the others are in
    assert response.status_code == 201, response.content
    invalid = response.json()["invalidParticipants"]
    assert [e["target"] for e in invalid] == [unknown, foreign, phone]
    assert all(e["code"] and e["message"] for e in invalid)
    thread_id = response.json()["chatThread"]["id"]
    assert set(participant_ids(alice, thread_id)) == {alice.raw_id, bob.raw_id}


def test_a_repeated_repeatability_request_id_answers_with_the_first_thread(
    alice: ChatUser, bob: ChatUser
) -> None:
    # given a thread created with a repeatability-request-id
    headers = {"repeatability-request-id": "3f0c9a2e-1111-4222-8333-444455556666"}
    body = {"topic": "Once", "participants": [member(bob)]}
    first = alice.call("POST", "/threads", body, headers=headers)
    assert first.status_code == 201

    # when the SDK retries the same request
    again = alice.call("POST", "/threads", body, headers=headers)

    # then it gets the same thread, and there is still only one
    assert again.status_code == 201
    assert again.json()["chatThread"]["id"] == first.json()["chatThread"]["id"]
    assert ChatThread.objects.count() == 1 and ChatParticipant.objects.count() == 2
    # and a request with another id creates another thread
    other = alice.call("POST", "/threads", body, headers={"repeatability-request-id": "x-2"})
    assert other.json()["chatThread"]["id"] != first.json()["chatThread"]["id"]


def test_a_repeatability_request_id_is_the_callers_own(alice: ChatUser, bob: ChatUser) -> None:
    # given a thread alice created with a repeatability-request-id
    headers = {"repeatability-request-id": "shared-id"}
    mine = alice.call("POST", "/threads", {"topic": "Alice's"}, headers=headers)

    # when bob happens to send the same id
    theirs = bob.call("POST", "/threads", {"topic": "Bob's"}, headers=headers)

    # then bob gets a thread of his own, not a look at alice's
    assert theirs.status_code == 201
    assert theirs.json()["chatThread"]["id"] != mine.json()["chatThread"]["id"]
    assert theirs.json()["chatThread"]["topic"] == "Bob's"


@pytest.mark.parametrize(
    "body",
    [
        {"participants": []},
        {"topic": ""},
        {"topic": "   "},
        {"topic": None},
        {"topic": 7},
        {"topic": "x" * 257},
    ],
    ids=["missing", "empty", "blank", "null", "number", "257 chars"],
)
def test_a_thread_needs_a_topic_of_at_most_256_characters(
    alice: ChatUser, body: dict[str, Any]
) -> None:
    # when
    response = alice.call("POST", "/threads", body)

    # then
    error = assert_acs_error(response, 400, "InvalidRequest")
    assert error["target"] == "topic"
    assert ChatThread.objects.count() == 0


def test_a_repeatability_request_id_longer_than_100_characters_is_refused(
    alice: ChatUser,
) -> None:
    # when
    response = alice.call(
        "POST", "/threads", {"topic": "t"}, headers={"repeatability-request-id": "r" * 101}
    )

    # then
    error = assert_acs_error(response, 400, "InvalidRequest")
    assert error["target"] == "repeatability-request-id"
    assert ChatThread.objects.count() == 0


def test_a_topic_of_256_characters_is_accepted(alice: ChatUser) -> None:
    # when
    response = alice.call("POST", "/threads", {"topic": "x" * 256})

    # then
    assert response.status_code == 201
    assert response.json()["chatThread"]["topic"] == "x" * 256


def _identities(resource_id: Any, count: int) -> list[str]:
    made = CommunicationIdentity.objects.bulk_create(
        [CommunicationIdentity(resource_id=resource_id) for _ in range(count)]
    )
    return [i.raw_id for i in made]


def test_a_thread_holds_at_most_250_participants_with_a_clear_error(
    alice: ChatUser, make_thread: MakeThread
) -> None:
    # given a thread of alice and 200 others (the most one request may add)
    raw_ids = _identities(alice.identity.resource_id, 251)
    created = alice.call(
        "POST", "/threads", {"topic": "Big", "participants": [member(r) for r in raw_ids[:200]]}
    )
    assert created.status_code == 201, created.content
    thread_id = created.json()["chatThread"]["id"]
    add = thread_path(thread_id, "/participants/:add")

    # when 49 more join, it is full (250)
    filled = alice.call("POST", add, {"participants": [member(r) for r in raw_ids[200:249]]})
    assert filled.status_code == 201, filled.content
    assert ChatParticipant.objects.filter(thread_id=thread_id).count() == 250
    before = chat_state()

    # then one more is refused, saying why, and nobody is added
    refused = alice.call("POST", add, {"participants": [member(raw_ids[249])]})
    error = assert_acs_error(refused, 400, "TooManyParticipants")
    assert "250" in error["message"]
    assert chat_state() == before
    # and a single request may not name more than 200
    too_many = alice.call(
        "POST", "/threads", {"topic": "Bigger", "participants": [member(r) for r in raw_ids[:201]]}
    )
    assert "200" in assert_acs_error(too_many, 400, "TooManyParticipants")["message"]
    assert chat_state() == before


def test_list_threads_shows_only_the_callers_threads_most_recently_active_first(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: MakeUser,
    other_resource: Any,
    make_thread: MakeThread,
    send: Send,
) -> None:
    # given threads of alice, one of bob's without her, and another resource's
    carol = chat_user()
    first = make_thread(alice, bob, topic="First")
    second = make_thread(alice, topic="Second")
    make_thread(bob, carol, topic="Not hers")
    stranger = chat_user(on=other_resource)
    make_thread(stranger, topic="Elsewhere")

    # when a message arrives in the older one
    send(bob, first, "bump")

    # then alice lists hers, the active one first, with when its last message arrived
    response = alice.call("GET", "/threads")
    assert response.status_code == 200
    listed = response.json()["value"]
    assert [t["id"] for t in listed] == [first, second]
    assert listed[0]["topic"] == "First" and listed[0]["lastMessageReceivedOn"].endswith("Z")
    assert "lastMessageReceivedOn" not in listed[1] and "nextLink" not in response.json()


def test_list_threads_pages_with_max_page_size_and_an_absolute_next_link(
    alice: ChatUser, make_thread: MakeThread
) -> None:
    # given five threads
    created = [make_thread(alice, topic=f"T{n}") for n in range(5)]

    # when alice lists them two at a time
    first = alice.call("GET", "/threads", query={"maxPageSize": 2})
    items, pages = all_pages(alice, "/threads", maxPageSize=2)

    # then she gets every thread once, newest first, in three pages
    assert len(first.json()["value"]) == 2
    assert first.json()["nextLink"].startswith("http://testserver/r/")
    assert [t["id"] for t in items] == created[::-1]
    assert pages == 3


def test_list_threads_from_a_start_time(
    alice: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given one thread before a point in time and one after
    old = make_thread(alice, topic="Old")
    cut = timezone.now()
    new = make_thread(alice, topic="New")

    # then only the new one is listed from that time
    listed = alice.call("GET", "/threads", query={"startTime": rfc3339(cut)}).json()["value"]
    assert [t["id"] for t in listed] == [new]

    # when a message arrives in the old one, it is active again
    send(alice, old)
    listed = alice.call("GET", "/threads", query={"startTime": rfc3339(cut)}).json()["value"]
    assert [t["id"] for t in listed] == [old, new]


def test_updating_the_topic_is_seen_by_everyone_and_leaves_a_system_message(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given
    thread_id = make_thread(alice, bob, topic="Before")

    # when alice retitles it (the SDK sends a merge-patch)
    response = alice.call(
        "PATCH",
        thread_path(thread_id),
        {"topic": "After"},
        content_type="application/merge-patch+json",
    )

    # then
    assert response.status_code == 204 and response.content == b""
    assert bob.call("GET", thread_path(thread_id)).json()["topic"] == "After"
    system = messages_of(bob, thread_id)[0]
    assert system["type"] == "topicUpdated"
    assert system["content"]["topic"] == "After"
    assert system["content"]["initiatorCommunicationIdentifier"]["rawId"] == alice.raw_id


def test_a_patch_without_a_topic_changes_nothing(alice: ChatUser, make_thread: MakeThread) -> None:
    # given
    thread_id = make_thread(alice, topic="Same")
    before = chat_state()

    # when
    response = alice.call("PATCH", thread_path(thread_id), {})

    # then
    assert response.status_code == 204
    assert chat_state() == before


def test_a_deleted_thread_is_gone_for_everyone(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given a thread with a message
    thread_id = make_thread(alice, bob)
    message_id = send(bob, thread_id)

    # when alice deletes it
    response = alice.call("DELETE", thread_path(thread_id))

    # then it answers 404 to both, on every path
    assert response.status_code == 204
    for user in (alice, bob):
        for path in ("", "/messages", f"/messages/{message_id}", "/participants"):
            assert_acs_error(user.call("GET", thread_path(thread_id, path)), 404, "NotFound")
    assert_acs_error(
        bob.call("POST", thread_path(thread_id, "/messages"), {"content": "anyone?"}), 404
    )
    assert_acs_error(alice.call("DELETE", thread_path(thread_id)), 404, "NotFound")
    # and the thread list says when it was deleted
    listed = bob.call("GET", "/threads").json()["value"]
    assert listed[0]["id"] == thread_id and listed[0]["deletedOn"].endswith("Z")


# --- Messages --------------------------------------------------------------------------------
def test_send_text_and_html_messages_with_display_name_and_metadata(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given
    thread_id = make_thread(alice, bob)
    path = thread_path(thread_id, "/messages")

    # when alice sends a text and an html message
    text = alice.call(
        "POST",
        path,
        {"content": "Hello", "senderDisplayName": "Alice", "metadata": {"tag": "greeting"}},
    )
    html = alice.call("POST", path, {"content": "<b>Hi</b>", "type": "html"})

    # then both are created and bob reads them as sent
    assert text.status_code == 201 and html.status_code == 201
    got = bob.call("GET", thread_path(thread_id, f"/messages/{text.json()['id']}"))
    assert got.status_code == 200
    message = got.json()
    assert message["id"] == text.json()["id"]
    assert message["type"] == "text" and message["content"] == {"message": "Hello"}
    assert message["senderDisplayName"] == "Alice"
    assert message["metadata"] == {"tag": "greeting"}
    assert message["senderCommunicationIdentifier"]["rawId"] == alice.raw_id
    assert message["sequenceId"].isdigit() and message["version"].isdigit()
    assert message["createdOn"].endswith("Z") and "editedOn" not in message
    listed = messages_of(bob, thread_id)
    assert [(m["type"], m["content"]["message"]) for m in listed] == [
        ("html", "<b>Hi</b>"),
        ("text", "Hello"),
    ]
    assert listed[0]["metadata"] == {}


def test_a_message_without_a_display_name_takes_the_participants(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given bob joined as "Bob"
    thread_id = make_thread(alice, member(bob, "Bob"))

    # when he sends without a display name
    message_id = send(bob, thread_id, "hi")

    # then
    got = alice.call("GET", thread_path(thread_id, f"/messages/{message_id}")).json()
    assert got["senderDisplayName"] == "Bob"


def test_content_is_limited_to_28_kb_in_bytes(alice: ChatUser, make_thread: MakeThread) -> None:
    # given
    thread_id = make_thread(alice)
    path = thread_path(thread_id, "/messages")
    before = chat_state()

    # when the content is one byte over 28 KB (in UTF-8; fewer characters than that)
    over = alice.call("POST", path, {"content": "é" * (14 * 1024) + "a"})
    ascii_over = alice.call("POST", path, {"content": "a" * (28 * 1024 + 1)})

    # then it is refused as too large, and nothing is stored
    assert_acs_error(over, 413, "RequestEntityTooLarge")
    assert_acs_error(ascii_over, 413, "RequestEntityTooLarge")
    assert chat_state() == before
    # and exactly 28 KB is accepted
    assert alice.call("POST", path, {"content": "a" * (28 * 1024)}).status_code == 201


def test_messages_are_listed_newest_first_and_pages_do_not_shift_when_one_arrives(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given five messages
    thread_id = make_thread(alice, bob)
    sent = [send(alice, thread_id, f"m{n}") for n in range(1, 6)]

    # when bob reads the first page of two, a message arrives, and he reads on
    first = bob.call("GET", thread_path(thread_id, "/messages"), query={"maxPageSize": 2})
    late = send(alice, thread_id, "late")
    items = list(first.json()["value"])
    next_link = first.json()["nextLink"]
    while next_link:
        page = bob.follow(next_link).json()
        items += page["value"]
        next_link = page.get("nextLink")

    # then he got each earlier message once, newest first: no repeat, no hole
    assert [m["id"] for m in items] == sent[::-1]
    # and a fresh read starts with the late one
    assert [m["id"] for m in messages_of(bob, thread_id)] == [late, *sent[::-1]]


def test_list_messages_from_a_start_time(
    alice: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given
    thread_id = make_thread(alice)
    send(alice, thread_id, "early")
    cut = timezone.now()
    late = send(alice, thread_id, "late")

    # when / then
    assert [m["id"] for m in messages_of(alice, thread_id, startTime=rfc3339(cut))] == [late]
    assert len(messages_of(alice, thread_id, startTime=rfc3339(cut - timedelta(hours=1)))) == 2


def test_a_message_is_not_found_by_a_wrong_id_or_through_another_thread(
    alice: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given two threads, a message in the first
    first, second = make_thread(alice), make_thread(alice)
    message_id = send(alice, first)

    # then
    for thread_id, wanted in [
        (second, message_id),
        (first, "999999"),
        (first, "abc"),
        (first, "²"),
        (first, "99999999999999999999999999"),
    ]:
        response = alice.call("GET", thread_path(thread_id, f"/messages/{quote(wanted)}"))
        assert_acs_error(response, 404, "NotFound")


def test_only_the_sender_edits_a_message(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given alice's message with metadata
    thread_id = make_thread(alice, bob)
    message_id = send(alice, thread_id, "typo", metadata={"keep": "1", "drop": "2"})
    path = thread_path(thread_id, f"/messages/{message_id}")
    original = alice.call("GET", path).json()
    before = chat_state()

    # when bob tries to edit it
    refused = bob.call("PATCH", path, {"content": "hacked"})

    # then he may not, and nothing changes
    assert_acs_error(refused, 403, "Forbidden")
    assert chat_state() == before

    # when alice edits it (a merge-patch: a null metadata value removes the key)
    edited = alice.call(
        "PATCH",
        path,
        {"content": "fixed", "metadata": {"drop": None, "new": "3"}},
        content_type="application/merge-patch+json",
    )

    # then everyone reads the new content with editedOn and a newer version
    assert edited.status_code == 204
    got = bob.call("GET", path).json()
    assert got["content"]["message"] == "fixed"
    assert got["metadata"] == {"keep": "1", "new": "3"}
    assert got["editedOn"].endswith("Z")
    assert int(got["version"]) >= int(original["version"])
    assert got["createdOn"] == original["createdOn"]


def test_a_deleted_message_stays_listed_with_deleted_on_and_no_content(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given
    thread_id = make_thread(alice, bob)
    message_id = send(alice, thread_id, "secret")
    path = thread_path(thread_id, f"/messages/{message_id}")

    # when bob tries to delete it, then he may not
    assert_acs_error(bob.call("DELETE", path), 403, "Forbidden")
    assert "deletedOn" not in bob.call("GET", path).json()

    # when alice deletes it
    response = alice.call("DELETE", path)

    # then it is kept, marked deleted, without its content
    assert response.status_code == 204
    got = bob.call("GET", path).json()
    assert got["deletedOn"].endswith("Z") and "content" not in got
    listed = messages_of(bob, thread_id)
    assert [m["id"] for m in listed] == [message_id] and "content" not in listed[0]
    assert ChatMessage.objects.get(pk=message_id).deleted_at is not None
    # and it can be neither edited nor deleted again into something else
    assert_acs_error(alice.call("PATCH", path, {"content": "back"}), 400)
    assert alice.call("DELETE", path).status_code == 204


def test_system_messages_record_participants_added_removed_and_topic_changes(
    alice: ChatUser, bob: ChatUser, chat_user: MakeUser, make_thread: MakeThread
) -> None:
    # given
    carol = chat_user()
    thread_id = make_thread(alice, bob)

    # when carol is added, bob removed and the topic changed
    alice.call(
        "POST", thread_path(thread_id, "/participants/:add"), {"participants": [member(carol)]}
    )
    alice.call("POST", thread_path(thread_id, "/participants/:remove"), ident(bob.raw_id))
    alice.call("PATCH", thread_path(thread_id), {"topic": "Renamed"})

    # then the messages tell it, newest first, each naming alice as the initiator
    system = messages_of(carol, thread_id)
    assert [m["type"] for m in system] == ["topicUpdated", "participantRemoved", "participantAdded"]
    assert system[0]["content"]["topic"] == "Renamed"
    assert [
        p["communicationIdentifier"]["rawId"] for p in system[1]["content"]["participants"]
    ] == [bob.raw_id]
    assert [
        p["communicationIdentifier"]["rawId"] for p in system[2]["content"]["participants"]
    ] == [carol.raw_id]
    assert {m["content"]["initiatorCommunicationIdentifier"]["rawId"] for m in system} == {
        alice.raw_id
    }
    # and system messages cannot be edited or deleted
    first_system = thread_path(thread_id, f"/messages/{system[0]['id']}")
    for refused in (
        alice.call("PATCH", first_system, {"content": "x"}),
        alice.call("DELETE", first_system),
    ):
        assert refused.status_code in (400, 403)
        assert_acs_error(refused, refused.status_code)
    assert messages_of(alice, thread_id)[0]["content"]["topic"] == "Renamed"


# --- Participants ----------------------------------------------------------------------------
def test_share_history_time_hides_older_messages_from_the_added_participant(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given one message before a point in time and one after
    thread_id = make_thread(alice)
    old = send(alice, thread_id, "before you came")
    cut = timezone.now()
    recent = send(alice, thread_id, "recent")

    # when bob is added with history shared from that time
    added = alice.call(
        "POST",
        thread_path(thread_id, "/participants/:add"),
        {"participants": [member(bob, "Bob", shareHistoryTime=rfc3339(cut))]},
    )

    # then he sees the recent message and his own arrival, not the old message
    assert added.status_code == 201 and added.json() == {}
    seen = messages_of(bob, thread_id)
    assert [m["id"] for m in seen if m["type"] == "text"] == [recent]
    assert seen[0]["type"] == "participantAdded"
    assert_acs_error(bob.call("GET", thread_path(thread_id, f"/messages/{old}")), 404)
    # while alice still sees both
    assert {old, recent} <= {m["id"] for m in messages_of(alice, thread_id)}
    listed = alice.call("GET", thread_path(thread_id, "/participants")).json()["value"]
    assert next(p for p in listed if p["displayName"] == "Bob")["shareHistoryTime"] == rfc3339(cut)


def test_a_share_history_time_with_any_rfc_3339_offset_is_kept_in_utc(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given a thread
    thread_id = make_thread(alice)

    # when bob is added with a time at +16:00, which RFC 3339 allows and PostgreSQL does not
    # store (a server error there, found by tests/core/test_fuzz_acs.py)
    added = alice.call(
        "POST",
        thread_path(thread_id, "/participants/:add"),
        {"participants": [member(bob, "Bob", shareHistoryTime="2026-01-02T00:00:00+16:00")]},
    )

    # then it is the same instant, in UTC
    assert added.status_code == 201, added.content
    listed = alice.call("GET", thread_path(thread_id, "/participants")).json()["value"]
    bob_listed = next(p for p in listed if p["displayName"] == "Bob")
    assert bob_listed["shareHistoryTime"] == "2026-01-01T08:00:00Z"


def test_adding_a_participant_again_updates_its_display_name(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given bob in a thread as "Bob"
    thread_id = make_thread(alice, member(bob, "Bob"))
    messages_before = ChatMessage.objects.count()

    # when he is added again as "Robert"
    response = alice.call(
        "POST",
        thread_path(thread_id, "/participants/:add"),
        {"participants": [member(bob, "Robert")]},
    )

    # then he is in once, renamed, and no one was "added"
    assert response.status_code == 201
    assert participant_ids(alice, thread_id) == {alice.raw_id: "", bob.raw_id: "Robert"}
    assert ChatMessage.objects.count() == messages_before


def test_adding_reports_invalid_participants_by_raw_id(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given
    thread_id = make_thread(alice)
    unknown = f"8:acs:{alice.identity.resource_id}_00000000-0000-4000-8000-000000000001"

    # when
    response = alice.call(
        "POST",
        thread_path(thread_id, "/participants/:add"),
        {"participants": [member(bob), member(unknown)]},
    )

    # then
    assert response.status_code == 201
    assert [e["target"] for e in response.json()["invalidParticipants"]] == [unknown]
    assert set(participant_ids(alice, thread_id)) == {alice.raw_id, bob.raw_id}


def test_participants_are_listed_in_pages_with_skip(
    alice: ChatUser, chat_user: MakeUser, make_thread: MakeThread
) -> None:
    # given a thread of five
    others = [chat_user() for _ in range(4)]
    thread_id = make_thread(alice, *others)
    path = thread_path(thread_id, "/participants")

    # when listed two at a time
    first = alice.call("GET", path, query={"maxPageSize": 2}).json()
    items, pages = all_pages(alice, path, maxPageSize=2)
    skipped = alice.call("GET", path, query={"maxPageSize": 10, "skip": 3}).json()["value"]

    # then every participant comes once, in three pages, and skip skips
    assert "skip=2" in first["nextLink"] and "maxPageSize=2" in first["nextLink"]
    raw_ids = [p["communicationIdentifier"]["rawId"] for p in items]
    assert sorted(raw_ids) == sorted([alice.raw_id, *(o.raw_id for o in others)])
    assert pages == 3
    assert [p["communicationIdentifier"]["rawId"] for p in skipped] == raw_ids[3:]


def test_a_removed_participant_loses_access(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given
    thread_id = make_thread(alice, bob)

    # when alice removes bob
    response = alice.call(
        "POST", thread_path(thread_id, "/participants/:remove"), ident(bob.raw_id)
    )

    # then he is out and may no longer read or write
    assert response.status_code == 204 and response.content == b""
    assert set(participant_ids(alice, thread_id)) == {alice.raw_id}
    assert_acs_error(bob.call("GET", thread_path(thread_id)), 403, "Forbidden")
    assert_acs_error(
        bob.call("POST", thread_path(thread_id, "/messages"), {"content": "hello?"}), 403
    )
    # and removing him again succeeds and changes nothing (as on ACS)
    before = chat_state()
    again = alice.call("POST", thread_path(thread_id, "/participants/:remove"), ident(bob.raw_id))
    assert again.status_code == 204 and again.content == b""
    assert chat_state() == before


def test_chat_join_limited_may_leave_but_not_remove_others(
    alice: ChatUser, bob: ChatUser, chat_user: MakeUser, make_thread: MakeThread
) -> None:
    # given carol, with a chat.join.limited token, in a thread with alice and bob
    carol = chat_user(["chat.join.limited"])
    thread_id = make_thread(alice, bob, carol)
    remove = thread_path(thread_id, "/participants/:remove")
    before = chat_state()

    # when carol removes bob, then she may not
    assert_acs_error(carol.call("POST", remove, ident(bob.raw_id)), 403, "Forbidden")
    assert chat_state() == before

    # when carol removes herself (naming herself only by communicationUser, as old SDKs do)
    left = carol.call("POST", remove, {"communicationUser": {"id": carol.raw_id}})

    # then she has left
    assert left.status_code == 204
    assert set(participant_ids(alice, thread_id)) == {alice.raw_id, bob.raw_id}


# --- Read receipts and typing ----------------------------------------------------------------
def test_read_receipts_only_move_forward_and_are_listed(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread, send: Send
) -> None:
    # given three messages
    thread_id = make_thread(alice, bob)
    first, second, third = (send(alice, thread_id, f"m{n}") for n in range(3))
    path = thread_path(thread_id, "/readReceipts")

    def bobs_receipt() -> str:
        listed = alice.call("GET", path).json()["value"]
        assert [r["senderCommunicationIdentifier"]["rawId"] for r in listed] == [bob.raw_id]
        assert listed[0]["readOn"].endswith("Z")
        return str(listed[0]["chatMessageId"])

    # when bob reads the second
    response = bob.call("POST", path, {"chatMessageId": second})

    # then it is recorded (200, empty body)
    assert response.status_code == 200 and response.content == b""
    assert bobs_receipt() == second

    # when he sends a receipt for the first, then nothing moves back
    assert bob.call("POST", path, {"chatMessageId": first}).status_code == 200
    assert bobs_receipt() == second

    # when he reads the third, it moves forward
    bob.call("POST", path, {"chatMessageId": third})
    assert bobs_receipt() == third


def test_typing_answers_200_with_an_empty_body_and_stores_nothing(
    alice: ChatUser, bob: ChatUser, make_thread: MakeThread
) -> None:
    # given
    thread_id = make_thread(alice, bob)
    before = chat_state()

    # when
    response = bob.call("POST", thread_path(thread_id, "/typing"), {"senderDisplayName": "Bob"})
    empty = bob.call("POST", thread_path(thread_id, "/typing"))

    # then
    assert response.status_code == 200 and response.content == b""
    assert empty.status_code == 200
    assert chat_state() == before


@pytest.mark.parametrize("skip", ["1000", str(10**20)])
@pytest.mark.parametrize("listing", ["/threads", "/participants", "/readReceipts"])
def test_skipping_past_the_end_is_an_empty_page_not_a_server_error(
    alice: ChatUser, make_thread: MakeThread, listing: str, skip: str
) -> None:
    # given
    thread_id = make_thread(alice)
    path = listing if listing == "/threads" else thread_path(thread_id, listing)

    # when
    response = alice.call("GET", path, query={"skip": skip})

    # then an empty page, or (for a number no database takes) a 400 naming skip
    if response.status_code == 200:
        assert response.json() == {"value": []}
    else:
        assert assert_acs_error(response, 400, "InvalidRequest")["target"] == "skip"


# --- Bad input changes nothing ---------------------------------------------------------------
THREAD, MESSAGE = "{thread}", "{message}"
BAD_INPUT: list[tuple[str, str, str, Any, dict[str, Any], int, str, str | None]] = [
    # (id, method, path, body, query, status, code, target)
    ("create: body is a list", "POST", "/threads", [], {}, 400, "InvalidRequestBody", None),
    ("create: participants not a list", "POST", "/threads", {"topic": "t", "participants": {}}, {}, 400, "InvalidRequest", "participants"),
    ("create: participant not an object", "POST", "/threads", {"topic": "t", "participants": ["x"]}, {}, 400, "InvalidRequest", "participants[0]"),
    ("create: participant without identifier", "POST", "/threads", {"topic": "t", "participants": [{"displayName": "x"}]}, {}, 400, "InvalidRequest", "participants[0].communicationIdentifier"),
    ("create: display name too long", "POST", "/threads", {"topic": "t", "participants": [{"communicationIdentifier": {"rawId": "{bob}"}, "displayName": "x" * 257}]}, {}, 400, "InvalidRequest", "participants[0].displayName"),
    ("create: share history time not a time", "POST", "/threads", {"topic": "t", "participants": [{"communicationIdentifier": {"rawId": "{bob}"}, "shareHistoryTime": "yesterday"}]}, {}, 400, "InvalidRequest", "participants[0].shareHistoryTime"),
    ("create: topic with a lone surrogate", "POST", "/threads", {"topic": "a\ud800b"}, {}, 400, "InvalidRequest", "topic"),
    ("create: topic with a NUL", "POST", "/threads", {"topic": "a\x00b"}, {}, 400, "InvalidRequest", "topic"),
    ("create: participant id with a lone surrogate", "POST", "/threads", {"topic": "t", "participants": [{"communicationIdentifier": {"rawId": "8:acs:\udc00"}}]}, {}, 400, "InvalidRequest", "participants[0].communicationIdentifier"),
    ("create: display name with a lone surrogate", "POST", "/threads", {"topic": "t", "participants": [{"communicationIdentifier": {"rawId": "{bob}"}, "displayName": "\udfff"}]}, {}, 400, "InvalidRequest", "participants[0].displayName"),
    ("create: share history time impossible date", "POST", "/threads", {"topic": "t", "participants": [{"communicationIdentifier": {"rawId": "{bob}"}, "shareHistoryTime": "2024-02-30T10:00:00Z"}]}, {}, 400, "InvalidRequest", "participants[0].shareHistoryTime"),
    ("list threads: maxPageSize 0", "GET", "/threads", None, {"maxPageSize": "0"}, 400, "InvalidRequest", "maxPageSize"),
    ("list threads: maxPageSize not a number", "GET", "/threads", None, {"maxPageSize": "ten"}, 400, "InvalidRequest", "maxPageSize"),
    ("list threads: bad startTime", "GET", "/threads", None, {"startTime": "soon"}, 400, "InvalidRequest", "startTime"),
    ("list threads: impossible startTime", "GET", "/threads", None, {"startTime": "2024-13-45T00:00:00Z"}, 400, "InvalidRequest", "startTime"),
    ("list threads: startTime before year 1 in UTC", "GET", "/threads", None, {"startTime": "0001-01-01T00:30:00+01:00"}, 400, "InvalidRequest", "startTime"),
    ("list messages: startTime after year 9999 in UTC", "GET", f"/threads/{THREAD}/messages", None, {"startTime": "9999-12-31T23:30:00-01:00"}, 400, "InvalidRequest", "startTime"),
    ("list participants: negative skip", "GET", f"/threads/{THREAD}/participants", None, {"skip": "-1"}, 400, "InvalidRequest", "skip"),
    ("list messages: bad before", "GET", f"/threads/{THREAD}/messages", None, {"before": "x"}, 400, "InvalidRequest", "before"),
    ("list messages: bad startTime", "GET", f"/threads/{THREAD}/messages", None, {"startTime": "x"}, 400, "InvalidRequest", "startTime"),
    ("retitle: empty", "PATCH", f"/threads/{THREAD}", {"topic": ""}, {}, 400, "InvalidRequest", "topic"),
    ("retitle: too long", "PATCH", f"/threads/{THREAD}", {"topic": "x" * 257}, {}, 400, "InvalidRequest", "topic"),
    ("retitle: lone surrogate", "PATCH", f"/threads/{THREAD}", {"topic": "\ud83d"}, {}, 400, "InvalidRequest", "topic"),
    ("retitle: not a string", "PATCH", f"/threads/{THREAD}", {"topic": ["a"]}, {}, 400, "InvalidRequest", "topic"),
    ("send: no content", "POST", f"/threads/{THREAD}/messages", {"type": "text"}, {}, 400, "InvalidRequest", "content"),
    ("send: empty content", "POST", f"/threads/{THREAD}/messages", {"content": ""}, {}, 400, "InvalidRequest", "content"),
    ("send: blank content", "POST", f"/threads/{THREAD}/messages", {"content": " \n "}, {}, 400, "InvalidRequest", "content"),
    ("send: content not a string", "POST", f"/threads/{THREAD}/messages", {"content": {"message": "x"}}, {}, 400, "InvalidRequest", "content"),
    ("send: content with a lone surrogate", "POST", f"/threads/{THREAD}/messages", {"content": "hi \ud83d"}, {}, 400, "InvalidRequest", "content"),
    ("send: content with a NUL", "POST", f"/threads/{THREAD}/messages", {"content": "hi \x00"}, {}, 400, "InvalidRequest", "content"),
    ("send: display name with a lone surrogate", "POST", f"/threads/{THREAD}/messages", {"content": "x", "senderDisplayName": "\ud800"}, {}, 400, "InvalidRequest", "senderDisplayName"),
    ("send: metadata with a lone surrogate", "POST", f"/threads/{THREAD}/messages", {"content": "x", "metadata": {"\ud800": "v"}}, {}, 400, "InvalidRequest", "metadata"),
    ("send: content too large", "POST", f"/threads/{THREAD}/messages", {"content": "a" * 30000}, {}, 413, "RequestEntityTooLarge", "content"),
    ("send: body over 1 MB", "POST", f"/threads/{THREAD}/messages", {"content": "a" * (1024 * 1024)}, {}, 413, "RequestEntityTooLarge", None),
    ("send: unknown type", "POST", f"/threads/{THREAD}/messages", {"content": "x", "type": "video"}, {}, 400, "InvalidRequest", "type"),
    ("send: system type", "POST", f"/threads/{THREAD}/messages", {"content": "x", "type": "topicUpdated"}, {}, 400, "InvalidRequest", "type"),
    ("send: display name too long", "POST", f"/threads/{THREAD}/messages", {"content": "x", "senderDisplayName": "x" * 257}, {}, 400, "InvalidRequest", "senderDisplayName"),
    ("send: metadata not an object", "POST", f"/threads/{THREAD}/messages", {"content": "x", "metadata": ["a"]}, {}, 400, "InvalidRequest", "metadata"),
    ("send: metadata value not a string", "POST", f"/threads/{THREAD}/messages", {"content": "x", "metadata": {"a": 1}}, {}, 400, "InvalidRequest", "metadata"),
    ("send: 33 metadata entries", "POST", f"/threads/{THREAD}/messages", {"content": "x", "metadata": {f"k{n}": "v" for n in range(33)}}, {}, 400, "InvalidRequest", "metadata"),
    ("send: metadata over 8 KB", "POST", f"/threads/{THREAD}/messages", {"content": "x", "metadata": {"k": "v" * 8200}}, {}, 400, "InvalidRequest", "metadata"),
    ("edit: empty content", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"content": ""}, {}, 400, "InvalidRequest", "content"),
    ("edit: metadata not an object", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"metadata": "x"}, {}, 400, "InvalidRequest", "metadata"),
    ("edit: metadata value not a string", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"metadata": {"a": 2}}, {}, 400, "InvalidRequest", "metadata"),
    ("edit: content with a lone surrogate", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"content": "\udc00"}, {}, 400, "InvalidRequest", "content"),
    ("edit: metadata with a lone surrogate", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"metadata": {"a": "\udc00"}}, {}, 400, "InvalidRequest", "metadata"),
    ("edit: content too large", "PATCH", f"/threads/{THREAD}/messages/{MESSAGE}", {"content": "a" * 30000}, {}, 413, "RequestEntityTooLarge", "content"),
    ("edit: unknown message", "PATCH", f"/threads/{THREAD}/messages/424242", {"content": "x"}, {}, 404, "NotFound", None),
    ("delete: unknown message", "DELETE", f"/threads/{THREAD}/messages/424242", None, {}, 404, "NotFound", None),
    ("add: no participants", "POST", f"/threads/{THREAD}/participants/:add", {}, {}, 400, "InvalidRequest", "participants"),
    ("add: empty list", "POST", f"/threads/{THREAD}/participants/:add", {"participants": []}, {}, 400, "InvalidRequest", "participants"),
    ("add: 201 at once", "POST", f"/threads/{THREAD}/participants/:add", {"participants": [{"communicationIdentifier": {"rawId": "{bob}"}}] * 201}, {}, 400, "TooManyParticipants", "participants"),
    ("remove: not an identifier", "POST", f"/threads/{THREAD}/participants/:remove", {"name": "bob"}, {}, 400, "InvalidRequest", "rawId"),
    ("remove: lone surrogate", "POST", f"/threads/{THREAD}/participants/:remove", {"rawId": "8:acs:\ud800"}, {}, 400, "InvalidRequest", "rawId"),
    ("receipt: no message id", "POST", f"/threads/{THREAD}/readReceipts", {}, {}, 400, "InvalidRequest", "chatMessageId"),
    ("receipt: message id not a string", "POST", f"/threads/{THREAD}/readReceipts", {"chatMessageId": 5}, {}, 400, "InvalidRequest", "chatMessageId"),
    ("receipt: unknown message", "POST", f"/threads/{THREAD}/readReceipts", {"chatMessageId": "424242"}, {}, 404, "NotFound", None),
    ("receipt: non-ASCII digit id", "POST", f"/threads/{THREAD}/readReceipts", {"chatMessageId": "²"}, {}, 404, "NotFound", None),
    ("typing: display name with a lone surrogate", "POST", f"/threads/{THREAD}/typing", {"senderDisplayName": "\ud800"}, {}, 400, "InvalidRequest", "senderDisplayName"),
    ("typing: display name too long", "POST", f"/threads/{THREAD}/typing", {"senderDisplayName": "x" * 257}, {}, 400, "InvalidRequest", "senderDisplayName"),
    ("unknown thread", "POST", "/threads/19:nope@thread.v2/messages", {"content": "x"}, {}, 404, "NotFound", None),
    ("thread id with a NUL", "GET", "/threads/19:%00@thread.v2/messages", None, {}, 404, "NotFound", None),
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


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "code", "target"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_refused_in_the_acs_shape_and_changes_nothing(
    alice: ChatUser,
    bob: ChatUser,
    chat_user: MakeUser,
    make_thread: MakeThread,
    send: Send,
    method: str,
    path: str,
    body: Any,
    query: dict[str, Any],
    status: int,
    code: str,
    target: str | None,
) -> None:
    # given a thread of alice and bob with a message of alice's
    carol = chat_user()
    thread_id = make_thread(alice, bob)
    message_id = send(alice, thread_id, "original", metadata={"a": "b"})
    names = {"bob": bob.raw_id, "carol": carol.raw_id}
    path = path.replace(THREAD, quote(thread_id, safe="")).replace(MESSAGE, message_id)
    before = chat_state()

    # when
    response = alice.call(method, path, _fill(body, names), query=query)

    # then
    error = assert_acs_error(response, status, code)
    if target is not None:
        assert error.get("target") == target, error
    assert chat_state() == before


@pytest.mark.parametrize(
    ("raw_body", "content_type", "code"),
    [
        (b"{not json", "application/json", "InvalidJson"),
        (b"null", "application/json", "InvalidRequestBody"),
        (b'"text"', "application/json", "InvalidRequestBody"),
        (b"content=x", "application/x-www-form-urlencoded", "UnsupportedMediaType"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    alice: ChatUser, make_thread: MakeThread, raw_body: bytes, content_type: str, code: str
) -> None:
    # given
    thread_id = make_thread(alice)
    before = chat_state()

    # when
    response = alice.call(
        "POST",
        thread_path(thread_id, "/messages"),
        raw_body=raw_body,
        content_type=content_type,
    )

    # then
    assert_acs_error(response, 415 if code == "UnsupportedMediaType" else 400, code)
    assert chat_state() == before


@pytest.mark.parametrize(
    ("api_version", "code"),
    [(None, "MissingApiVersionParameter"), ("2020-01-01", "UnsupportedApiVersion")],
)
def test_the_api_version_is_required_and_checked(
    alice: ChatUser, make_thread: MakeThread, api_version: str | None, code: str
) -> None:
    # given
    thread_id = make_thread(alice)
    before = chat_state()

    # when
    response = alice.call(
        "POST", thread_path(thread_id, "/messages"), {"content": "x"}, api_version=api_version
    )

    # then
    assert_acs_error(response, 400, code)
    assert chat_state() == before


@pytest.mark.parametrize(
    "api_version", ["2021-03-07", "2021-09-07", "2023-11-07", "2024-03-07", "2025-03-15"]
)
def test_every_sdk_api_version_is_served(
    alice: ChatUser, make_thread: MakeThread, api_version: str
) -> None:
    # given
    thread_id = make_thread(alice)

    # when
    response = alice.call("GET", thread_path(thread_id), api_version=api_version)

    # then
    assert response.status_code == 200 and response.json()["id"] == thread_id
