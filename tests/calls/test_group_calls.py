"""Group calls on the identity socket: join by group id or room, the roster, signals addressed
to one participant, roles (room participants only; Consumers receive only), leaving, and the
call record and webhook events."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.accounts import services as accounts
from apps.calls import rooms, signaling
from apps.calls.models import Call, CallParticipant, Room
from apps.events.models import Event
from tests.calls.conftest import Socket

pytestmark = pytest.mark.django_db(transaction=True)

RECVONLY_SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n"
SENDRECV_SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n"


async def join(socket: Socket, **target: Any) -> dict[str, Any]:
    await socket.send({"type": "call.join", **target})
    return await socket.until(type="call.joined")


async def make_room(resource: Any, roles: dict[str, str], **window: Any) -> Room:
    body = {"participants": {raw_id: {"role": role} for raw_id, role in roles.items()}, **window}
    return await database_sync_to_async(rooms.create_room)(resource, body)


async def event_names() -> list[str]:
    types = await database_sync_to_async(
        lambda: list(Event.objects.values_list("event_type", flat=True))
    )()
    return sorted(t.rsplit(".", 1)[-1] for t in types)


async def test_a_group_call_keeps_going_as_people_join_and_leave(connect: Any) -> None:
    alice, bob, carol = await connect(), await connect(), await connect()
    group = str(uuid.uuid4())

    # the first to join starts the call and sees nobody; later joiners see who is there
    first = await join(alice, groupId=group)
    assert first["participants"] == [] and first["topology"] == "mesh"
    second = await join(bob, groupId=group, video=True)
    assert second["callId"] == first["callId"]
    assert [p["rawId"] for p in second["participants"]] == [alice.raw_id]
    added = await alice.expect(type="call", event="participantsUpdated")
    assert [p["rawId"] for p in added["added"]] == [bob.raw_id]
    assert added["added"][0]["isVideoOn"] is True
    third = await join(carol, groupId=group)
    assert {p["rawId"] for p in third["participants"]} == {alice.raw_id, bob.raw_id}
    for socket in (alice, bob):
        await socket.expect(type="call", event="participantsUpdated")

    # a signal addressed to one participant reaches that one only
    call_id = first["callId"]
    offer = {"type": "offer", "sdp": SENDRECV_SDP}
    await carol.send({"type": "call.signal", "callId": call_id, "to": bob.raw_id, "data": offer})
    signal = await bob.expect(type="call", event="signal")
    assert signal["from"] == carol.raw_id and signal["data"] == offer
    await alice.nothing()

    # when bob leaves, the others hear it and the call goes on
    await bob.send({"type": "call.hangup", "callId": call_id})
    gone = await bob.until(type="call", event="stateChanged", state="Disconnected")
    assert gone["callEndReason"] == {"code": 0, "subCode": 0}
    for socket in (alice, carol):
        update = await socket.expect(type="call", event="participantsUpdated")
        assert update["removed"] == [bob.raw_id]
    await carol.send({"type": "call.signal", "callId": call_id, "to": bob.raw_id, "data": offer})
    assert (await carol.expect(type="error"))["code"] == "Forbidden"

    # and bob can come back to the same call
    again = await join(bob, groupId=group)
    assert again["callId"] == call_id

    # when everyone has left, the call ends and is recorded with its events
    for socket in (alice, bob, carol):
        await socket.send({"type": "call.hangup", "callId": call_id})
        await socket.until(type="call.hungUp")
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.kind == "group" and str(call.group_id) == group
    assert call.ended_at is not None and call.end_code == 0
    names = await event_names()
    assert names.count("CallStarted") == 1 and names.count("CallEnded") == 1
    # bob joined and left twice
    assert names.count("CallParticipantAdded") == 4 and names.count("CallParticipantRemoved") == 4

    # a new join to the same group starts a new call
    assert (await join(alice, groupId=group))["callId"] != call_id


async def test_mute_and_camera_changes_reach_the_others(connect: Any) -> None:
    alice, bob = await connect(), await connect()
    group = str(uuid.uuid4())
    call_id = (await join(alice, groupId=group))["callId"]
    await join(bob, groupId=group)
    await alice.expect(type="call", event="participantsUpdated")

    await bob.send({"type": "call.update", "callId": call_id, "muted": True, "videoOn": True})

    await bob.until(type="call.updated")
    changed = await alice.expect(type="call", event="participantStateChanged")
    assert changed["participant"]["rawId"] == bob.raw_id
    assert changed["participant"]["isMuted"] is True and changed["participant"]["isVideoOn"]


async def test_a_closed_socket_leaves_the_group_call(connect: Any) -> None:
    alice, bob = await connect(), await connect()
    group = str(uuid.uuid4())
    call_id = (await join(alice, groupId=group))["callId"]
    await join(bob, groupId=group)
    await alice.expect(type="call", event="participantsUpdated")

    await bob.communicator.disconnect()

    update = await alice.expect(type="call", event="participantsUpdated")
    assert update["removed"] == [bob.raw_id]
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.ended_at is None


async def test_a_mesh_call_is_full_at_its_limit(connect: Any, settings: Any) -> None:
    settings.MESH_MAX_PARTICIPANTS = 2
    group = str(uuid.uuid4())
    await join(await connect(), groupId=group)
    await join(await connect(), groupId=group)

    late = await connect()
    await late.send({"type": "call.join", "groupId": group})

    refused = await late.expect(type="error")
    assert refused["code"] == "Forbidden" and "full" in refused["message"]


@pytest.mark.parametrize(
    ("frame", "target"),
    [
        ({}, "groupId"),
        ({"groupId": "not-a-uuid"}, "groupId"),
        ({"groupId": str(uuid.uuid4()), "roomId": "1"}, "groupId"),
        ({"groupId": str(uuid.uuid4()), "video": "yes"}, "video"),
        ({"roomId": 5}, "roomId"),
    ],
)
async def test_a_bad_join_is_refused_and_changes_nothing(
    connect: Any, frame: dict[str, Any], target: str
) -> None:
    socket = await connect()
    await socket.send({"type": "call.join", "requestId": "r1", **frame})
    error = await socket.expect(type="error", code="BadRequest", command="call.join")
    assert target in error["message"] and error["requestId"] == "r1"
    assert await database_sync_to_async(Call.objects.count)() == 0


async def test_only_room_participants_join_with_their_roles(connect: Any, resource: Any) -> None:
    presenter, attendee, consumer, stranger = (
        await connect(),
        await connect(),
        await connect(),
        await connect(),
    )
    room = await make_room(
        resource,
        {presenter.raw_id: "Presenter", attendee.raw_id: "Attendee", consumer.raw_id: "Consumer"},
    )

    # a non-participant is refused and no call starts
    await stranger.send({"type": "call.join", "roomId": room.id})
    assert (await stranger.expect(type="error"))["code"] == "Forbidden"
    assert await database_sync_to_async(Call.objects.count)() == 0

    # participants join with their room roles
    joined = await join(presenter, roomId=room.id)
    assert joined["role"] == "Presenter"
    call_id = joined["callId"]
    assert (await join(attendee, roomId=room.id))["role"] == "Attendee"
    as_consumer = await join(consumer, roomId=room.id, video=True)
    assert as_consumer["role"] == "Consumer"
    roster = {p["rawId"]: p["role"] for p in as_consumer["participants"]}
    assert roster == {presenter.raw_id: "Presenter", attendee.raw_id: "Attendee"}

    # a Consumer only receives: SDP that sends is refused, recvonly goes through
    sending = {"type": "offer", "sdp": SENDRECV_SDP}
    await consumer.send(
        {"type": "call.signal", "callId": call_id, "to": presenter.raw_id, "data": sending}
    )
    assert (await consumer.expect(type="error"))["code"] == "Forbidden"
    await consumer.send({"type": "call.update", "callId": call_id, "muted": False})
    assert (await consumer.expect(type="error"))["code"] == "Forbidden"
    receiving = {"type": "offer", "sdp": RECVONLY_SDP}
    await consumer.send(
        {"type": "call.signal", "callId": call_id, "to": presenter.raw_id, "data": receiving}
    )
    frames = [await presenter.next() for _ in range(3)]  # two joins, then the signal
    assert frames[-1]["event"] == "signal" and frames[-1]["data"] == receiving
    leg = await database_sync_to_async(CallParticipant.objects.get)(
        call_id=call_id, raw_id=consumer.raw_id
    )
    assert leg.is_muted and not leg.is_video_on

    # only a Presenter ends a room's call for everyone
    await attendee.send({"type": "call.hangup", "callId": call_id, "forEveryone": True})
    assert (await attendee.until(type="error"))["code"] == "Forbidden"
    await presenter.send({"type": "call.hangup", "callId": call_id, "forEveryone": True})
    for socket in (attendee, consumer):
        await socket.until(event="stateChanged", state="Disconnected")
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.kind == "room" and call.room_id == room.id and call.ended_at is not None


async def test_a_room_outside_its_window_or_of_another_resource_cannot_be_joined(
    connect: Any, resource: Any, owner: Any
) -> None:
    member = await connect()
    later = timezone.now() + timedelta(days=1)
    closed = await make_room(
        resource,
        {member.raw_id: "Attendee"},
        validFrom=later.isoformat(),
        validUntil=(later + timedelta(days=1)).isoformat(),
    )
    await member.send({"type": "call.join", "roomId": closed.id})
    assert "not open" in (await member.expect(type="error", code="Forbidden"))["message"]

    other = await database_sync_to_async(accounts.create_resource)("Fabrikam", owner=owner)
    foreign = await make_room(other, {})
    await member.send({"type": "call.join", "roomId": foreign.id})
    await member.expect(type="error", code="NotFound")
    assert await database_sync_to_async(Call.objects.count)() == 0


async def test_a_revoked_token_ends_the_socket_and_its_call(connect: Any, resource: Any) -> None:
    caller = await connect()
    identity, token = await database_sync_to_async(accounts.create_identity)(
        resource, scopes=["voip"]
    )
    callee = await connect(token=token)
    await caller.send({"type": "call.invite", "to": callee.raw_id})
    call_id = (await callee.expect(type="call", event="incomingCall"))["callId"]
    await callee.send({"type": "call.accept", "callId": call_id})
    await caller.expect(type="call.invited")

    await database_sync_to_async(accounts.revoke_tokens)(identity)

    refused = await callee.communicator.receive_output(timeout=5)
    while refused["type"] != "websocket.close":
        refused = await callee.communicator.receive_output(timeout=5)
    await callee.communicator.disconnect()
    ended = await caller.until(event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 410


async def test_signals_for_the_sfu_are_refused_in_a_mesh_call(connect: Any) -> None:
    socket = await connect()
    call_id = (await join(socket, groupId=str(uuid.uuid4())))["callId"]

    offer = {"type": "offer", "sdp": SENDRECV_SDP}
    await socket.send({"type": "call.signal", "callId": call_id, "to": "sfu", "data": offer})

    assert (await socket.until(type="error"))["code"] == "Forbidden"


async def test_a_join_when_janus_is_down_ends_the_call_with_503(
    connect: Any, settings: Any
) -> None:
    settings.JANUS_URL = "ws://127.0.0.1:9/"  # nothing listens there
    socket = await connect()

    joined = await join(socket, groupId=str(uuid.uuid4()))

    # the call was placed on that Janus, which is found down: its calls end (503, 510503)
    assert joined["topology"] == "sfu"
    ended = await socket.until(event="stateChanged", state="Disconnected")
    assert ended["callEndReason"] == {"code": 503, "subCode": 510503}
    legs = await database_sync_to_async(
        lambda: list(CallParticipant.objects.values_list("state", flat=True))
    )()
    assert legs == ["left"]

    # and while it is down, a new call has no Janus to go to: its participant leaves (503)
    other = await connect()
    await join(other, groupId=str(uuid.uuid4()))
    refused = await other.until(event="stateChanged", state="Disconnected")
    assert refused["callEndReason"] == {"code": 503, "subCode": 0}


async def test_a_room_call_follows_changes_to_the_room(connect: Any, resource: Any) -> None:
    presenter, attendee, consumer = await connect(), await connect(), await connect()
    room = await make_room(
        resource,
        {presenter.raw_id: "Presenter", attendee.raw_id: "Attendee", consumer.raw_id: "Consumer"},
    )
    call_id = (await join(presenter, roomId=room.id))["callId"]
    await join(attendee, roomId=room.id)
    await join(consumer, roomId=room.id)

    # when the attendee is removed from the room and the consumer becomes a presenter
    change = {"participants": {attendee.raw_id: None, consumer.raw_id: {"role": "Presenter"}}}
    await database_sync_to_async(rooms.update_participants)(room, change)
    await database_sync_to_async(signaling.room_changed)(room)

    # then the attendee is out of the call (403) and the others hear it
    removed = await attendee.until(event="stateChanged", state="Disconnected")
    assert removed["callEndReason"]["code"] == 403
    update = await presenter.until(event="participantsUpdated", removed=[attendee.raw_id])
    assert update["added"] == []
    # and everyone, the promoted one too, hears of the new role
    for socket in (presenter, consumer):
        changed = await socket.until(event="participantStateChanged")
        assert changed["participant"]["rawId"] == consumer.raw_id
        assert changed["participant"]["role"] == "Presenter"

    # when the room is deleted, its call ends for everyone
    await database_sync_to_async(signaling.room_changed)(room, deleted=True)
    for socket in (presenter, consumer):
        await socket.until(event="stateChanged", state="Disconnected")
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.ended_at is not None and call.end_reason == "The room was deleted."
