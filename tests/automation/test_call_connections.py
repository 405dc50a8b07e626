"""The Call Automation API on calls between sockets and the application: IncomingCall,
answer / reject / redirect, create call, participants, hang up and terminate, with the SDK's
status codes, the ACS error shape, callbacks in order, and one resource never reaching
another's calls. The media process's part is played by the test (media_joined)."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async

from apps.accounts.tokens import key_store
from apps.automation import services
from apps.automation.models import CallConnection, MediaOperation
from apps.calls.models import Call
from tests.automation.conftest import (
    api,
    callbacks_of,
    incoming_call_event,
    media_message,
    route_to_application,
    types_of,
    wait_for_callback,
)
from tests.calls.conftest import Socket
from tests.conftest import AcsClient, quote_id
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
C = "/calling/callConnections"


async def ring_application(caller: Socket, callee: Socket, resource: Any) -> dict[str, Any]:
    await route_to_application(callee, resource)
    await caller.send({"type": "call.invite", "to": callee.raw_id})
    await caller.until(type="call", event="stateChanged", state="Ringing")
    await callee.nothing()  # the identity's own sockets do not ring
    return await incoming_call_event()


async def answered_call(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver
) -> tuple[Socket, str, str]:
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    answer = await api(
        acs,
        "POST",
        f"{C}:answer",
        {"incomingCallContext": incoming["incomingCallContext"], "callbackUri": receiver.url},
    )
    assert answer.status_code == 200, answer.content
    connection_id = answer.json()["callConnectionId"]
    connected = await caller.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    call_id = str(connected["callId"])
    await database_sync_to_async(services.media_joined)(call_id, caller.raw_id)
    await wait_for_callback(receiver, "ParticipantsUpdated")
    return caller, connection_id, call_id


async def test_an_incoming_call_reaches_the_application_which_answers_it(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    # given a caller ringing an identity whose calls go to the application
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)

    # then IncomingCall carries what an app needs to answer
    assert incoming["to"]["rawId"] == callee.raw_id
    assert incoming["from"]["rawId"] == caller.raw_id
    assert incoming["serverCallId"] and incoming["correlationId"]

    # when the application answers
    answer = await api(
        acs,
        "POST",
        f"{C}:answer",
        {
            "incomingCallContext": incoming["incomingCallContext"],
            "callbackUri": receiver.url,
            "operationContext": "ivr",
        },
    )

    # then it gets its connection, and the caller's media goes to the bridge
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["callConnectionState"] == "connecting"
    assert body["serverCallId"] == incoming["serverCallId"]
    connected = await caller.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    listening = asyncio.ensure_future(media_message("signal"))
    await asyncio.sleep(0.1)
    await caller.send(
        {
            "type": "call.signal",
            "callId": connected["callId"],
            "to": "media",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )
    offer = await listening
    assert offer["rawId"] == caller.raw_id and offer["data"]["type"] == "offer"

    # when its media reaches the bridge, the application hears, in order
    await database_sync_to_async(services.media_joined)(str(connected["callId"]), caller.raw_id)
    await wait_for_callback(receiver, "ParticipantsUpdated")
    assert types_of(receiver) == ["CallConnected", "ParticipantsUpdated"]
    connected_event = callbacks_of(receiver)[0]
    assert connected_event["data"]["callConnectionId"] == body["callConnectionId"]
    assert connected_event["data"]["operationContext"] == "ivr"
    participants = callbacks_of(receiver)[1]["data"]["participants"]
    assert [p["identifier"]["rawId"] for p in participants] == [caller.raw_id]

    # and the connection and its participants read as the SDK expects
    got = await api(acs, "GET", f"{C}/{body['callConnectionId']}")
    assert got.status_code == 200 and got.json()["callConnectionState"] == "connected"
    listed = await api(acs, "GET", f"{C}/{body['callConnectionId']}/participants")
    assert [p["identifier"]["rawId"] for p in listed.json()["value"]] == [caller.raw_id]
    one = await api(
        acs, "GET", f"{C}/{body['callConnectionId']}/participants/{quote_id(caller.raw_id)}"
    )
    assert one.status_code == 200 and one.json()["isMuted"] is False


async def test_callbacks_are_signed_by_spool_keys(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    await answered_call(connect, resource, acs, receiver)
    first = next(r for r in receiver.received if r.method == "POST")
    token = first.header("Authorization").removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    key = await database_sync_to_async(key_store().find)(header["kid"])
    claims = jwt.decode(
        token,
        key.private_key.public_key(),
        algorithms=[header["alg"]],
        audience=await database_sync_to_async(services.accounts.resource_endpoint)(resource),
    )
    assert claims["jti"] == callbacks_of(receiver)[0]["id"]


async def test_hang_up_ends_the_call_and_the_connection(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, _ = await answered_call(connect, resource, acs, receiver)
    hung_up = await api(acs, "DELETE", f"{C}/{connection_id}")
    assert hung_up.status_code == 204
    ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 0
    disconnected = await wait_for_callback(receiver, "CallDisconnected")
    assert disconnected["data"]["callConnectionId"] == connection_id
    # an operation on the ended connection is refused in the ACS shape and changes nothing
    play = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:play",
        {"playSources": [{"kind": "text", "text": {"text": "hello"}}]},
    )
    assert play.status_code == 400 and play.json()["error"]["code"] == "8501"
    assert await database_sync_to_async(MediaOperation.objects.count)() == 0


async def test_the_caller_hanging_up_disconnects_the_application(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    await caller.send({"type": "call.hangup", "callId": call_id})
    await wait_for_callback(receiver, "CallDisconnected")
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "disconnected"


async def test_terminate_ends_the_call_for_everyone(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    assert (await api(acs, "POST", f"{C}/{connection_id}:terminate")).status_code == 204
    await caller.until(type="call", event="stateChanged", state="Disconnected")
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.ended_at is not None


async def test_reject_tells_the_caller_why(
    connect: Any, resource: Any, acs: AcsClient, media_alive: None
) -> None:
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    rejected = await api(
        acs,
        "POST",
        f"{C}:reject",
        {"incomingCallContext": incoming["incomingCallContext"], "callRejectReason": "busy"},
    )
    assert rejected.status_code == 204
    ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 486
    # the context cannot be used again
    again = await api(
        acs,
        "POST",
        f"{C}:answer",
        {
            "incomingCallContext": incoming["incomingCallContext"],
            "callbackUri": "http://127.0.0.1/x",
        },
    )
    assert again.status_code == 400


async def test_redirect_rings_another_identity(
    connect: Any, resource: Any, acs: AcsClient, media_alive: None
) -> None:
    caller, callee, agent = await connect(), await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    redirected = await api(
        acs,
        "POST",
        f"{C}:redirect",
        {"incomingCallContext": incoming["incomingCallContext"], "target": {"rawId": agent.raw_id}},
    )
    assert redirected.status_code == 204
    ring = await agent.until(type="call", event="incomingCall")
    await agent.send({"type": "call.accept", "callId": ring["callId"]})
    connected = await agent.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"


async def test_create_call_rings_the_target_and_connects_when_it_answers(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    callee = await connect()
    created = await api(
        acs,
        "POST",
        C,
        {"targets": [{"rawId": callee.raw_id}], "callbackUri": receiver.url},
        headers={"Repeatability-Request-ID": "11111111-1111-1111-1111-111111111111"},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["callConnectionState"] == "connecting"
    assert [t["rawId"] for t in body["targets"]] == [callee.raw_id]
    # a retry of the same request is the same connection
    again = await api(
        acs,
        "POST",
        C,
        {"targets": [{"rawId": callee.raw_id}], "callbackUri": receiver.url},
        headers={"Repeatability-Request-ID": "11111111-1111-1111-1111-111111111111"},
    )
    assert again.json()["callConnectionId"] == body["callConnectionId"]
    assert await database_sync_to_async(CallConnection.objects.count)() == 1

    ring = await callee.until(type="call", event="incomingCall")
    await callee.send({"type": "call.accept", "callId": ring["callId"]})
    connected = await callee.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    await database_sync_to_async(services.media_joined)(str(ring["callId"]), callee.raw_id)
    event = await wait_for_callback(receiver, "CallConnected")
    assert event["data"]["callConnectionId"] == body["callConnectionId"]


@pytest.mark.parametrize(
    "body, status, target",
    [
        ({}, 400, "incomingCallContext"),
        ({"incomingCallContext": "forged", "callbackUri": "https://x.example/cb"}, 400, None),
    ],
)
async def test_answer_refuses_bad_requests(
    acs: AcsClient, body: dict[str, Any], status: int, target: str | None, media_alive: None
) -> None:
    answer = await api(acs, "POST", f"{C}:answer", body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["message"]
    if target:
        assert error["target"] == target
    assert await database_sync_to_async(CallConnection.objects.count)() == 0


async def test_answer_without_the_media_plane_is_a_clear_503_and_keeps_ringing(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver
) -> None:
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    answer = await api(
        acs,
        "POST",
        f"{C}:answer",
        {"incomingCallContext": incoming["incomingCallContext"], "callbackUri": receiver.url},
    )
    assert answer.status_code == 503
    assert "media plane" in answer.json()["error"]["message"]
    call = await database_sync_to_async(Call.objects.get)(pk=incoming["serverCallId"])
    assert call.state == "ringing"


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/cb", "http://169.254.169.254/latest", "ftp://127.0.0.1/x", "not a url"],
)
async def test_callback_uris_that_point_inward_are_refused(
    connect: Any, resource: Any, acs: AcsClient, url: str, media_alive: None, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    callee = await connect()
    created = await api(acs, "POST", C, {"targets": [{"rawId": callee.raw_id}], "callbackUri": url})
    assert created.status_code == 400
    assert created.json()["error"]["target"] == "callbackUri"
    assert await database_sync_to_async(Call.objects.count)() == 0


async def test_another_resource_never_reaches_the_call(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    other_acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
) -> None:
    caller, connection_id, _ = await answered_call(connect, resource, acs, receiver)
    for method, path in [
        ("GET", f"{C}/{connection_id}"),
        ("GET", f"{C}/{connection_id}/participants"),
        ("DELETE", f"{C}/{connection_id}"),
        ("POST", f"{C}/{connection_id}:terminate"),
    ]:
        answer = await api(other_acs, method, path)
        assert answer.status_code == 404, (method, path)
    # and another resource's identity cannot be called
    created = await api(
        other_acs, "POST", C, {"targets": [{"rawId": caller.raw_id}], "callbackUri": receiver.url}
    )
    assert created.status_code == 404
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"


async def test_calls_to_phone_numbers_need_a_caller_id(
    acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    # (tests/automation/test_phone_targets.py calls phones through SIP trunks)
    created = await api(
        acs, "POST", C, {"targets": [{"rawId": "4:+15555550100"}], "callbackUri": receiver.url}
    )
    assert created.status_code == 400
    assert created.json()["error"]["target"] == "sourceCallerIdNumber"


async def test_play_and_recognize_are_queued_for_the_media_process(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, _ = await answered_call(connect, resource, acs, receiver)
    played = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:play",
        {
            "playSources": [
                {"kind": "text", "text": {"text": "Welcome", "voiceName": "en-US-JennyNeural"}}
            ],
            "operationContext": "welcome",
        },
    )
    assert played.status_code == 202, played.content
    recognized = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:recognize",
        {
            "recognizeInputType": "dtmf",
            "recognizeOptions": {
                "targetParticipant": {"rawId": caller.raw_id},
                "dtmfOptions": {"maxTonesToCollect": 2, "stopTones": ["pound"]},
            },
        },
    )
    assert recognized.status_code == 202, recognized.content
    operations = await database_sync_to_async(
        lambda: list(MediaOperation.objects.order_by("created_at").values_list("kind", "state"))
    )()
    assert operations == [("play", "queued"), ("recognize", "queued")]
    # cancel drops what is queued, each with its Canceled callback
    assert (
        await api(acs, "POST", f"{C}/{connection_id}:cancelAllMediaOperations")
    ).status_code == 202
    await wait_for_callback(receiver, "RecognizeCanceled")
    assert "PlayCanceled" in types_of(receiver)


@pytest.mark.parametrize(
    "path, body, target",
    [
        (":play", {"playSources": []}, "playSources"),
        (
            ":play",
            {"playSources": [{"kind": "file", "file": {"uri": "http://10.1.1.1/a.wav"}}]},
            None,
        ),
        (":play", {"playSources": [{"kind": "video"}]}, None),
        (":recognize", {"recognizeInputType": "telepathy", "recognizeOptions": {}}, None),
        (":sendDtmfTones", {"tones": ["eleven"], "targetParticipant": {"rawId": "x"}}, "tones"),
        (":sendDtmfTones", {"tones": [], "targetParticipant": {"rawId": "x"}}, "tones"),
    ],
)
async def test_bad_media_requests_are_refused_and_change_nothing(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    settings: Any,
    path: str,
    body: dict[str, Any],
    target: str | None,
) -> None:
    _, connection_id, _ = await answered_call(connect, resource, acs, receiver)
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    answer = await api(acs, "POST", f"{C}/{connection_id}{path}", body)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["message"]
    if target:
        assert answer.json()["error"]["target"] == target
    assert await database_sync_to_async(MediaOperation.objects.count)() == 0


async def test_dtmf_from_a_socket_reaches_the_media_process(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, _, call_id = await answered_call(connect, resource, acs, receiver)
    listening = asyncio.ensure_future(media_message("dtmf"))
    await asyncio.sleep(0.1)
    await caller.send({"type": "call.sendDtmf", "callId": call_id, "tone": "5"})
    await caller.until(type="call.dtmfSent")
    assert (await listening)["tone"] == "5"
    await caller.send({"type": "call.sendDtmf", "callId": call_id, "tone": "55"})
    error = await caller.until(type="error")
    assert error["code"] == "BadRequest"


async def test_a_connection_that_is_not_there_is_404(acs: AcsClient) -> None:
    for path in [f"{C}/nope", f"{C}/00000000-0000-0000-0000-000000000000/participants"]:
        answer = await api(acs, "GET", path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"]


async def test_a_number_routed_to_the_application_raises_incoming_call(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, make_numbers: Any
) -> None:
    from apps.numbers import orders
    from apps.numbers.models import NumberStatus

    [number] = await database_sync_to_async(make_numbers)(1)
    number.owner, number.status = resource, NumberStatus.OWNED
    await database_sync_to_async(number.save)()
    await database_sync_to_async(orders.set_inbound_destination)(
        resource, number.number, "application"
    )
    caller = await connect()
    await caller.send({"type": "call.invite", "to": f"4:{number.number}"})
    await caller.until(type="call", event="stateChanged", state="Ringing")
    incoming = await incoming_call_event()
    assert incoming["to"]["kind"] == "phoneNumber"
    assert incoming["to"]["phoneNumber"]["value"] == number.number

    # a number with no destination takes no calls; any other number is a phone call, which
    # needs a caller id (tests/pstn/test_phone_calls.py)
    await database_sync_to_async(orders.set_inbound_destination)(resource, number.number, "")
    await caller.send({"type": "call.invite", "to": f"4:{number.number}"})
    assert (await caller.until(type="error"))["code"] == "BadRequest"
    await caller.send({"type": "call.invite", "to": "4:+14255550999"})
    assert (await caller.until(type="error"))["code"] == "Forbidden"


async def test_add_participant_rings_and_succeeds_when_its_media_joins(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    guest = await connect()
    added = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": guest.raw_id}, "operationContext": "add-guest"},
    )
    assert added.status_code == 202, added.content
    assert added.json()["participant"]["identifier"]["rawId"] == guest.raw_id
    ring = await guest.until(type="call", event="incomingCall")
    assert ring["callId"] == call_id
    await guest.send({"type": "call.accept", "callId": call_id})
    connected = await guest.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    await caller.until(type="call", event="participantsUpdated")
    await database_sync_to_async(services.media_joined)(call_id, guest.raw_id)
    event = await wait_for_callback(receiver, "AddParticipantSucceeded")
    assert event["data"]["participant"]["rawId"] == guest.raw_id
    assert event["data"]["operationContext"] == "add-guest"
    listed = await api(acs, "GET", f"{C}/{connection_id}/participants")
    assert {p["identifier"]["rawId"] for p in listed.json()["value"]} == {
        caller.raw_id,
        guest.raw_id,
    }
    # adding someone already in the call is refused and changes nothing
    again = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": guest.raw_id}},
    )
    assert again.status_code == 400

    # removing them takes them out; the caller stays
    removed = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:remove",
        {"participantToRemove": {"rawId": guest.raw_id}, "operationContext": "bye-guest"},
    )
    assert removed.status_code == 202
    gone = await guest.until(type="call", event="stateChanged", state="Disconnected")
    assert gone["callEndReason"]["code"] == 403
    event = await wait_for_callback(receiver, "RemoveParticipantSucceeded")
    assert event["data"]["operationContext"] == "bye-guest"
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"


async def test_an_invitation_declined_or_cancelled_fails_in_the_acs_way(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    _, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    declining, cancelled = await connect(), await connect()
    await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": declining.raw_id}},
    )
    await declining.until(type="call", event="incomingCall")
    await declining.send({"type": "call.decline", "callId": call_id})
    failed = await wait_for_callback(receiver, "AddParticipantFailed")
    assert failed["data"]["resultInformation"]["code"] == 603

    invited = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": cancelled.raw_id}},
    )
    invitation = invited.json()["invitationId"]
    await cancelled.until(type="call", event="incomingCall")
    answer = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:cancelAddParticipant",
        {"invitationId": invitation, "operationContext": "never-mind"},
    )
    assert answer.status_code == 202
    stopped = await cancelled.until(type="call", event="stateChanged", state="Disconnected")
    assert stopped["callEndReason"]["code"] == 487
    event = await wait_for_callback(receiver, "CancelAddParticipantSucceeded")
    assert event["data"]["invitationId"] == invitation
    assert "AddParticipantFailed" in types_of(receiver)
    assert types_of(receiver).count("AddParticipantFailed") == 1  # the cancel is not a failure too


async def test_a_declined_transfer_fails_and_the_application_stays(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    _, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    agent = await connect()
    answer = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:transferToParticipant",
        {"targetParticipant": {"rawId": agent.raw_id}, "operationContext": "to-agent"},
    )
    assert answer.status_code == 202 and answer.json()["operationContext"] == "to-agent"
    await agent.until(type="call", event="incomingCall")
    await agent.send({"type": "call.decline", "callId": call_id})
    failed = await wait_for_callback(receiver, "CallTransferFailed")
    assert failed["data"]["operationContext"] == "to-agent"
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"


async def test_mute_and_hold_reach_the_media_process(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    caller, connection_id, call_id = await answered_call(connect, resource, acs, receiver)
    listening = asyncio.ensure_future(media_message("mute"))
    await asyncio.sleep(0.1)
    muted = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:mute",
        {"targetParticipants": [{"rawId": caller.raw_id}]},
    )
    assert muted.status_code == 200
    message = await listening
    assert message["rawId"] == caller.raw_id and message["muted"] is True
    one = await api(acs, "GET", f"{C}/{connection_id}/participants/{quote_id(caller.raw_id)}")
    assert one.json()["isMuted"] is True
    for action, status in ((":hold", 200), (":unhold", 200)):
        answer = await api(
            acs,
            "POST",
            f"{C}/{connection_id}{action}",
            {"targetParticipant": {"rawId": caller.raw_id}},
        )
        assert answer.status_code == status
    stranger = await api(
        acs, "POST", f"{C}/{connection_id}:hold", {"targetParticipant": {"rawId": "8:acs:nobody"}}
    )
    assert stranger.status_code == 404
