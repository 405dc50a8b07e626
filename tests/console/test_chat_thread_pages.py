"""The console's chat thread page through Django's test client: a thread's facts, participants
and messages, read-only for every member role, escaped, paged, in a fixed number of queries,
and not found for anything but one of the resource's own threads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource, Role
from apps.chat import services as chat
from apps.chat.models import ChatMessage, ChatThread, MessageType

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def principal_of(resource: Resource) -> accounts.TokenPrincipal:
    _, token = accounts.create_identity(resource, scopes=["chat"])
    assert token is not None
    return accounts.authenticate_token(token.token)


def joining(*principals: accounts.TokenPrincipal, name: str = "") -> list[dict[str, Any]]:
    return [
        {"communicationIdentifier": {"rawId": p.raw_id}, "displayName": name} for p in principals
    ]


def thread_url(resource: Resource, thread_id: str) -> str:
    return f"/resources/{resource.slug}/chat/threads/{thread_id}/"


def many_messages(thread: ChatThread, sender: accounts.TokenPrincipal, count: int) -> None:
    """`count` text messages written straight to the table: a long thread, quickly."""
    start = timezone.now()
    ChatMessage.objects.bulk_create(
        ChatMessage(
            thread=thread,
            sequence_id=1000 + n,
            type=MessageType.TEXT,
            content=f"message {n}",
            sender_raw_id=sender.raw_id,
            sender_display_name=f"Sender {n % 7}",
            created_at=start + timedelta(milliseconds=n),
        )
        for n in range(count)
    )


def test_a_thread_opens_with_its_participants_and_messages(owner: Any, resource: Resource) -> None:
    # given a thread of two with a topic change, messages (one edited) and metadata
    alice, bob = principal_of(resource), principal_of(resource)
    thread, _ = chat.create_thread(
        alice,
        {
            "topic": "Launch plan",
            "participants": [
                {"communicationIdentifier": {"rawId": alice.raw_id}, "displayName": "Alice"},
                {"communicationIdentifier": {"rawId": bob.raw_id}, "displayName": "Bob"},
            ],
            "metadata": {"project": "apollo"},
            "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
        },
    )
    chat.send_message(alice, thread.pk, {"content": "hello", "metadata": {"ticket": "T-42"}})
    reply = chat.send_message(bob, thread.pk, {"content": "hi there"})
    chat.edit_message(bob, thread.pk, str(reply.pk), {"content": "hi there, Alice"})
    chat.update_thread(alice, thread.pk, {"topic": "Launch plan v2"})

    # when the owner opens it from the thread list
    listing = signed_in(owner).get(f"/resources/{resource.slug}/chat/")
    page = signed_in(owner).get(thread_url(resource, thread.pk))

    # then the list links to it, and it shows its facts, participants and messages
    assert f'href="{thread_url(resource, thread.pk)}"'.encode() in listing.content
    assert page.status_code == 200
    html = page.content.decode()
    assert "Launch plan v2" in html and thread.pk in html and alice.raw_id in html
    assert "Deleted 30 days after creation" in html and "apollo" in html
    participants = page.context["participants"]
    assert [(row.participant.display_name, row.raw_id) for row in participants] == [
        ("Alice", alice.raw_id),
        ("Bob", bob.raw_id),
    ]
    rows = page.context["rows"]
    kinds = [row.message.type for row in rows]
    assert kinds == ["topicUpdated", "text", "text"]  # newest first (creation is no message)
    topic, edited, first = rows
    assert "Changed the topic to “Launch plan v2”" in html
    assert topic.sender.name == "Alice" and topic.sender.raw_id == alice.raw_id
    assert edited.content == "hi there, Alice" and edited.sender.name == "Bob"
    assert f">{edited.sender.short}</code>" in html and "edited</span>" in html
    assert first.metadata == [("ticket", "T-42")] and "T-42" in html
    assert "<form" not in html.split('id="thread"')[1]  # read-only: no forms below the menu


def test_participants_added_and_removed_are_shown(owner: Any, resource: Resource) -> None:
    # given a thread that gains and loses a participant
    alice, carol = principal_of(resource), principal_of(resource)
    thread, _ = chat.create_thread(alice, {"topic": "Comings and goings"})
    chat.add_participants(alice, thread.pk, {"participants": joining(carol, name="Carol")})
    chat.remove_participant(alice, thread.pk, {"rawId": carol.raw_id})

    # when
    page = signed_in(owner).get(thread_url(resource, thread.pk))

    # then both system messages name Carol; she is no longer a participant
    removed, added = page.context["rows"]
    assert (added.message.type, removed.message.type) == ("participantAdded", "participantRemoved")
    assert [(p.name, p.raw_id) for p in added.people] == [("Carol", carol.raw_id)]
    assert [p.raw_id for p in removed.people] == [carol.raw_id]
    assert [row.raw_id for row in page.context["participants"]] == [alice.raw_id]
    assert b"Added <span" in page.content and b"Removed <span" in page.content


def test_markup_in_a_thread_is_shown_as_text_never_run(owner: Any, resource: Resource) -> None:
    # given an attacker's topic, display name, html message and metadata
    script = "<script>alert(1)</script>"
    image = '<img src=x onerror="alert(2)">'
    mallory = principal_of(resource)
    thread, _ = chat.create_thread(
        mallory,
        {
            "topic": f"Topic {script}",
            "participants": joining(mallory, name=f"Mallory {image}"),
            "metadata": {"key": script},
        },
    )
    chat.send_message(mallory, thread.pk, {"type": "html", "content": f"<p>Hi</p>{script}{image}"})
    chat.send_message(
        mallory,
        thread.pk,
        {"content": "plain", "senderDisplayName": image, "metadata": {"items": image}},
    )

    # when the owner opens the thread
    page = signed_in(owner).get(thread_url(resource, thread.pk))

    # then every piece shows escaped, and none is markup
    html = page.content.decode()
    assert page.status_code == 200
    assert script not in html and image not in html and "<p>Hi</p>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    assert "&lt;p&gt;Hi&lt;/p&gt;" in html
    # a metadata key named "items" is shown as a key, not taken for the dict's method
    assert "<dt>items</dt>" in html


def test_a_deleted_message_shows_as_deleted_without_its_content(
    owner: Any, resource: Resource
) -> None:
    # given a thread with a message its sender deleted
    alice = principal_of(resource)
    thread, _ = chat.create_thread(alice, {"topic": "Oops"})
    kept = chat.send_message(alice, thread.pk, {"content": "still here"})
    gone = chat.send_message(alice, thread.pk, {"content": "my password is hunter2"})
    chat.delete_message(alice, thread.pk, str(gone.pk))

    # when
    page = signed_in(owner).get(thread_url(resource, thread.pk))

    # then it is listed as deleted, and its content is nowhere on the page
    html = page.content.decode()
    deleted, shown = page.context["rows"]
    assert (deleted.message.pk, shown.message.pk) == (gone.pk, kept.pk)
    assert deleted.content == "" and "hunter2" not in html and "still here" in html
    assert f'id="message-{gone.pk}"' in html and "deleted</span>" in html


def test_a_deleted_thread_still_opens_and_says_so(owner: Any, resource: Resource) -> None:
    # given
    alice = principal_of(resource)
    thread, _ = chat.create_thread(alice, {"topic": "Gone thread"})
    chat.delete_thread(alice, thread.pk)

    # when
    page = signed_in(owner).get(thread_url(resource, thread.pk))

    # then
    assert page.status_code == 200
    assert b"Gone thread" in page.content and b'<span class="state failed">Deleted</span>' in (
        page.content
    )


def test_messages_page_newest_first(owner: Any, resource: Resource) -> None:
    # given a thread of 60 messages
    alice = principal_of(resource)
    thread, _ = chat.create_thread(alice, {"topic": "Busy"})
    many_messages(thread, alice, 60)
    client = signed_in(owner)

    # when
    first = client.get(thread_url(resource, thread.pk))
    last = client.get(thread_url(resource, thread.pk) + "?page=3")
    beyond = client.get(thread_url(resource, thread.pk) + "?page=999")

    # then pages of 25, newest first, and a page past the end shows the last one
    assert [row.content for row in first.context["rows"]][:2] == ["message 59", "message 58"]
    assert b"Page 1 of 3 \xc2\xb7 60 in all" in first.content
    assert [row.content for row in last.context["rows"]] == [
        f"message {n}" for n in range(9, -1, -1)
    ]
    assert beyond.context["page"].number == 3


def test_a_page_takes_the_same_queries_however_many_messages_and_senders(
    owner: Any, resource: Resource
) -> None:
    # given a small thread, and one of 30 participants and 2,000 messages
    alice = principal_of(resource)
    small, _ = chat.create_thread(alice, {"topic": "Small"})
    chat.send_message(alice, small.pk, {"content": "one"})
    others = [principal_of(resource) for _ in range(29)]
    big, _ = chat.create_thread(alice, {"topic": "Big", "participants": joining(*others)})
    many_messages(big, alice, 2000)
    client = signed_in(owner)
    client.get(thread_url(resource, small.pk))  # the session and the like, loaded once

    # when each is opened
    with CaptureQueriesContext(connection) as small_queries:
        client.get(thread_url(resource, small.pk))
    with CaptureQueriesContext(connection) as big_queries:
        page = client.get(thread_url(resource, big.pk) + "?page=40")

    # then a page costs the same few queries, however long the thread: four of them chat's
    # (the thread, its participants, the count of its messages, and one page of them), the
    # rest the session, the resource and the member's role that every resource page reads
    assert len(page.context["rows"]) == 25 and len(page.context["participants"]) == 30
    sql = [query["sql"] for query in big_queries]
    assert len(sql) == len(small_queries) <= 15, "\n".join(sql)
    assert len([text for text in sql if '"chat_' in text]) == 4, "\n".join(sql)


@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_member_role_reads_a_thread(resource: Resource, make_user: Any, role: str) -> None:
    # given a member of any role
    user = make_user(f"{role}-member")
    accounts.add_member(resource, user.username, role)
    thread, _ = chat.create_thread(principal_of(resource), {"topic": "For everyone"})

    # when
    page = signed_in(user).get(thread_url(resource, thread.pk))

    # then
    assert page.status_code == 200 and b"For everyone" in page.content


def test_strangers_do_not_find_a_thread(resource: Resource, make_user: Any) -> None:
    # given a thread, and someone who is no member of its resource
    thread, _ = chat.create_thread(principal_of(resource), {"topic": "Members only"})

    # when
    page = signed_in(make_user("stranger")).get(thread_url(resource, thread.pk))

    # then
    assert page.status_code == 404 and b"Members only" not in page.content


def test_another_resource_s_thread_is_not_found(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a thread of another resource
    theirs, _ = chat.create_thread(principal_of(other_resource), {"topic": "Fabrikam secrets"})

    # when the owner of this resource asks for it under their own resource
    page = signed_in(owner).get(thread_url(resource, theirs.pk))

    # then the console's not-found page answers
    assert page.status_code == 404
    assert b"Fabrikam secrets" not in page.content
    assert [t.name for t in page.templates][0] == "console/not_found.html"


@pytest.mark.parametrize(
    "thread_id",
    [
        "19:0000000000000000000000000000000@thread.v2",
        "not-a-thread",
        "%ED%A0%80",  # escapes that are not UTF-8
        "%00",  # a NUL
        "%3Cscript%3E",
        "x" * 500,
    ],
)
def test_a_malformed_thread_id_is_not_found(owner: Any, resource: Resource, thread_id: str) -> None:
    page = signed_in(owner).get(thread_url(resource, thread_id))
    assert page.status_code == 404
    assert b"<script>" not in page.content


def test_the_thread_list_searches_topics(owner: Any, resource: Resource) -> None:
    # given threads of several topics
    alice = principal_of(resource)
    for topic in ("Launch plan", "launch retro", "Hiring"):
        chat.create_thread(alice, {"topic": topic})
    client = signed_in(owner)

    # when
    found = client.get(f"/resources/{resource.slug}/chat/?q=LAUNCH")
    none = client.get(f"/resources/{resource.slug}/chat/?q=nothing+like+it")
    too_long = client.get(f"/resources/{resource.slug}/chat/?q={'a' * 300}")

    # then the search is by part of the topic, in any case
    topics = sorted(thread.topic for thread in found.context["page"].object_list)
    assert topics == ["Launch plan", "launch retro"]
    assert b'value="LAUNCH"' in found.content
    assert (
        not none.context["page"].object_list and "No thread's topic holds" in none.content.decode()
    )
    assert too_long.status_code == 200 and not too_long.context["page"].object_list


def test_the_thread_search_keeps_its_query_across_pages(owner: Any, resource: Resource) -> None:
    # given more matching threads than a page holds
    alice = principal_of(resource)
    for n in range(30):
        chat.create_thread(alice, {"topic": f"Standup {n}"})
    chat.create_thread(alice, {"topic": "Other"})

    # when
    first = signed_in(owner).get(f"/resources/{resource.slug}/chat/?q=standup")

    # then the pager's links keep the search
    assert b'href="?q=standup&amp;page=2"' in first.content
    assert first.context["page"].paginator.count == 30
