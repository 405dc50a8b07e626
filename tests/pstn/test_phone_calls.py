"""Calls from a client to a phone number: the toll-fraud rules (caller id, routes, trunks,
limits) refuse before anything rings and change nothing; an allowed call rings, reaches the
media process as a dial, connects when the phone answers and ends with the phone's SIP code.
tests/e2e/test_phone_calls.py places the same call through Janus to sipp."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.calls import phones
from apps.calls.models import Call, CallParticipant
from apps.events.models import Event
from apps.numbers.models import Capability, NumberStatus
from apps.pstn.models import SipRoute, SipTrunk
from tests.automation.conftest import empty_media_channel, media_message  # noqa: F401
from tests.calls.conftest import close_thread_connections, connect  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+15550001111"


@pytest.fixture
def owned(resource: Any, make_numbers: Any) -> Any:
    """One of the resource's numbers, with outbound calling (`spare`: one it does not own)."""
    number, spare = make_numbers(2)
    number.owner, number.status = resource, NumberStatus.OWNED
    number.owned_calling = Capability.BOTH
    number.save()
    number.spare = spare
    return number


@pytest.fixture
def trunk(resource: Any) -> SipTrunk:
    """An enabled trunk and a route of every +1 number to it."""
    trunk = SipTrunk.objects.create(
        resource=resource,
        fqdn="sbc.example.com",
        signaling_port=5060,
        enabled=True,
        address="127.0.0.1",
    )
    SipRoute.objects.create(
        resource=resource,
        position=0,
        name="us",
        number_pattern=r"^\+1\d{10}$",
        trunks=[trunk.fqdn],
    )
    return trunk


async def invite(socket: Any, **fields: Any) -> dict[str, Any]:
    await socket.send({"type": "call.invite", "to": f"4:{PHONE}", **fields})
    while True:  # the answer to the invite, past any other frame
        frame = await socket.next()
        if frame["type"] in ("call.invited", "error"):
            return frame


async def calls() -> int:
    return await database_sync_to_async(Call.objects.count)()


async def test_a_call_to_a_phone_rings_dials_connects_and_ends_with_the_phones_code(
    connect: Any,  # noqa: F811
    owned: Any,
    trunk: SipTrunk,
) -> None:
    # given a client calling a phone, shown as one of its resource's numbers
    caller = await connect()
    dialing = asyncio.ensure_future(media_message("dial"))  # Redis keeps nothing unheard
    await asyncio.sleep(0.1)
    invited = await invite(caller, alternateCallerId={"phoneNumber": owned.number})
    assert invited["type"] == "call.invited", invited
    call_id = invited["callId"]

    # then it rings, and the media process is asked to dial through the trunk
    await caller.until(type="call", event="stateChanged", state="Ringing")
    dial = await dialing
    assert dial == {
        "type": "dial",
        "call": call_id,
        "rawId": f"4:{PHONE}",
        "callerId": owned.number,
        "trunks": ["sbc.example.com"],
    }
    call = await database_sync_to_async(Call.objects.get)(pk=call_id)
    assert call.topology == "bridge" and call.kind == "oneToOne"

    # when the phone answers, the caller connects to the bridge with the phone in the roster
    await database_sync_to_async(phones.phone_placed)(call_id, f"4:{PHONE}", trunk.fqdn, "abc@x")
    await database_sync_to_async(phones.phone_answered)(call_id, f"4:{PHONE}")
    connected = await caller.until(type="call", event="stateChanged", state="Connected")
    assert connected["topology"] == "bridge"
    assert [p["rawId"] for p in connected["participants"]] == [f"4:{PHONE}"]
    assert connected["participants"][0]["identifier"]["kind"] == "phoneNumber"

    # when the phone hangs up, the call ends normally, the leg keeps its trunk and SIP call id
    await database_sync_to_async(phones.phone_ended)(
        call_id, f"4:{PHONE}", 0, "The phone hung up.", 560000
    )
    ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"] == {"code": 0, "subCode": 560000}
    [call_ended] = await database_sync_to_async(
        lambda: list(Event.objects.filter(event_type__endswith="CallEnded"))
    )()
    assert call_ended.data["reason"] == {
        "code": 0,
        "subCode": 560000,
        "message": "The phone hung up.",
    }
    leg = await database_sync_to_async(CallParticipant.objects.get)(raw_id=f"4:{PHONE}")
    assert (leg.sip_trunk, leg.sip_call_id, leg.state) == ("sbc.example.com", "abc@x", "left")


@pytest.mark.parametrize("code", [486, 480, 603])
async def test_a_phone_that_does_not_answer_ends_the_call_with_its_sip_code(
    connect: Any,  # noqa: F811
    owned: Any,
    trunk: SipTrunk,
    code: int,
) -> None:
    caller = await connect()
    invited = await invite(caller, alternateCallerId=owned.number)
    # (the trunk's status, as apps/automation/sip.py marks it: 560000 + status)
    await database_sync_to_async(phones.phone_ended)(
        invited["callId"], f"4:{PHONE}", code, "The phone is busy.", 560000 + code
    )
    ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"] == {"code": code, "subCode": 560000 + code}
    call = await database_sync_to_async(Call.objects.get)(pk=invited["callId"])
    assert (call.end_code, call.end_subcode) == (code, 560000 + code)


async def test_calls_that_break_the_rules_are_refused_and_change_nothing(
    connect: Any,  # noqa: F811
    owned: Any,
    trunk: SipTrunk,
    settings: Any,
) -> None:
    caller = await connect()

    async def refused(expected_code: str, **fields: Any) -> dict[str, Any]:
        before = await calls()
        reply = await invite(caller, **fields)
        assert reply["type"] == "error" and reply["code"] == expected_code, reply
        assert await calls() == before
        return reply

    # no caller id, or one the resource does not own, or one without outbound calling
    assert "caller id" in (await refused("Forbidden"))["message"]
    await refused("Forbidden", alternateCallerId="+14255550199")
    await refused("Forbidden", alternateCallerId=owned.spare.number)
    owned.owned_calling = Capability.INBOUND
    await database_sync_to_async(owned.save)()
    await refused("Forbidden", alternateCallerId=owned.number)
    owned.owned_calling = Capability.OUTBOUND
    await database_sync_to_async(owned.save)()

    # no route to the number, a disabled trunk, a prefix the trunk may not dial, a full trunk
    await caller.send(
        {"type": "call.invite", "to": "4:+445550001111", "alternateCallerId": owned.number}
    )
    assert (await caller.until(type="error"))["code"] == "NoRouteToNumber"
    for change in (
        {"enabled": False},
        {"outbound_prefixes": ["+1800"]},
        {"max_concurrent_calls": 0},
    ):
        await database_sync_to_async(SipTrunk.objects.filter(pk=trunk.pk).update)(**change)
        await refused("NoRouteToNumber", alternateCallerId=owned.number)
        await database_sync_to_async(SipTrunk.objects.filter(pk=trunk.pk).update)(
            enabled=True, outbound_prefixes=[], max_concurrent_calls=None
        )

    # the resource's limit of phone calls at once
    settings.PSTN_MAX_CALLS = 1
    first = await invite(caller, alternateCallerId=owned.number)
    assert first["type"] == "call.invited"
    await refused("TooManyCalls", alternateCallerId=owned.number)

    # and a malformed number is refused too
    await caller.send({"type": "call.invite", "to": "4:+1", "alternateCallerId": owned.number})
    assert (await caller.until(type="error"))["code"] in ("NoRouteToNumber", "InvalidPhoneNumber")
