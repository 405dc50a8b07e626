"""Chat on the identity socket (/ws/): every participant's socket gets the ACS JavaScript
client's events, nobody else's does, and a socket that was away catches up with `chat.resume`
from the activity log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from apps.accounts import services as accounts
from apps.chat import retention, services
from apps.chat.models import ChatMessage
from apps.chat.notifications import epoch_ms, rfc3339
from spool.asgi import application
from tests.chat.conftest import ChatUser, member

pytestmark = pytest.mark.django_db(transaction=True)

TYPING = "typingIndicatorReceived"


@pytest.fixture(autouse=True)
async def close_thread_connections() -> AsyncIterator[None]:
    # The consumer's thread keeps its connection open; close it so the test DB can be dropped.
    yield
    await database_sync_to_async(connections.close_all)()


def run(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """A service call from an async test (the ORM runs in a thread)."""
    return database_sync_to_async(func)(*args, **kwargs)


def who(user: ChatUser) -> dict[str, str]:
    """An identity as the signaling events name it (CommunicationIdentifierKind)."""
    return {"kind": "communicationUser", "communicationUserId": user.raw_id}


class Socket:
    def __init__(self, communicator: WebsocketCommunicator, hello: dict[str, Any]) -> None:
        self.communicator = communicator
        self.hello = hello

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        frame = await self.communicator.receive_json_from(timeout=timeout)
        assert isinstance(frame, dict)
        return frame

    async def expect(self, event: str, thread_id: str) -> dict[str, Any]:
        frame = await self.next()
        assert frame["type"] == "chat" and frame["event"] == event, frame
        assert frame["threadId"] == thread_id and frame["data"]["threadId"] == thread_id, frame
        return frame

    async def nothing(self, timeout: float = 0.3) -> None:
        assert await self.communicator.receive_nothing(timeout=timeout)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_json_to(frame)

    async def resume(self, threads: dict[str, int], since: str | None) -> list[dict[str, Any]]:
        """Send chat.resume; every frame up to and including chat.resumed."""
        await self.send({"type": "chat.resume", "threads": threads, "since": since})
        frames = [await self.next()]
        while frames[-1]["type"] == "chat":
            frames.append(await self.next())
        return frames

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[ChatUser], Awaitable[Socket]]]:
    """`await connect(user)`: an open socket past its hello frame; all closed at the end."""
    opened: list[Socket] = []

    async def open_socket(user: ChatUser) -> Socket:
        communicator = WebsocketCommunicator(application, f"/ws/?access_token={user.token}")
        connected, _ = await communicator.connect()
        assert connected
        hello = await communicator.receive_json_from(timeout=5)
        assert hello["type"] == "hello" and hello["identity"] == user.raw_id, hello
        socket = Socket(communicator, hello)
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        try:
            await socket.close()
        except Exception:  # already closed by the server
            pass


@pytest.fixture
def users(chat_user: Callable[..., ChatUser]) -> Callable[..., Awaitable[list[ChatUser]]]:
    async def make(count: int, scopes: tuple[str, ...] = ("chat",)) -> list[ChatUser]:
        return [await run(chat_user, scopes) for _ in range(count)]

    return make


async def thread_of(creator: ChatUser, *others: ChatUser, topic: str = "Launch") -> str:
    body = {"topic": topic, "participants": [member(o, o.raw_id[-4:]) for o in others]}
    thread, _ = await run(services.create_thread, creator.principal, body)
    return str(thread.pk)


async def say(user: ChatUser, thread_id: str, content: str = "Hello", **fields: Any) -> ChatMessage:
    body = {"content": content, **fields}
    message: ChatMessage = await run(services.send_message, user.principal, thread_id, body)
    return message


# --- Live events -----------------------------------------------------------------------------
async def test_a_message_reaches_every_participant_with_the_acs_event_fields(users, connect):
    # given alice and bob in a thread, each with a socket
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    sockets = {alice.raw_id: await connect(alice), bob.raw_id: await connect(bob)}

    # when alice sends a message
    message = await say(
        alice, thread_id, "Hello Bob", senderDisplayName="Alice", metadata={"k": "v"}
    )

    # then both sockets get chatMessageReceived, each naming itself as the recipient
    for user in (alice, bob):
        frame = await sockets[user.raw_id].expect("chatMessageReceived", thread_id)
        assert frame["sequence"] == message.sequence_id and frame["time"].endswith("Z")
        assert frame["data"] == {
            "threadId": thread_id,
            "sender": who(alice),
            "senderDisplayName": "Alice",
            "recipient": who(user),
            "id": str(message.pk),
            "createdOn": rfc3339(message.created_at),
            "version": epoch_ms(message.created_at),
            "type": "Text",
            "message": "Hello Bob",
            "metadata": {"k": "v"},
        }


async def test_edits_and_deletions_reach_participants(users, connect):
    # given
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    message = await say(alice, thread_id, "typo", type="html")
    socket = await connect(bob)

    # when alice edits the message, then deletes it
    body = {"content": "<p>fixed</p>"}
    await run(services.edit_message, alice.principal, thread_id, str(message.pk), body)
    edited = await socket.expect("chatMessageEdited", thread_id)
    await run(services.delete_message, alice.principal, thread_id, str(message.pk))
    deleted = await socket.expect("chatMessageDeleted", thread_id)

    # then bob is told of each, in order, with the ACS fields
    assert deleted["sequence"] == edited["sequence"] + 1
    data = edited["data"]
    assert data["id"] == str(message.pk) and data["type"] == "RichText/Html"
    assert data["message"] == "<p>fixed</p>" and data["editedOn"].endswith("Z")
    assert data["recipient"] == who(bob) and data["sender"] == who(alice)
    assert int(data["version"]) >= int(epoch_ms(message.created_at))
    data = deleted["data"]
    assert data["id"] == str(message.pk) and data["deletedOn"].endswith("Z")
    assert "message" not in data and data["recipient"] == who(bob)


async def test_typing_and_read_receipts_reach_participants(users, connect):
    # given
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    message = await say(alice, thread_id)
    socket = await connect(alice)

    # when bob types, then reads the message
    await run(services.send_typing, bob.principal, thread_id, {"senderDisplayName": "Bobby"})
    typing = await socket.expect(TYPING, thread_id)
    body = {"chatMessageId": str(message.pk)}
    await run(services.send_read_receipt, bob.principal, thread_id, body)
    receipt = await socket.expect("readReceiptReceived", thread_id)

    # then alice sees both; typing is not numbered (it is not kept)
    assert "sequence" not in typing
    assert typing["data"]["sender"] == who(bob) and typing["data"]["recipient"] == who(alice)
    assert typing["data"]["senderDisplayName"] == "Bobby"
    assert typing["data"]["receivedOn"].endswith("Z") and typing["data"]["version"].isdigit()
    assert receipt["sequence"] == message.sequence_id + 1
    assert receipt["data"]["sender"] == who(bob) and receipt["data"]["recipient"] == who(alice)
    assert receipt["data"]["chatMessageId"] == str(message.pk)
    assert receipt["data"]["readOn"].endswith("Z")


async def test_thread_creation_retitling_and_deletion_reach_participants(users, connect):
    # given bob's socket, before any thread exists
    alice, bob = await users(2)
    socket = await connect(bob)

    # when alice creates a thread with him, retitles it and deletes it
    thread_id = await thread_of(alice, bob, topic="Before")
    created = await socket.expect("chatThreadCreated", thread_id)
    await run(services.update_thread, alice.principal, thread_id, {"topic": "After"})
    updated = await socket.expect("chatThreadPropertiesUpdated", thread_id)
    await run(services.delete_thread, alice.principal, thread_id)
    deleted = await socket.expect("chatThreadDeleted", thread_id)

    # then he is told of each, numbered in order
    assert [created["sequence"], updated["sequence"], deleted["sequence"]] == [1, 2, 3]
    data = created["data"]
    assert data["properties"] == {"topic": "Before", "metadata": {}}
    assert data["createdBy"]["id"] == who(alice)
    assert {p["id"]["communicationUserId"] for p in data["participants"]} == {
        alice.raw_id,
        bob.raw_id,
    }
    assert "recipient" not in data
    assert updated["data"]["properties"]["topic"] == "After"
    assert updated["data"]["updatedBy"]["id"] == who(alice)
    assert deleted["data"]["deletedBy"]["id"] == who(alice)
    assert deleted["data"]["deletedOn"].endswith("Z")


async def test_thread_events_carry_metadata_and_the_retention_policy(users, connect):
    # given bob's socket
    alice, bob = await users(2)
    socket = await connect(bob)

    # when alice creates a thread with metadata and a policy, bob with his own metadata
    body = {
        "topic": "Tagged",
        "metadata": {"project": "apollo"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
        "participants": [member(bob, "Bob", metadata={"role": "lead"})],
    }
    thread, _ = await run(services.create_thread, alice.principal, body)
    created = await socket.expect("chatThreadCreated", thread.pk)
    # and then removes the policy and adds a key
    patch = {"retentionPolicy": {"kind": "none"}, "metadata": {"stage": "2"}}
    await run(services.update_thread, alice.principal, thread.pk, patch)
    updated = await socket.expect("chatThreadPropertiesUpdated", thread.pk)

    # then the frames carry them, as the JS client reads them
    data = created["data"]
    assert data["properties"] == {"topic": "Tagged", "metadata": {"project": "apollo"}}
    assert data["retentionPolicy"] == {"kind": "threadCreationDate", "deleteThreadAfterDays": 30}
    by_id = {p["id"]["communicationUserId"]: p for p in data["participants"]}
    assert by_id[bob.raw_id]["metadata"] == {"role": "lead"}
    assert by_id[alice.raw_id]["metadata"] == {} and data["createdBy"]["metadata"] == {}
    assert updated["data"]["properties"]["metadata"] == {"project": "apollo", "stage": "2"}
    assert updated["data"]["retentionPolicy"] == {"kind": "none"}


async def test_a_thread_deleted_by_its_policy_reaches_participants(users, connect):
    # given a 1-day thread of alice and bob, and bob's socket
    alice, bob = await users(2)
    body = {
        "topic": "Short-lived",
        "participants": [member(bob)],
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 1},
    }
    thread, _ = await run(services.create_thread, alice.principal, body)
    socket = await connect(bob)

    # when retention runs two days later
    later = timezone.now() + timedelta(days=2)
    assert await run(retention.apply_retention, now=later) == 1

    # then bob hears it was deleted by the policy, by nobody
    deleted = await socket.expect("chatThreadDeleted", thread.pk)
    assert deleted["sequence"] == 2
    assert deleted["data"]["deletedBy"] is None
    assert deleted["data"]["reason"] == "deletedByPolicy"
    assert deleted["data"]["deletedOn"].endswith("Z")


async def test_participants_added_reaches_the_added_one_too(users, connect):
    # given a thread of alice and bob, and carol's socket
    alice, bob, carol = await users(3)
    thread_id = await thread_of(alice, bob)
    bobs, carols = await connect(bob), await connect(carol)

    # when alice adds carol
    body = {"participants": [member(carol, "Carol")]}
    await run(services.add_participants, alice.principal, thread_id, body)

    # then both bob and carol are told who was added, by whom
    for socket in (bobs, carols):
        frame = await socket.expect("participantsAdded", thread_id)
        assert [p["id"] for p in frame["data"]["participantsAdded"]] == [who(carol)]
        assert frame["data"]["participantsAdded"][0]["displayName"] == "Carol"
        assert frame["data"]["addedBy"]["id"] == who(alice)
    # and carol gets the thread's messages from now on
    await say(alice, thread_id, "welcome")
    assert (await carols.expect("chatMessageReceived", thread_id))["data"]["message"] == "welcome"


async def test_a_removed_participant_is_told_and_then_hears_nothing_of_the_thread(users, connect):
    # given bob in two threads with alice
    alice, bob = await users(2)
    thread_id, other = await thread_of(alice, bob), await thread_of(alice, bob)
    socket = await connect(bob)

    # when alice removes him from the first, then writes there, then in the other one
    await run(services.remove_participant, alice.principal, thread_id, {"rawId": bob.raw_id})
    removed = await socket.expect("participantsRemoved", thread_id)
    await say(alice, thread_id, "behind your back")
    await run(services.send_typing, alice.principal, thread_id, {})
    await say(alice, other, "still here")

    # then he was told of his removal, and the next frame he gets is from the other thread
    assert [p["id"] for p in removed["data"]["participantsRemoved"]] == [who(bob)]
    assert removed["data"]["removedBy"]["id"] == who(alice)
    frame = await socket.expect("chatMessageReceived", other)
    assert frame["data"]["message"] == "still here"


async def test_a_non_participant_receives_nothing(users, connect):
    # given a thread of alice and bob, and eve's socket (eve shares another thread with alice)
    alice, bob, eve = await users(3)
    thread_id, evens = await thread_of(alice, bob), await thread_of(alice, eve)
    socket = await connect(eve)

    # when everything happens in the thread she is not in, then something in hers
    message = await say(alice, thread_id, "private")
    await run(services.send_typing, bob.principal, thread_id, {})
    await run(
        services.send_read_receipt, bob.principal, thread_id, {"chatMessageId": str(message.pk)}
    )
    await run(services.update_thread, alice.principal, thread_id, {"topic": "Secret"})
    await say(alice, evens, "hi eve")

    # then the first frame she gets is from her own thread
    frame = await socket.expect("chatMessageReceived", evens)
    assert frame["data"]["message"] == "hi eve"


async def test_a_socket_without_a_chat_scope_receives_no_chat_frames(users, connect, chat_user):
    # given bob in a thread, with a chat socket and a voip-only one
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    chat_socket = await connect(bob)
    voip_socket = await connect(await run(chat_user, ["voip"], identity=bob.identity))

    # when alice sends a message
    await say(alice, thread_id, "chat only")

    # then the chat socket gets it and the voip one does not, yet stays open
    await chat_socket.expect("chatMessageReceived", thread_id)
    await voip_socket.nothing()
    await voip_socket.send({"type": "ping"})
    assert (await voip_socket.next())["type"] == "pong"


async def test_a_revoked_token_closes_the_socket_with_4001(users, connect):
    # given
    (bob,) = await users(1)
    socket = await connect(bob)

    # when
    await run(accounts.revoke_tokens, bob.identity)

    # then
    frame = await socket.next()
    assert frame["type"] == "error" and frame["code"] == "InvalidToken"
    assert (await socket.communicator.receive_output(timeout=5))["code"] == 4001


# --- Catching up -----------------------------------------------------------------------------
async def test_resume_replays_exactly_the_missed_frames(users, connect):
    # given bob's socket has seen the thread up to a message, and a second socket of his
    # stays connected throughout, recording what he was sent live
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    away = await connect(bob)
    live = await connect(bob)
    first = await say(alice, thread_id, "one")
    seen = await away.expect("chatMessageReceived", thread_id)
    await live.expect("chatMessageReceived", thread_id)
    await away.close()

    # when, while the first socket is away, the thread changes in every way
    second = await say(alice, thread_id, "two", metadata={"a": "b"})
    await run(services.edit_message, alice.principal, thread_id, str(first.pk), {"content": "1"})
    await run(services.send_typing, alice.principal, thread_id, {})
    body = {"chatMessageId": str(second.pk)}
    await run(services.send_read_receipt, alice.principal, thread_id, body)
    await run(services.update_thread, alice.principal, thread_id, {"topic": "New"})
    await run(services.delete_message, alice.principal, thread_id, str(second.pk))
    missed = [await live.next() for _ in range(6)]

    # and bob reconnects and resumes from what he saw
    back = await connect(bob)
    frames = await back.resume({thread_id: seen["sequence"]}, away.hello["serverTime"])

    # then he gets exactly the frames he missed (typing is not kept), marked as replays
    expected = [{**f, "replay": True} for f in missed if f["event"] != TYPING]
    assert [f["event"] for f in expected] == [
        "chatMessageReceived",
        "chatMessageEdited",
        "readReceiptReceived",
        "chatThreadPropertiesUpdated",
        "chatMessageDeleted",
    ]
    assert frames[:-1] == expected
    assert frames[-1] == {"type": "chat.resumed", "count": 5, "complete": True}
    # and a resume from the latest sequence has nothing more
    latest = expected[-1]["sequence"]
    assert await back.resume({thread_id: latest}, None) == [
        {"type": "chat.resumed", "count": 0, "complete": True}
    ]


async def test_resume_replays_a_thread_joined_while_away(users, connect):
    # given bob's socket knows one thread, and a second socket of his records live frames
    alice, bob, carol = await users(3)
    known = await thread_of(alice, bob)
    away = await connect(bob)
    live = await connect(bob)
    await away.close()

    # when, while away, a thread is created without him, talked in, then he is added
    joined = await thread_of(alice, carol)
    await say(alice, joined, "before bob")
    await run(services.add_participants, alice.principal, joined, {"participants": [member(bob)]})
    await say(alice, joined, "after bob")
    missed = [await live.next() for _ in range(2)]

    # and he resumes naming only the thread he knew (seen up to its creation)
    back = await connect(bob)
    frames = await back.resume({known: 1}, away.hello["serverTime"])

    # then he gets the new thread from his arrival on, and nothing from before it
    assert [(f["event"], f["threadId"]) for f in missed] == [
        ("participantsAdded", joined),
        ("chatMessageReceived", joined),
    ]
    assert frames[:-1] == [{**f, "replay": True} for f in missed]
    assert frames[-1]["count"] == 2 and frames[-1]["complete"] is True


async def test_a_removed_participants_resume_gets_its_removal_and_nothing_after(users, connect):
    # given bob's socket has seen the thread up to a message
    alice, bob = await users(2)
    thread_id = await thread_of(alice, bob)
    away = await connect(bob)
    await say(alice, thread_id)
    seen = await away.expect("chatMessageReceived", thread_id)
    await away.close()

    # when, while he is away, he is removed and the others talk on
    await run(services.remove_participant, alice.principal, thread_id, {"rawId": bob.raw_id})
    await say(alice, thread_id, "he's gone")
    await run(services.update_thread, alice.principal, thread_id, {"topic": "Without bob"})

    # and he resumes
    back = await connect(bob)
    frames = await back.resume({thread_id: seen["sequence"]}, away.hello["serverTime"])

    # then he learns he was removed, and nothing more
    assert [(f["event"], f.get("replay")) for f in frames[:-1]] == [("participantsRemoved", True)]
    assert frames[0]["data"]["participantsRemoved"][0]["id"] == who(bob)
    assert frames[-1] == {"type": "chat.resumed", "count": 1, "complete": True}


async def test_a_resume_naming_someone_elses_thread_replays_nothing(
    users, connect, chat_user, other_resource
):
    # given a busy thread of alice and bob, and eve of this resource and mallory of another
    alice, bob, eve = await users(3)
    mallory = await run(chat_user, ["chat"], on=other_resource)
    thread_id = await thread_of(alice, bob)
    await say(alice, thread_id, "private")

    # when each resumes naming that thread from its start
    for intruder in (eve, mallory):
        socket = await connect(intruder)
        frames = await socket.resume({thread_id: 0}, None)

        # then nothing of it is replayed
        assert frames == [{"type": "chat.resumed", "count": 0, "complete": True}]


@pytest.mark.parametrize(
    "frame",
    [
        {"threads": ["19:x@thread.v2"]},
        {"threads": {"19:x@thread.v2": -1}},
        {"threads": {"19:x@thread.v2": True}},
        {"threads": {"19:x@thread.v2": "5"}},
        {"threads": {}, "since": "yesterday"},
        {"threads": {}, "since": 5},
        {"threads": {}, "since": "2024-13-45T00:00:00Z"},
    ],
    ids=[
        "threads a list",
        "negative sequence",
        "boolean sequence",
        "string sequence",
        "since not a time",
        "since a number",
        "since an impossible date",
    ],
)
async def test_a_bad_resume_gets_an_error_frame_and_the_socket_stays_open(users, connect, frame):
    # given
    (bob,) = await users(1)
    socket = await connect(bob)

    # when
    await socket.send({"type": "chat.resume", **frame})

    # then
    error = await socket.next()
    assert error["type"] == "error" and error["code"] == "InvalidRequest", error
    assert error["message"]
    await socket.send({"type": "ping"})
    assert (await socket.next())["type"] == "pong"


async def test_a_resume_without_a_chat_scope_is_forbidden(users, connect, chat_user):
    # given a voip-only socket
    (bob,) = await users(1)
    socket = await connect(await run(chat_user, ["voip"], identity=bob.identity))

    # when
    await socket.send({"type": "chat.resume", "threads": {}, "since": None})

    # then
    error = await socket.next()
    assert error["type"] == "error" and error["code"] == "Forbidden"
    await socket.send({"type": "ping"})
    assert (await socket.next())["type"] == "pong"
