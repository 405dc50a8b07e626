"""1:1 call signaling on the identity socket: ring, accept or decline, relay, hang up, and the
call record and webhook events it leaves."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts import services as accounts
from apps.calls.models import Call
from apps.events.models import Event
from tests.calls.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)


async def ring(caller: Socket, callee: Socket) -> str:
    await caller.send({"type": "call.invite", "to": callee.raw_id, "video": True})
    incoming = await callee.expect(type="call", event="incomingCall")
    assert incoming["caller"] == {"kind": "communicationUser", "communicationUserId": caller.raw_id}
    call_id = incoming["callId"]
    replies = [await caller.next(), await caller.next()]
    assert {"type": "call.invited", "callId": call_id, "iceServers": []} in replies
    assert any(r.get("event") == "stateChanged" and r["state"] == "Ringing" for r in replies)
    return str(call_id)


async def test_a_call_rings_is_answered_relays_signals_and_hangs_up(connect: Any) -> None:
    # given a caller and a callee
    caller, callee = await connect(), await connect()

    # when the caller rings and the callee answers
    call_id = await ring(caller, callee)
    await callee.send({"type": "call.accept", "callId": call_id, "muted": True})

    # then both are connected, and hear each other's microphone and camera state
    connected = await caller.expect(type="call", event="stateChanged", state="Connected")
    legs = {entry["rawId"]: entry for entry in connected["participants"]}
    assert legs[caller.raw_id]["isVideoOn"] is True and legs[caller.raw_id]["isMuted"] is False
    assert legs[callee.raw_id]["isMuted"] is True and legs[callee.raw_id]["isVideoOn"] is False
    replies = [await callee.next(), await callee.next()]
    assert any(r.get("state") == "Connected" for r in replies)

    # and an SDP offer from the caller reaches the callee, and the answer comes back
    await caller.send({"type": "call.signal", "callId": call_id, "data": {"sdp": "v=0 offer"}})
    offer = await callee.expect(type="call", event="signal")
    assert offer["data"] == {"sdp": "v=0 offer"}
    await callee.send({"type": "call.signal", "callId": call_id, "data": {"sdp": "v=0 answer"}})
    assert (await caller.expect(type="call", event="signal"))["data"] == {"sdp": "v=0 answer"}

    # when the callee hangs up, both are disconnected with a normal end
    await callee.send({"type": "call.hangup", "callId": call_id})
    ended = await caller.expect(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"] == {"code": 0, "subCode": 0}

    # and the call is recorded with its times, and the webhook events are stored
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.connected_at and call.ended_at and call.end_code == 0
    types = await database_sync_to_async(
        lambda: sorted(Event.objects.values_list("event_type", flat=True))
    )()
    short = [t.rsplit(".", 1)[-1] for t in types]
    assert short.count("CallStarted") == 1 and short.count("CallEnded") == 1
    assert short.count("CallParticipantAdded") == 2 and short.count("CallParticipantRemoved") == 2


async def test_only_the_callee_can_accept_and_strangers_cannot_see_the_call(connect: Any) -> None:
    caller, callee, stranger = await connect(), await connect(), await connect()
    call_id = await ring(caller, callee)

    await caller.send({"type": "call.accept", "callId": call_id})
    assert (await caller.expect(type="error"))["code"] == "Forbidden"
    await stranger.send({"type": "call.accept", "callId": call_id})
    assert (await stranger.expect(type="error"))["code"] == "CallNotFound"
    await stranger.send({"type": "call.signal", "callId": call_id, "data": {"sdp": "x"}})
    assert (await stranger.expect(type="error"))["code"] == "CallNotFound"
    await callee.nothing()


async def test_a_declined_call_ends_with_603(connect: Any) -> None:
    caller, callee = await connect(), await connect()
    call_id = await ring(caller, callee)

    await callee.send({"type": "call.decline", "callId": call_id})

    ended = await caller.expect(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 603
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.end_code == 603 and call.connected_at is None


async def test_signals_reach_only_the_socket_that_answered(connect: Any, resource: Any) -> None:
    # given a callee with two sockets (two devices), one of which answers
    identity, token = await database_sync_to_async(accounts.create_identity)(
        resource, scopes=["voip"]
    )
    caller = await connect()
    phone, laptop = await connect(token=token), await connect(token=token)
    call_id = await ring(caller, phone)
    await laptop.expect(type="call", event="incomingCall")
    await phone.send({"type": "call.accept", "callId": call_id})
    await caller.expect(type="call", event="stateChanged", state="Connected")
    for device in (phone, laptop):  # both hear that it was answered, and by which socket
        frames = [await device.next() for _ in range(2 if device is phone else 1)]
        assert any(f.get("state") == "Connected" for f in frames)

    # when the caller sends an offer
    await caller.send({"type": "call.signal", "callId": call_id, "data": {"sdp": "offer"}})

    # then only the answering socket gets it
    assert (await phone.expect(type="call", event="signal"))["data"] == {"sdp": "offer"}
    await laptop.nothing()


async def test_a_closed_socket_ends_its_calls(connect: Any) -> None:
    caller, callee = await connect(), await connect()
    call_id = await ring(caller, callee)
    await callee.send({"type": "call.accept", "callId": call_id})
    await caller.expect(type="call", event="stateChanged", state="Connected")

    await callee.communicator.disconnect()

    ended = await caller.expect(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 410


async def test_a_token_without_voip_cannot_call_and_hears_no_calls(connect: Any) -> None:
    chatter, callee = await connect(["chat"]), await connect()
    await chatter.send({"type": "call.invite", "to": callee.raw_id})
    assert (await chatter.expect(type="error"))["code"] == "Forbidden"

    caller = await connect()
    await caller.send({"type": "call.invite", "to": chatter.raw_id})
    replies = [await caller.next(), await caller.next()]  # invited, and ringing, in any order
    assert {r["type"] for r in replies} == {"call.invited", "call"}
    await chatter.nothing()


async def test_a_call_nobody_answers_stops_ringing_with_408(connect: Any, settings: Any) -> None:
    settings.RING_TIMEOUT_SECONDS = 1
    caller, callee = await connect(), await connect()
    call_id = await ring(caller, callee)

    # when nobody answers in time, both hear the call end
    for socket in (caller, callee):
        ended = await socket.until(event="stateChanged", state="Disconnected")
        assert ended["callEndReason"] == {"code": 408, "subCode": 0}

    # and it can no longer be answered
    await callee.send({"type": "call.accept", "callId": call_id})
    assert (await callee.until(type="error"))["code"] == "Forbidden"
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.end_code == 408 and call.connected_at is None


async def test_an_answered_call_is_not_cut_by_the_ring_timeout(connect: Any, settings: Any) -> None:
    settings.RING_TIMEOUT_SECONDS = 1
    caller, callee = await connect(), await connect()
    call_id = await ring(caller, callee)
    await callee.send({"type": "call.accept", "callId": call_id})
    await caller.until(event="stateChanged", state="Connected")

    await caller.nothing()  # 0.3 s
    assert await caller.communicator.receive_nothing(timeout=1.5)
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.ended_at is None
