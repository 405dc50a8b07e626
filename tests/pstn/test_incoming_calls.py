"""Calls from phones (apps/calls/incoming_phones.py, apps/pstn/inbound.py): who may call in,
to which number, and where the call goes. A refused call makes no call row; an identity's
clients ring and the answer asks the media process to accept the phone; a decline refuses it
with 603; the application hears IncomingCall. tests/e2e/test_incoming_phone_calls.py takes
the same calls through Kamailio, Janus and sipp."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import IncomingCalls
from apps.calls import incoming_phones, signaling
from apps.calls.exceptions import RoomNotFound
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
    CallTopology,
    Room,
    RoomRole,
)
from apps.core.errors import ApiError
from apps.numbers import orders
from apps.numbers.models import Capability, NumberStatus, PhoneNumber
from apps.pstn.inbound import InboundRefused
from apps.pstn.models import SipTrunk
from tests.automation.conftest import (  # noqa: F401 (fixtures)
    empty_media_channel,
    incoming_call_event,
    media_message,
)
from tests.calls.conftest import close_thread_connections, connect  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

CARRIER = "198.51.100.7"  # the trunk's signaling address, as the SIP edge saw it
CALLER = "+15559990000"


@pytest.fixture
def owned(resource: Any, make_numbers: Any) -> Any:
    """One of the resource's numbers, taking calls both ways (`spare`: one nobody owns)."""
    number, spare = make_numbers(2)
    number.owner, number.status = resource, NumberStatus.OWNED
    number.owned_calling = Capability.BOTH
    number.save()
    number.spare = spare
    return number


@pytest.fixture
def trunk(resource: Any) -> SipTrunk:
    return SipTrunk.objects.create(
        resource=resource,
        fqdn="sbc.example.com",
        signaling_port=5060,
        enabled=True,
        allowed_networks=["198.51.100.0/24"],
    )


def call_in(number: str, source: str = CARRIER) -> Call:
    return incoming_phones.call_in(source, CALLER, number, "abc@carrier")


def refusal(number: str, source: str = CARRIER) -> int:
    before = Call.objects.count()
    with pytest.raises(InboundRefused) as refused:
        call_in(number, source)
    assert Call.objects.count() == before  # a refused call changes nothing
    return refused.value.code


async def test_a_call_to_an_identity_rings_it_and_its_answer_accepts_the_phone(
    connect: Any,  # noqa: F811
    resource: Any,
    owned: Any,
    trunk: SipTrunk,
) -> None:
    # given a number whose calls ring an identity, whose client is connected
    callee = await connect()
    owned.inbound_destination = callee.raw_id
    await database_sync_to_async(owned.save)()

    # when a phone calls it through the trunk
    call = await database_sync_to_async(call_in)(owned.number)

    # then the identity's client rings, from a phone number
    ringing = await callee.until(type="call", event="incomingCall")
    assert ringing["callId"] == str(call.pk)
    assert ringing["caller"] == {
        "kind": "phoneNumber",
        "phoneNumber": CALLER,
        "rawId": f"4:{CALLER}",
    }
    assert (call.topology, call.kind, call.caller_raw_id) == ("bridge", "oneToOne", f"4:{CALLER}")
    phone = await database_sync_to_async(CallParticipant.objects.get)(call=call, is_caller=True)
    assert (phone.raw_id, phone.sip_trunk, phone.sip_call_id) == (
        f"4:{CALLER}",
        "sbc.example.com",
        "abc@carrier",
    )

    # when it answers, the media process is asked to accept the phone's INVITE
    answering = asyncio.ensure_future(media_message("answer_phone"))  # Redis keeps nothing unheard
    await asyncio.sleep(0.1)
    await callee.send({"type": "call.accept", "callId": str(call.pk)})
    connected = await callee.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    assert [p["rawId"] for p in connected["participants"]] == [f"4:{CALLER}"]
    assert await answering == {"type": "answer_phone", "call": str(call.pk), "rawId": f"4:{CALLER}"}


async def test_a_declined_call_refuses_the_phone_with_603(
    connect: Any,  # noqa: F811
    owned: Any,
    trunk: SipTrunk,
) -> None:
    callee = await connect()
    owned.inbound_destination = callee.raw_id
    await database_sync_to_async(owned.save)()
    call = await database_sync_to_async(call_in)(owned.number)
    await callee.until(type="call", event="incomingCall")

    ending = asyncio.ensure_future(media_message("end"))
    await asyncio.sleep(0.1)
    await callee.send({"type": "call.decline", "callId": str(call.pk)})
    await ending
    assert await database_sync_to_async(incoming_phones.answer_code)(str(call.pk)) == 603
    assert await database_sync_to_async(incoming_phones.ended_calls)([str(call.pk)]) == [
        str(call.pk)
    ]


async def test_a_call_to_the_application_raises_incoming_call(
    resource: Any,
    owned: Any,
    trunk: SipTrunk,
) -> None:
    owned.inbound_destination = "application"
    await database_sync_to_async(owned.save)()
    listening = asyncio.ensure_future(incoming_call_event())
    await asyncio.sleep(0.1)
    call = await database_sync_to_async(call_in)(owned.number)
    event = await listening
    assert event["from"]["rawId"] == f"4:{CALLER}"
    assert event["to"]["rawId"] == f"4:{owned.number}"
    assert event["serverCallId"] == str(call.pk)
    assert call.kind == "group"  # the application may add others to it


def test_unanswered_calls_refuse_the_phone_with_a_sip_status(resource: Any, owned: Any) -> None:
    call = Call.objects.create(
        resource=resource, caller_raw_id=f"4:{CALLER}", created_at=timezone.now()
    )
    for end_code, status in ((None, 480), (408, 480), (486, 486), (603, 603), (403, 403), (0, 480)):
        Call.objects.filter(pk=call.pk).update(end_code=end_code)
        assert incoming_phones.answer_code(str(call.pk)) == status


def test_calls_are_refused_unless_a_trunk_owns_the_source_and_its_resource_the_number(
    resource: Any, owned: Any, trunk: SipTrunk, settings: Any
) -> None:
    owned.inbound_destination = "application"
    owned.save()

    # a source no enabled trunk allows, whatever number it calls: 403
    assert refusal(owned.number, source="203.0.113.9") == 403
    assert refusal(owned.number, source="not an address") == 403
    SipTrunk.objects.filter(pk=trunk.pk).update(enabled=False)
    assert refusal(owned.number) == 403
    SipTrunk.objects.filter(pk=trunk.pk).update(enabled=True)

    # a number nobody here owns: 404
    assert refusal(owned.spare.number) == 404

    # a number without inbound calling: 403; with nowhere to go: 480
    owned.owned_calling = Capability.OUTBOUND
    owned.save()
    assert refusal(owned.number) == 403
    owned.owned_calling = Capability.BOTH
    owned.inbound_destination = ""
    owned.save()
    assert refusal(owned.number) == 480
    owned.inbound_destination = "https://example.com/sms-hook"  # an SMS webhook takes no calls
    owned.save()
    assert refusal(owned.number) == 480

    # a destination identity that was deleted since: 480
    identity, _ = accounts.create_identity(resource)
    owned.inbound_destination = identity.raw_id
    owned.save()
    identity.delete()
    assert refusal(owned.number) == 480

    # the resource's phone calls at once, and the trunk's own limit: 486
    owned.inbound_destination = "application"
    owned.save()
    settings.PSTN_MAX_CALLS = 1
    call_in(owned.number)
    assert refusal(owned.number) == 486
    settings.PSTN_MAX_CALLS = 10
    SipTrunk.objects.filter(pk=trunk.pk).update(max_concurrent_calls=1)
    assert refusal(owned.number) == 486


def test_a_trunk_never_reaches_another_resources_number(
    resource: Any, owner: Any, owned: Any, trunk: SipTrunk
) -> None:
    # given another tenant whose number takes calls, through its own trunk elsewhere
    other = accounts.create_resource("Fabrikam", owner=owner)
    owned.spare.owner, owned.spare.status = other, NumberStatus.OWNED
    owned.spare.owned_calling = Capability.BOTH
    owned.spare.inbound_destination = "application"
    owned.spare.save()
    SipTrunk.objects.create(
        resource=other,
        fqdn="sbc.fabrikam.com",
        signaling_port=5060,
        enabled=True,
        allowed_networks=["192.0.2.0/24"],
    )
    # then this resource's trunk cannot call it
    assert refusal(owned.spare.number) == 404
    # and a carrier both tenants use reaches each one's own numbers through each one's trunk
    SipTrunk.objects.filter(fqdn="sbc.fabrikam.com").update(allowed_networks=["198.51.100.0/24"])
    call = call_in(owned.spare.number)
    assert call.resource_id == other.pk
    assert call.participants.get(is_caller=True).sip_trunk == "sbc.fabrikam.com"


def test_an_identity_whose_calls_go_to_the_application_hands_the_call_on(
    resource: Any, owned: Any, trunk: SipTrunk
) -> None:
    identity, _ = accounts.create_identity(resource)
    identity.incoming_calls = IncomingCalls.APPLICATION
    identity.save()
    owned.inbound_destination = identity.raw_id
    owned.save()
    call = call_in(owned.number)
    assert call.kind == "group"
    assert not call.participants.filter(raw_id=identity.raw_id).exists()  # nothing rang


# --- numbers whose calls join a group call or a room -----------------------------------------
GROUP = "8b7c8a58-5c1e-4c49-9f0e-0d6a4f1d2e3a"
PHONE = f"4:{CALLER}"


@pytest.fixture
def on_sfu(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Group calls on the SFU; what reaches the clients' sockets and the media process."""
    settings.JANUS_URL = "ws://127.0.0.1:8188"
    seen: dict[str, list[Any]] = {"frames": [], "answering": []}
    monkeypatch.setattr("apps.calls.signaling._push", seen["frames"].extend)
    monkeypatch.setattr(
        "apps.calls.signals.phone_answering.send",
        lambda sender, call, raw_id: seen["answering"].append((str(call.pk), raw_id)),
    )
    return seen


def browser_in(resource: Any, **lookup: Any) -> tuple[Any, Call]:
    """An identity that joined the live call of a group id or room."""
    identity, _ = accounts.create_identity(resource)
    principal = accounts.TokenPrincipal(identity=identity, scopes=frozenset(["voip"]))
    leg = signaling.join(principal, lookup, "socket-1")
    return identity, leg.call


def test_a_phone_calling_a_group_number_joins_its_live_call_at_once(
    resource: Any, owned: Any, trunk: SipTrunk, on_sfu: dict[str, list[Any]]
) -> None:
    # given a number whose calls join a group call, and a browser in that call
    orders.set_inbound_destination(resource, owned.number, f"group:{GROUP.upper()}")
    browser, live = browser_in(resource, groupId=GROUP)
    on_sfu["frames"].clear()

    # when a phone calls the number
    call = call_in(owned.number)

    # then it is in that call, answered at once, as an Attendee
    assert call.pk == live.pk
    leg = CallParticipant.objects.get(call=live, raw_id=PHONE)
    assert (leg.state, leg.role, leg.sip_trunk, leg.sip_call_id) == (
        CallLegState.CONNECTED,
        RoomRole.ATTENDEE,
        trunk.fqdn,
        "abc@carrier",
    )
    assert on_sfu["answering"] == [(str(live.pk), PHONE)]
    # and the browser sees it join, as a phone number
    [(to, frame)] = on_sfu["frames"]
    assert to == browser.raw_id and frame["event"] == "participantsUpdated"
    assert [(p["rawId"], p["identifier"]["kind"]) for p in frame["added"]] == [
        (PHONE, "phoneNumber")
    ]
    # and the same caller calling again while in the call is busy
    assert refusal(owned.number) == 486


def test_a_phone_starts_the_group_call_and_browsers_find_it_there(
    resource: Any, owned: Any, trunk: SipTrunk, on_sfu: dict[str, list[Any]]
) -> None:
    orders.set_inbound_destination(resource, owned.number, f"group:{GROUP}")

    call = call_in(owned.number)

    assert (call.kind, call.topology, str(call.group_id), call.caller_raw_id, call.state) == (
        CallKind.GROUP,
        CallTopology.SFU,
        GROUP,
        PHONE,
        CallState.CONNECTED,
    )
    _, joined = browser_in(resource, groupId=GROUP)
    assert joined.pk == call.pk
    assert PHONE in [entry["rawId"] for entry in signaling.roster(call)]


def test_a_phone_joins_a_rooms_call_while_the_room_is_open(
    resource: Any, owned: Any, trunk: SipTrunk, on_sfu: dict[str, list[Any]], settings: Any
) -> None:
    now = timezone.now()
    room = Room.objects.create(
        resource=resource,
        created_at=now,
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(hours=1),
    )
    orders.set_inbound_destination(resource, owned.number, f"room:{room.pk}")

    call = call_in(owned.number)
    assert (call.kind, call.room_id) == (CallKind.ROOM, room.pk)
    signaling.end_call(call, 0, "done", by=PHONE)

    # a room past its validity, a deleted room, and group calls on a mesh answer 480
    Room.objects.filter(pk=room.pk).update(valid_until=now)
    assert refusal(owned.number) == 480
    settings.JANUS_URL = ""
    orders.set_inbound_destination(resource, owned.number, f"group:{GROUP}")
    assert refusal(owned.number) == 480
    settings.JANUS_URL = "ws://127.0.0.1:8188"
    Room.objects.filter(pk=room.pk).delete()
    PhoneNumber.objects.filter(pk=owned.pk).update(inbound_destination=f"room:{room.pk}")
    assert refusal(owned.number) == 480


def test_group_and_room_destinations_are_checked_when_set(
    resource: Any, owned: Any, other_resource: Any
) -> None:
    other_room = Room.objects.create(
        resource=other_resource,
        created_at=timezone.now(),
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(hours=1),
    )
    for bad, refused in (
        ("group:not-a-uuid", ApiError),
        (f"room:{other_room.pk}", RoomNotFound),  # another resource's room is not found
        ("room:nope", RoomNotFound),
    ):
        with pytest.raises(refused):
            orders.set_inbound_destination(resource, owned.number, bad)
        assert PhoneNumber.objects.get(pk=owned.pk).inbound_destination == ""
    assert (
        orders.set_inbound_destination(resource, owned.number, f"group:{GROUP.upper()}")
    ).inbound_destination == f"group:{GROUP}"
