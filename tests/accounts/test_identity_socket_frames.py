"""Malformed frames on the identity socket (/ws/): each gets an error frame and the socket goes
on; whatever fails, a socket that ends runs its close hooks (a call's other leg hears it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from apps.accounts import consumers, services
from spool.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 33 + "]" * 33
VERY_DEEP = "[" * 100_000 + "]" * 100_000

# (id, text frame, error code, target)
BAD_TEXT_FRAMES: list[tuple[str, str, str, str | None]] = [
    ("empty", "", "InvalidJson", None),
    ("not JSON", "{not json", "InvalidJson", None),
    ("truncated", '{"type": "ping"', "InvalidJson", None),
    ("NaN", '{"type": "ping", "n": NaN}', "InvalidJson", None),
    ("a list", '[{"type": "ping"}]', "InvalidFrame", None),
    ("null", "null", "InvalidFrame", None),
    ("a string", '"ping"', "InvalidFrame", None),
    ("a number", "5", "InvalidFrame", None),
    ("33 levels deep", '{"type": "ping", "x": ' + DEEP + "}", "InvalidJson", None),
    ("100,000 levels deep", VERY_DEEP, "InvalidJson", None),
    ("a 5,000-digit integer", '{"type": "ping", "n": ' + "9" * 5000 + "}", "InvalidRequest", "n"),
    ("a 20-digit integer", '{"type": "ping", "n": 99999999999999999999}', "InvalidRequest", "n"),
    ("1e400", '{"type": "ping", "n": 1e400}', "InvalidRequest", "n"),
    ("a lone surrogate in the type", '{"type": "ping\\ud800"}', "InvalidRequest", "type"),
    ("a lone surrogate in a value", '{"type": "call.invite", "to": "8:acs:\\udc00"}', "InvalidRequest", "to"),
    ("a lone surrogate in a key", '{"type": "ping", "\\ud83d": 1}', "InvalidRequest", None),
    ("a NUL in a value", '{"type": "call.signal", "callId": "x\\u0000"}', "InvalidRequest", "callId"),
    ("a control character in a key", '{"type": "chat.resume", "threads": {"19:a\\u0007": 1}}', "InvalidRequest", "threads"),
    ("a lone surrogate deep inside", '{"type": "call.signal", "data": {"sdp": ["v=0", "\\udfff"]}}', "InvalidRequest", "data.sdp[1]"),
]  # fmt: skip


@pytest.fixture(autouse=True)
async def close_thread_connections() -> AsyncIterator[None]:
    yield
    await database_sync_to_async(connections.close_all)()


async def _open(resource: Any, scopes: list[str]) -> tuple[WebsocketCommunicator, str]:
    _, token = await database_sync_to_async(services.create_identity)(resource, scopes=scopes)
    communicator = WebsocketCommunicator(application, f"/ws/?access_token={token.token}")
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return communicator, str(hello["identity"])


async def _send_text(communicator: WebsocketCommunicator, text: str) -> None:
    # (The communicator's send_to refuses an empty frame; a client can send one.)
    await communicator.send_input({"type": "websocket.receive", "text": text})


async def _send_bytes(communicator: WebsocketCommunicator, data: bytes) -> None:
    await communicator.send_input({"type": "websocket.receive", "bytes": data})


async def _still_answers(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}


def _watching(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The consumers whose token watch starts from now on."""
    watching: list[Any] = []
    start = consumers.IdentityConsumer._watch_token

    def spy(consumer: Any, *args: Any) -> None:
        start(consumer, *args)
        watching.append(consumer)

    monkeypatch.setattr(consumers.IdentityConsumer, "_watch_token", spy)
    return watching


def _stopped(watch: Any) -> bool:
    """A watch (its timer, or its re-check under way) that will not run again."""
    return watch.cancelled() if isinstance(watch, asyncio.TimerHandle) else watch.done()


@pytest.mark.parametrize(
    ("text", "code", "target"),
    [case[1:] for case in BAD_TEXT_FRAMES],
    ids=[case[0] for case in BAD_TEXT_FRAMES],
)
async def test_a_bad_text_frame_gets_an_error_frame_and_the_socket_goes_on(
    resource: Any, text: str, code: str, target: str | None
) -> None:
    # given
    communicator, _ = await _open(resource, ["chat", "voip"])

    # when
    await _send_text(communicator, text)

    # then
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error.get("target") == target, error
    await _still_answers(communicator)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "data", [b"", b"\x00\x01", b'{"type": "ping"}'], ids=["empty", "bytes", "JSON"]
)
async def test_a_binary_frame_gets_an_error_frame_and_the_socket_goes_on(
    resource: Any, data: bytes
) -> None:
    # given
    communicator, _ = await _open(resource, ["chat"])

    # when
    await _send_bytes(communicator, data)

    # then
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == "InvalidFrame", error
    await _still_answers(communicator)
    await communicator.disconnect()


async def test_a_frame_over_the_body_limit_is_refused_unread(resource: Any, settings: Any) -> None:
    # given
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    communicator, _ = await _open(resource, ["chat"])

    # when
    await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 1024}))

    # then
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == "RequestEntityTooLarge", error
    await _still_answers(communicator)
    await communicator.disconnect()


async def _connected_call(resource: Any) -> tuple[WebsocketCommunicator, WebsocketCommunicator]:
    """A 1:1 call, answered: (caller, callee) with nothing left to read."""
    caller, _ = await _open(resource, ["voip"])
    callee, callee_id = await _open(resource, ["voip"])
    await caller.send_json_to({"type": "call.invite", "to": callee_id})
    incoming = await callee.receive_json_from(timeout=5)
    assert incoming.get("event") == "incomingCall", incoming
    for _ in range(2):  # call.invited and Ringing
        await caller.receive_json_from(timeout=5)
    await callee.send_json_to({"type": "call.accept", "callId": incoming["callId"]})
    for communicator in (caller, callee):
        for _ in range(5):
            frame = await communicator.receive_json_from(timeout=5)
            if frame.get("state") == "Connected":
                break
        else:
            raise AssertionError("the call did not connect")
    assert await caller.receive_nothing(timeout=0.2) and await callee.receive_nothing(timeout=0.2)
    return caller, callee


async def test_a_storm_of_bad_frames_leaves_a_call_up_and_its_hang_up_heard(resource: Any) -> None:
    # given a call between two sockets
    caller, callee = await _connected_call(resource)

    # when the callee's socket sends every kind of bad frame
    for _, text, _, _ in BAD_TEXT_FRAMES:
        await _send_text(callee, text)
        assert (await callee.receive_json_from(timeout=5))["type"] == "error"
    await _send_bytes(callee, b"\xff")
    assert (await callee.receive_json_from(timeout=5))["type"] == "error"

    # then the caller heard nothing of it, the callee's socket still answers
    assert await caller.receive_nothing(timeout=0.2)
    await _still_answers(callee)

    # and when the callee's socket goes, its close hooks hang up: the caller hears at once
    await callee.disconnect()
    ended = await caller.receive_json_from(timeout=5)
    assert ended.get("state") == "Disconnected" and ended["callEndReason"]["code"] == 410, ended
    await caller.disconnect()


async def test_a_failing_command_gets_an_error_frame_and_the_socket_goes_on(resource: Any) -> None:
    # given a command whose handler fails unexpectedly
    async def boom(consumer: Any, frame: dict[str, Any]) -> None:
        raise RuntimeError("a bug")

    consumers.register_command("test.boom", boom)
    try:
        communicator, _ = await _open(resource, ["chat"])

        # when
        await communicator.send_json_to({"type": "test.boom", "requestId": "r1"})

        # then
        error = await communicator.receive_json_from(timeout=5)
        assert error == {
            "type": "error",
            "code": "InternalError",
            "message": "The server failed to handle the frame.",
            "command": "test.boom",
            "requestId": "r1",
        }
        await _still_answers(communicator)
        await communicator.disconnect()
    finally:
        consumers._commands.pop("test.boom", None)


async def test_a_failure_outside_a_frame_closes_cleanly_and_runs_the_close_hooks(
    resource: Any,
) -> None:
    # given a call, and a close hook that records which sockets closed
    caller, callee = await _connected_call(resource)
    closed: list[str] = []

    async def record(channel_name: str) -> None:
        closed.append(channel_name)

    consumers.register_close_hook(record)
    try:
        # when a realtime event the callee's consumer cannot handle reaches it
        await callee.send_input({"type": "realtime.event"})  # no payload: a KeyError

        # then the socket is closed with 1011, and the hang-up reaches the caller
        assert (await callee.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1011}
        ended = await caller.receive_json_from(timeout=5)
        assert ended.get("state") == "Disconnected", ended
        await callee.wait(timeout=5)  # the consumer ended (StopConsumer), not crashed
        assert len(closed) == 1
        await caller.disconnect()
    finally:
        consumers._on_close.remove(record)


async def test_a_failing_close_hook_does_not_keep_the_others_from_running(resource: Any) -> None:
    # given a call, and a first close hook that fails
    caller, callee = await _connected_call(resource)

    def broken(channel_name: str) -> None:
        raise RuntimeError("a bug")

    consumers._on_close.insert(0, broken)
    try:
        # when the callee's socket goes
        await callee.disconnect()

        # then the calls hook still ran: the caller hears the hang-up
        ended = await caller.receive_json_from(timeout=5)
        assert ended.get("state") == "Disconnected", ended
        await caller.disconnect()
    finally:
        consumers._on_close.remove(broken)


async def test_the_token_watch_stops_with_the_socket_after_bad_frames(
    resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a socket that was sent bad frames
    watching = _watching(monkeypatch)
    communicator, _ = await _open(resource, ["chat"])
    assert len(watching) == 1 and not _stopped(watching[0].watch)
    for text in ("{not json", VERY_DEEP, '{"n": ' + "9" * 5000 + "}"):
        await _send_text(communicator, text)
        await communicator.receive_json_from(timeout=5)
    await _send_bytes(communicator, b"\x00")
    await communicator.receive_json_from(timeout=5)

    # when it closes
    await communicator.disconnect()
    await asyncio.sleep(0)

    # then its token watch is gone
    assert _stopped(watching[0].watch)
