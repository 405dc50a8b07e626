"""The official azure-communication-chat SDK against a live `manage.py serve` over TLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    CommunicationTokenCredential,
    CommunicationUserIdentifier,
)
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


class VerifiedChatClient(ChatClient):
    """ChatClient whose thread clients trust Spool's self-signed certificate too (the SDK
    passes only get_chat_thread_client's own keyword arguments on)."""

    def __init__(self, endpoint: str, credential, *, cert: str) -> None:
        super().__init__(endpoint, credential, connection_verify=cert)
        self.cert = cert

    def get_chat_thread_client(self, thread_id: str, **kwargs):
        return super().get_chat_thread_client(thread_id, connection_verify=self.cert, **kwargs)


@pytest.fixture(scope="module")
def connection_string(live_spool: LiveSpool) -> str:
    return live_spool.create_resource()


@pytest.fixture(scope="module")
def identities(live_spool: LiveSpool, connection_string: str) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        connection_string, connection_verify=live_spool.cert
    )


@pytest.fixture
def make_user(live_spool: LiveSpool, connection_string: str, identities):
    endpoint = connection_string.split(";")[0].removeprefix("endpoint=")

    def make(scope: str = CommunicationTokenScope.CHAT):
        user, token = identities.create_user_and_token([scope])
        client = VerifiedChatClient(
            endpoint, CommunicationTokenCredential(token.token), cert=live_spool.cert
        )
        return user, client

    return make


def test_thread_life_cycle_with_the_official_sdk(make_user) -> None:
    # given two users, one of whom creates a thread with the other
    alice, alice_chat = make_user()
    bob, bob_chat = make_user()
    result = alice_chat.create_chat_thread(
        "Launch", thread_participants=[ChatParticipant(identifier=bob, display_name="Bob")]
    )
    assert not result.errors
    thread = result.chat_thread
    assert thread.topic == "Launch" and thread.created_by.raw_id == alice.raw_id
    alice_thread = alice_chat.get_chat_thread_client(thread.id)
    bob_thread = bob_chat.get_chat_thread_client(thread.id)

    # when both send messages and bob edits one and deletes another
    first = alice_thread.send_message("Hello Bob", sender_display_name="Alice")
    second_id = bob_thread.send_message(
        "<b>Hi</b>", chat_message_type=ChatMessageType.HTML, metadata={"k": "v"}
    ).id
    third_id = bob_thread.send_message("typo").id
    bob_thread.update_message(second_id, content="<b>Hi Alice</b>")
    bob_thread.delete_message(third_id)

    # then both see the same history, newest first, with the edit and the deletion
    messages = [m for m in alice_thread.list_messages() if m.type in ("text", "html")]
    assert [m.id for m in messages] == [third_id, second_id, first.id]
    assert messages[0].deleted_on is not None and messages[0].content is None
    assert messages[1].content.message == "<b>Hi Alice</b>" and messages[1].edited_on
    assert messages[1].metadata == {"k": "v"}
    assert messages[2].sender_display_name == "Alice"
    assert bob_thread.get_message(first.id).content.message == "Hello Bob"

    # and the topic changes, seen by both, with a system message
    alice_thread.update_topic("Launch day")
    assert bob_thread.get_properties().topic == "Launch day"
    topics = [m for m in bob_thread.list_messages() if m.type == ChatMessageType.TOPIC_UPDATED]
    assert topics and topics[0].content.topic == "Launch day"

    # and read receipts are kept and listed
    bob_thread.send_read_receipt(first.id)
    receipts = list(alice_thread.list_read_receipts())
    assert [(r.sender.raw_id, r.chat_message_id) for r in receipts] == [(bob.raw_id, first.id)]

    # and typing notifications are accepted
    bob_thread.send_typing_notification(sender_display_name="Bob")

    # and both list the thread
    assert thread.id in {t.id for t in bob_chat.list_chat_threads()}

    # and when alice deletes it, it is gone for bob
    alice_chat.delete_chat_thread(thread.id)
    with pytest.raises(ResourceNotFoundError):
        bob_thread.get_properties()


def test_participants_and_a_stranger(make_user, identities) -> None:
    # given a thread of alice's
    alice, alice_chat = make_user()
    bob, bob_chat = make_user()
    carol, carol_chat = make_user()
    thread_id = alice_chat.create_chat_thread("Team").chat_thread.id
    alice_thread = alice_chat.get_chat_thread_client(thread_id)
    alice_thread.send_message("before bob")

    # when bob is added with history shared from now on, and a made-up identity too
    ghost = CommunicationUserIdentifier(alice.raw_id.rsplit("_", 1)[0] + "_" + "0" * 32)
    errors = alice_thread.add_participants(
        [
            ChatParticipant(
                identifier=bob,
                display_name="Bob",
                share_history_time=datetime.now(UTC) + timedelta(seconds=1),
            ),
            ChatParticipant(identifier=ghost),
        ]
    )

    # then only the made-up one fails
    assert [(p.identifier.raw_id, bool(e.message)) for p, e in errors] == [(ghost.raw_id, True)]
    names = {p.identifier.raw_id: p.display_name for p in alice_thread.list_participants()}
    assert names == {alice.raw_id: "", bob.raw_id: "Bob"}

    # and bob does not see what was said before his history time
    bob_thread = bob_chat.get_chat_thread_client(thread_id)
    assert all(m.type != "text" for m in bob_thread.list_messages())

    # and carol, not a participant, is refused
    carol_thread = carol_chat.get_chat_thread_client(thread_id)
    with pytest.raises(HttpResponseError) as refused:
        carol_thread.send_message("let me in")
    assert refused.value.status_code == 403

    # and when bob leaves, he can no longer read the thread
    bob_thread.remove_participant(bob)
    with pytest.raises(HttpResponseError) as gone:
        list(bob_thread.list_messages())
    assert gone.value.status_code == 403
    assert {p.identifier.raw_id for p in alice_thread.list_participants()} == {alice.raw_id}


def test_messages_page_newest_first(make_user) -> None:
    # given 25 messages
    _, chat = make_user()
    thread = chat.get_chat_thread_client(chat.create_chat_thread("Busy").chat_thread.id)
    sent = [thread.send_message(f"m{i}").id for i in range(25)]

    # when listed in pages of 10
    listed = [m.id for m in thread.list_messages(results_per_page=10) if m.type == "text"]

    # then every message comes once, newest first
    assert listed == list(reversed(sent))


def test_create_thread_is_idempotent_by_repeatability_id(make_user) -> None:
    _, chat = make_user()
    first = chat.create_chat_thread("Once", idempotency_token="fixed-token-1")
    again = chat.create_chat_thread("Once", idempotency_token="fixed-token-1")
    assert first.chat_thread.id == again.chat_thread.id
    assert [t.id for t in chat.list_chat_threads()].count(first.chat_thread.id) == 1


def test_a_token_without_chat_scope_is_refused(make_user) -> None:
    _, voip_chat = make_user(CommunicationTokenScope.VOIP)
    with pytest.raises(HttpResponseError) as refused:
        voip_chat.create_chat_thread("No")
    assert refused.value.status_code == 403


def test_a_webhook_gets_the_chat_events(
    live_spool: LiveSpool, connection_string, make_user
) -> None:
    import time

    from tests.events.conftest import Receiver

    slug = live_spool.slug_of(connection_string)
    receiver = Receiver()
    receiver.start()
    try:
        # given a webhook subscribed to the resource's chat message and thread events
        types = [
            "Microsoft.Communication.ChatThreadCreatedWithUser",
            "Microsoft.Communication.ChatMessageReceived",
            "Microsoft.Communication.ChatMessageReceivedInThread",
        ]
        script = (
            "from apps.accounts.models import Resource; from apps.events import services; "
            f"s = services.create_subscription(Resource.objects.get(slug='{slug}'), "
            f"name='chat-hook', endpoint_url='{receiver.url}', event_types={types!r}); "
            "services.validate_subscription(s.pk)"
        )
        live_spool.manage("shell", "-c", script)

        # when alice opens a thread with bob and writes to him
        alice, alice_chat = make_user()
        bob, _ = make_user()
        thread_id = alice_chat.create_chat_thread(
            "Hooks", thread_participants=[ChatParticipant(identifier=bob)]
        ).chat_thread.id
        alice_chat.get_chat_thread_client(thread_id).send_message(
            "Hook me", sender_display_name="A"
        )

        # then the webhook gets the thread for each of them, the message in the thread, and
        # the message for bob (not for alice, who sent it)
        def events() -> list[dict]:
            return [n.json[0] for n in receiver.notifications if n.body]

        deadline = time.monotonic() + 30
        while len(events()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        got = events()
        created = [e for e in got if e["eventType"].endswith("ChatThreadCreatedWithUser")]
        assert {e["data"]["recipientCommunicationIdentifier"]["rawId"] for e in created} == {
            alice.raw_id,
            bob.raw_id,
        }
        [in_thread] = [e for e in got if e["eventType"].endswith("ChatMessageReceivedInThread")]
        assert in_thread["data"]["messageBody"] == "Hook me"
        assert in_thread["data"]["threadId"] == thread_id
        [for_bob] = [e for e in got if e["eventType"].endswith("ChatMessageReceived")]
        assert for_bob["data"]["recipientCommunicationIdentifier"]["rawId"] == bob.raw_id
        assert for_bob["data"]["senderCommunicationIdentifier"]["rawId"] == alice.raw_id
    finally:
        receiver.stop()
