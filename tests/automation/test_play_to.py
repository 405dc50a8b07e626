"""Plays to some participants only, DTMF sent to one, and hold with music: the API's rules and
the media process's moves (with test_media_process's fake room; tests/automation/
test_side_rooms.py checks what each leg hears in a real Janus)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import msgpack
import pytest
from channels.db import database_sync_to_async

from apps.automation.models import MediaOperation
from apps.calls.models import CallParticipant
from tests.automation.conftest import api, media_message, types_of, wait_for_callback
from tests.automation.test_call_connections import C
from tests.automation.test_media_process import (  # noqa: F401 (fake_media is a fixture)
    FakeRoom,
    connected_call,
    fake_media,
)
from tests.conftest import AcsClient, quote_id
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = {"kind": "text", "text": {"text": "for you alone"}}


async def two_party_call(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, process: Any
) -> tuple[Any, Any, str, str]:
    """A call the application answered, with a guest added: (caller, guest, connection, call)."""
    caller, connection_id, call_id = await connected_call(connect, resource, acs, receiver, process)
    guest = await connect()
    added = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": guest.raw_id}},
    )
    assert added.status_code == 202, added.content
    await guest.until(type="call", event="incomingCall")
    await guest.send({"type": "call.accept", "callId": call_id})
    await guest.until(type="call", event="stateChanged", state="Connected")
    await process.handle(
        {
            "type": "signal",
            "call": call_id,
            "rawId": guest.raw_id,
            "identity": guest.raw_id.rsplit("_", 1)[-1],
            "channel": "test",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )
    await wait_for_callback(receiver, "AddParticipantSucceeded")
    return caller, guest, connection_id, call_id


async def test_a_play_to_one_participant_sets_it_aside_for_the_while(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,  # noqa: F811
) -> None:
    caller, guest, connection_id, call_id = await two_party_call(
        connect, resource, acs, receiver, fake_media
    )
    room = fake_media.calls[call_id].room

    # when the application plays to the guest alone, then to both by name, then to all
    for play_to in ([guest.raw_id], [caller.raw_id, guest.raw_id], None):
        body: dict[str, Any] = {"playSources": [SPEECH]}
        if play_to:
            body["playTo"] = [{"rawId": raw_id} for raw_id in play_to]
        answer = await api(acs, "POST", f"{C}/{connection_id}:play", body)
        assert answer.status_code == 202, answer.content
    await fake_media.handle({"type": "operations", "call": call_id})
    for _ in range(600):  # the three plays run one after the other (30 s at most under load)
        if types_of(receiver).count("PlayCompleted") == 3:
            break
        await asyncio.sleep(0.05)

    # then only the first set the guest aside (and back after), and all three completed
    assert room.moves == [("linked", guest.raw_id), ("back", guest.raw_id)]
    assert room.played_to == [guest.raw_id, None, None]
    assert [e for e in types_of(receiver) if e.startswith("Play")] == [
        "PlayStarted",
        "PlayCompleted",
    ] * 3

    # and DTMF tones reach their target alone too
    sent = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:sendDtmfTones",
        {"tones": ["five"], "targetParticipant": {"rawId": caller.raw_id}},
    )
    assert sent.status_code == 202
    await fake_media.handle({"type": "operations", "call": call_id})
    await wait_for_callback(receiver, "SendDtmfTonesCompleted", timeout=30)
    assert room.moves[-2:] == [("linked", caller.raw_id), ("back", caller.raw_id)]
    assert room.played_to[-1] == caller.raw_id


async def test_a_recognize_prompt_reaches_its_target_alone(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,  # noqa: F811
) -> None:
    caller, guest, connection_id, call_id = await two_party_call(
        connect, resource, acs, receiver, fake_media
    )
    body = {
        "recognizeInputType": "dtmf",
        "playPrompt": SPEECH,
        "recognizeOptions": {
            "targetParticipant": {"rawId": caller.raw_id},
            "dtmfOptions": {"maxTonesToCollect": 1},
        },
    }
    answer = await api(acs, "POST", f"{C}/{connection_id}:recognize", body)
    assert answer.status_code == 202, answer.content
    await fake_media.handle({"type": "operations", "call": call_id})
    room = fake_media.calls[call_id].room
    for _ in range(50):
        if room.played_to:
            break
        await asyncio.sleep(0.02)
    assert room.played_to == [caller.raw_id] and room.aside == {caller.raw_id: True}
    await fake_media.handle({"type": "dtmf", "call": call_id, "rawId": caller.raw_id, "tone": "7"})
    completed = await wait_for_callback(receiver, "RecognizeCompleted")
    assert completed["data"]["dtmfResult"]["tones"] == ["seven"]
    assert room.aside == {} and room.moves == [("linked", caller.raw_id), ("back", caller.raw_id)]


async def test_cancel_brings_the_target_back(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,  # noqa: F811
) -> None:
    FakeRoom.seconds = 30
    try:
        _, guest, connection_id, call_id = await two_party_call(
            connect, resource, acs, receiver, fake_media
        )
        body = {"playSources": [SPEECH], "playTo": [{"rawId": guest.raw_id}]}
        await api(acs, "POST", f"{C}/{connection_id}:play", body)
        await fake_media.handle({"type": "operations", "call": call_id})
        await wait_for_callback(receiver, "PlayStarted")
        room = fake_media.calls[call_id].room
        assert room.aside == {guest.raw_id: True}

        await api(acs, "POST", f"{C}/{connection_id}:cancelAllMediaOperations")
        await fake_media.handle({"type": "cancel", "call": call_id})
        await wait_for_callback(receiver, "PlayCanceled")
        assert room.aside == {} and room.moves[-1] == ("back", guest.raw_id)
    finally:
        FakeRoom.seconds = 0.3


async def test_hold_plays_music_to_the_held_participant_until_unhold(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,  # noqa: F811
) -> None:
    caller, guest, connection_id, call_id = await two_party_call(
        connect, resource, acs, receiver, fake_media
    )
    room = fake_media.calls[call_id].room
    target = {"targetParticipant": {"rawId": guest.raw_id}}
    participant = f"{C}/{connection_id}/participants/{quote_id(guest.raw_id)}"

    # when the guest is held with music
    listening = await listen_for_hold(call_id)
    held = await api(acs, "POST", f"{C}/{connection_id}:hold", {**target, "playSourceInfo": SPEECH})
    assert held.status_code == 200
    await fake_media.handle(await listening)
    assert room.aside == {guest.raw_id: False}  # apart and unlinked: not heard, not hearing
    assert room.played_to == [guest.raw_id]
    got = await api(acs, "GET", participant)
    assert got.json()["isOnHold"] is True and got.json()["isMuted"] is False

    # then a play to everyone does not move it, and a play to it goes over its music
    await api(acs, "POST", f"{C}/{connection_id}:play", {"playSources": [SPEECH], **to(guest)})
    await fake_media.handle({"type": "operations", "call": call_id})
    await wait_for_callback(receiver, "PlayCompleted")
    assert room.moves == [("aside", guest.raw_id)]  # not brought back by the play

    # when unheld, it is back in the call and its music stopped
    listening = await listen_for_hold(call_id)
    unheld = await api(acs, "POST", f"{C}/{connection_id}:unhold", target)
    assert unheld.status_code == 200
    await fake_media.handle(await listening)
    assert room.aside == {} and room.moves[-1] == ("back", guest.raw_id)
    got = await api(acs, "GET", participant)
    assert got.json()["isOnHold"] is False


async def test_hold_music_that_cannot_be_fetched_fails_the_hold(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    settings: Any,
    fake_media: Any,  # noqa: F811
) -> None:
    _, guest, connection_id, call_id = await two_party_call(
        connect, resource, acs, receiver, fake_media
    )
    body = {
        "targetParticipant": {"rawId": guest.raw_id},
        "playSourceInfo": {"kind": "file", "file": {"uri": "https://127.0.0.1:1/music.wav"}},
        "operationContext": "hold-music",
    }
    settings.OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]  # nobody listens
    listening = await listen_for_hold(call_id)
    held = await api(acs, "POST", f"{C}/{connection_id}:hold", body)
    assert held.status_code == 200, held.content
    await fake_media.handle(await listening)
    failed = await wait_for_callback(receiver, "HoldFailed")
    assert failed["data"]["operationContext"] == "hold-music"
    assert failed["data"]["resultInformation"]["subCode"] == 8536
    on_hold = await database_sync_to_async(
        lambda: CallParticipant.objects.get(raw_id=guest.raw_id).is_on_hold
    )()
    assert on_hold is False


@pytest.mark.parametrize(
    "play_to, status",
    [
        ("everyone", 400),
        ([{"rawId": ""}], 400),
        (["8:acs:x"], 400),
        ([{"rawId": "8:acs:stranger"}], 404),
        ([{"rawId": "8:acs:x"}] * 51, 400),
    ],
)
async def test_bad_play_to_is_refused_and_queues_nothing(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,  # noqa: F811
    play_to: Any,
    status: int,
) -> None:
    _, connection_id, _ = await connected_call(connect, resource, acs, receiver, fake_media)
    body = {"playSources": [SPEECH], "playTo": play_to}
    answer = await api(acs, "POST", f"{C}/{connection_id}:play", body)
    assert answer.status_code == status, answer.content
    assert answer.json()["error"]["code"]
    assert await database_sync_to_async(MediaOperation.objects.count)() == 0


async def listen_for_hold(call_id: str) -> asyncio.Future[dict[str, Any]]:
    """Listen for the hold message the API will send the media process for this call (the fake
    process is handed it). Listening starts first: Redis's pub/sub layer keeps nothing for a
    channel nobody listens to."""
    listening = asyncio.ensure_future(hold_message(call_id))
    await asyncio.sleep(0.1)
    return listening


async def hold_message(call_id: str) -> dict[str, Any]:
    """The next hold message for this call (earlier tests' messages may still wait)."""
    while True:
        message = await media_message("hold")
        if message["call"] == call_id:
            msgpack.packb(message)  # as channels-redis sends it: no UUIDs or other objects
            return message


def to(leg: Any) -> dict[str, Any]:
    return {"playTo": [{"rawId": leg.raw_id}]}
