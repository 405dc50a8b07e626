"""Call Automation calls to phone numbers: create_call and add_participant with phone targets go
out through the resource's SIP routes and trunks under the toll-fraud rules of calls from
browsers (refusals in the ACS shape, changing nothing); the phone's progress, reported by the
media process, becomes the callbacks ACS sends (CallConnected, AddParticipantSucceeded / Failed
with the SIP status, CreateCallFailed, CallDisconnected). The media process's part is played by
the test, as in tests/pstn/test_phone_calls.py: it hears the `dial` message and reports through
apps/calls/phones.py. tests/e2e/test_automation_phone.py places the same calls through Janus to
sipp."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.automation import services
from apps.automation.media_steps import _ring_timeouts
from apps.automation.models import Callback, CallConnection
from apps.calls import phones
from apps.calls.models import Call, CallParticipant
from apps.numbers.models import Capability, NumberStatus
from apps.pstn.models import SipRoute, SipTrunk
from tests.automation.conftest import api, callbacks_of, media_message, types_of, wait_for_callback
from tests.conftest import AcsClient, quote_id
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

C = "/calling/callConnections"
PHONE, OTHER_PHONE = "+15550001111", "+15550002222"
FQDN = "sbc.example.com"


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
        resource=resource, fqdn=FQDN, signaling_port=5060, enabled=True, address="127.0.0.1"
    )
    SipRoute.objects.create(
        resource=resource, position=0, name="us", number_pattern=r"^\+1\d{10}$", trunks=[FQDN]
    )
    return trunk


def phone_model(number: str) -> dict[str, Any]:
    """A PhoneNumberIdentifier as the SDK sends it."""
    return {"rawId": f"4:{number}", "kind": "phoneNumber", "phoneNumber": {"value": number}}


def create_body(receiver: Receiver, caller_id: str, *, to: str = PHONE) -> dict[str, Any]:
    return {
        "targets": [phone_model(to)],
        "sourceCallerIdNumber": {"value": caller_id},
        "callbackUri": receiver.url,
        "operationContext": "outbound",
    }


async def create_phone_call(
    acs: AcsClient, receiver: Receiver, caller_id: str
) -> tuple[str, dict[str, Any]]:
    """A call the application creates to PHONE: (connection id, the media process's dial)."""
    dialing = asyncio.ensure_future(media_message("dial"))  # Redis keeps nothing unheard
    await asyncio.sleep(0.1)
    created = await api(acs, "POST", C, create_body(receiver, caller_id))
    assert created.status_code == 201, created.content
    return created.json()["callConnectionId"], await dialing


async def connected_phone_call(
    acs: AcsClient, receiver: Receiver, caller_id: str
) -> tuple[str, str]:
    """A call to PHONE that the phone answered: (connection id, call id)."""
    connection_id, dial = await create_phone_call(acs, receiver, caller_id)
    await database_sync_to_async(phones.phone_placed)(dial["call"], dial["rawId"], FQDN, "1@sbc")
    await database_sync_to_async(phones.phone_answered)(dial["call"], dial["rawId"])
    await wait_for_callback(receiver, "ParticipantsUpdated")
    return connection_id, dial["call"]


async def add_phone(
    acs: AcsClient, connection_id: str, caller_id: str, to: str = OTHER_PHONE
) -> tuple[str, dict[str, Any]]:
    """add_participant of phone `to`: (invitation id, the media process's dial)."""
    dialing = asyncio.ensure_future(media_message("dial"))
    await asyncio.sleep(0.1)
    added = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {
            "participantToAdd": phone_model(to),
            "sourceCallerIdNumber": {"value": caller_id},
            "operationContext": "add-phone",
        },
    )
    assert added.status_code == 202, added.content
    assert added.json()["participant"]["identifier"]["kind"] == "phoneNumber"
    return added.json()["invitationId"], await dialing


async def count(model: Any, **filters: Any) -> int:
    return await database_sync_to_async(model.objects.filter(**filters).count)()


async def leg_of(call_id: str, number: str) -> CallParticipant:
    return await database_sync_to_async(CallParticipant.objects.get)(
        call_id=call_id, raw_id=f"4:{number}"
    )


async def test_a_call_created_to_a_phone_is_dialed_through_the_trunk_and_connects_when_it_answers(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    # given the application creates a call to a phone, shown as one of its numbers
    connection_id, dial = await create_phone_call(acs, receiver, owned.number)

    # then the media process is asked to dial it through the route's trunk
    assert dial == {
        "type": "dial",
        "call": dial["call"],
        "rawId": f"4:{PHONE}",
        "callerId": owned.number,
        "trunks": [FQDN],
    }
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connecting"
    assert got.json()["targets"] == [phone_model(PHONE)]

    # when the phone answers, the application hears CallConnected, then who is in the call
    await database_sync_to_async(phones.phone_placed)(dial["call"], f"4:{PHONE}", FQDN, "1@sbc")
    await database_sync_to_async(phones.phone_answered)(dial["call"], f"4:{PHONE}")
    updated = await wait_for_callback(receiver, "ParticipantsUpdated")
    assert types_of(receiver) == ["CallConnected", "ParticipantsUpdated"]
    assert callbacks_of(receiver)[0]["data"]["operationContext"] == "outbound"
    assert updated["data"]["participants"] == [
        {"identifier": phone_model(PHONE), "isMuted": False, "isOnHold": False}
    ]

    # and the phone is a participant, in the ACS shape
    listed = await api(acs, "GET", f"{C}/{connection_id}/participants")
    assert [p["identifier"] for p in listed.json()["value"]] == [phone_model(PHONE)]
    one = await api(acs, "GET", f"{C}/{connection_id}/participants/{quote_id(f'4:{PHONE}')}")
    assert one.status_code == 200 and one.json()["identifier"]["rawId"] == f"4:{PHONE}"

    # when the phone hangs up, the call is over for the application too
    await database_sync_to_async(phones.phone_ended)(dial["call"], f"4:{PHONE}", 200, "")
    disconnected = await wait_for_callback(receiver, "CallDisconnected")
    assert disconnected["data"]["resultInformation"]["code"] == 200
    call = await database_sync_to_async(Call.objects.get)(pk=dial["call"])
    assert call.ended_at is not None and call.end_code == 0
    leg = await leg_of(dial["call"], PHONE)
    assert (leg.state, leg.sip_trunk, leg.sip_call_id) == ("left", FQDN, "1@sbc")


@pytest.mark.parametrize("code", [486, 480, 603])
async def test_a_created_call_that_the_phone_does_not_answer_fails_with_its_sip_status(
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    owned: Any,
    trunk: SipTrunk,
    code: int,
) -> None:
    connection_id, dial = await create_phone_call(acs, receiver, owned.number)
    ending = asyncio.ensure_future(media_message("end"))
    await asyncio.sleep(0.1)

    await database_sync_to_async(phones.phone_ended)(dial["call"], f"4:{PHONE}", code, "")

    await wait_for_callback(receiver, "CallDisconnected")
    assert types_of(receiver) == ["CreateCallFailed", "CallDisconnected"]
    failed = callbacks_of(receiver)[0]["data"]
    assert failed["callConnectionId"] == connection_id
    assert failed["resultInformation"]["code"] == code
    assert failed["resultInformation"]["subCode"] == services.TRUNK_SUBCODE + code
    assert failed["resultInformation"]["message"] == services.PHONE_FAILURES[code]
    assert failed["operationContext"] == "outbound"
    call = await database_sync_to_async(Call.objects.get)(pk=dial["call"])
    assert call.end_code == code
    assert (await ending)["call"] == dial["call"]  # the media process lets go of the room
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "disconnected"


async def test_a_created_call_nobody_answers_in_time_fails_with_408(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    _, dial = await create_phone_call(acs, receiver, owned.number)
    await database_sync_to_async(Call.objects.filter(pk=dial["call"]).update)(
        created_at=timezone.now() - timedelta(hours=1)
    )

    await database_sync_to_async(_ring_timeouts)()  # the media process's round

    await wait_for_callback(receiver, "CallDisconnected")
    assert types_of(receiver) == ["CreateCallFailed", "CallDisconnected"]
    assert callbacks_of(receiver)[0]["data"]["resultInformation"]["code"] == 408


async def test_the_application_hanging_up_a_ringing_phone_call_is_no_failure(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    connection_id, dial = await create_phone_call(acs, receiver, owned.number)
    ending = asyncio.ensure_future(media_message("end"))
    await asyncio.sleep(0.1)
    assert (await api(acs, "DELETE", f"{C}/{connection_id}")).status_code == 204
    await wait_for_callback(receiver, "CallDisconnected")
    assert types_of(receiver) == ["CallDisconnected"]
    # the media process ends the call's room and hangs its phones up
    assert (await ending)["call"] == dial["call"]


async def test_a_phone_added_to_the_call_succeeds_when_it_answers_and_leaves_when_removed(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    # given a call with a phone in it
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)

    # when the application adds another phone
    invitation, dial = await add_phone(acs, connection_id, owned.number)
    assert dial["rawId"] == f"4:{OTHER_PHONE}" and dial["call"] == call_id
    assert dial["callerId"] == owned.number
    leg = await leg_of(call_id, OTHER_PHONE)
    assert str(leg.pk) == invitation and leg.state == "ringing"

    # then, once it answers, AddParticipantSucceeded and both phones in the call
    await database_sync_to_async(phones.phone_answered)(call_id, f"4:{OTHER_PHONE}")
    added = await wait_for_callback(receiver, "AddParticipantSucceeded")
    assert added["data"]["participant"] == phone_model(OTHER_PHONE)
    assert added["data"]["operationContext"] == "add-phone"
    listed = await api(acs, "GET", f"{C}/{connection_id}/participants")
    assert [p["identifier"]["rawId"] for p in listed.json()["value"]] == [
        f"4:{PHONE}",
        f"4:{OTHER_PHONE}",
    ]

    # when it is removed, its leg leaves the bridge (the media process ends its SIP leg)
    leaving = asyncio.ensure_future(media_message("leave"))
    await asyncio.sleep(0.1)
    removed = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:remove",
        {"participantToRemove": phone_model(OTHER_PHONE), "operationContext": "bye"},
    )
    assert removed.status_code == 202
    assert (await leaving) == {"type": "leave", "call": call_id, "rawId": f"4:{OTHER_PHONE}"}
    event = await wait_for_callback(receiver, "RemoveParticipantSucceeded")
    assert event["data"]["participant"] == phone_model(OTHER_PHONE)
    assert (await leg_of(call_id, OTHER_PHONE)).state == "left"
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"

    # and the phone can be added again later, on its old leg
    again, _ = await add_phone(acs, connection_id, owned.number)
    assert again == invitation


@pytest.mark.parametrize("code", [486, 480, 408, 603])
async def test_a_phone_that_does_not_answer_fails_the_add_with_its_sip_status(
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    owned: Any,
    trunk: SipTrunk,
    code: int,
) -> None:
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)
    await add_phone(acs, connection_id, owned.number)

    await database_sync_to_async(phones.phone_ended)(call_id, f"4:{OTHER_PHONE}", code, "")

    failed = await wait_for_callback(receiver, "AddParticipantFailed")
    assert failed["data"]["participant"] == phone_model(OTHER_PHONE)
    assert failed["data"]["operationContext"] == "add-phone"
    assert failed["data"]["resultInformation"] == {
        "code": code,
        "subCode": services.TRUNK_SUBCODE + code,
        "message": services.PHONE_FAILURES[code],
    }
    # the call goes on with the first phone
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"
    listed = await api(acs, "GET", f"{C}/{connection_id}/participants")
    assert [p["identifier"]["rawId"] for p in listed.json()["value"]] == [f"4:{PHONE}"]
    assert (await leg_of(call_id, OTHER_PHONE)).state == "declined"


async def test_cancelling_the_add_of_a_ringing_phone_hangs_its_leg_up(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)
    invitation, _ = await add_phone(acs, connection_id, owned.number)

    # when the application cancels the invitation while the phone rings
    leaving = asyncio.ensure_future(media_message("leave"))
    await asyncio.sleep(0.1)
    cancelled = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:cancelAddParticipant",
        {"invitationId": invitation, "operationContext": "never-mind"},
    )

    # then the media process is told to drop the phone's leg (it cancels the INVITE)
    assert cancelled.status_code == 202
    assert cancelled.json()["invitationId"] == invitation
    assert (await leaving) == {"type": "leave", "call": call_id, "rawId": f"4:{OTHER_PHONE}"}
    event = await wait_for_callback(receiver, "CancelAddParticipantSucceeded")
    assert event["data"]["invitationId"] == invitation
    assert event["data"]["operationContext"] == "never-mind"
    assert (await leg_of(call_id, OTHER_PHONE)).state == "declined"

    # and a phone that answers anyway (the INVITE crossed the cancel) is sent out of the
    # bridge, not added; its end changes nothing
    late = asyncio.ensure_future(media_message("leave"))
    await asyncio.sleep(0.1)
    await database_sync_to_async(phones.phone_answered)(call_id, f"4:{OTHER_PHONE}")
    assert (await late)["rawId"] == f"4:{OTHER_PHONE}"
    await database_sync_to_async(phones.phone_ended)(call_id, f"4:{OTHER_PHONE}", 200, "")
    placed = await database_sync_to_async(phones.phone_placed)(
        call_id, f"4:{OTHER_PHONE}", FQDN, "2@sbc"
    )
    assert placed is False  # the media process hangs up a leg no longer wanted
    await asyncio.sleep(0.3)
    assert "AddParticipantSucceeded" not in types_of(receiver)
    assert "AddParticipantFailed" not in types_of(receiver)
    assert (await leg_of(call_id, OTHER_PHONE)).state == "declined"
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["callConnectionState"] == "connected"


# --- Refusals ----------------------------------------------------------------------------------
def _no_caller_id(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    del body["sourceCallerIdNumber"]


def _caller_id_as_text(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["sourceCallerIdNumber"] = owned.number


def _caller_id_not_a_number(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["sourceCallerIdNumber"] = {"value": 14255550100}


def _caller_id_not_owned(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["sourceCallerIdNumber"] = {"value": owned.spare.number}


def _caller_id_unknown(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["sourceCallerIdNumber"] = {"value": "+14255550199"}


def _caller_id_inbound_only(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    owned.owned_calling = Capability.INBOUND
    owned.save()


def _no_route(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["targets"] = [phone_model("+445550001111")]


def _not_e164(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    body["targets"] = [{"rawId": "4:5550001111"}]


def _trunk_disabled(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    SipTrunk.objects.filter(pk=trunk.pk).update(enabled=False)


def _prefix_not_allowed(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    SipTrunk.objects.filter(pk=trunk.pk).update(outbound_prefixes=["+1800"])


def _trunk_full(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    SipTrunk.objects.filter(pk=trunk.pk).update(max_concurrent_calls=0)


def _no_routes_at_all(body: dict[str, Any], owned: Any, trunk: SipTrunk) -> None:
    SipRoute.objects.all().delete()


@pytest.mark.parametrize(
    "change, status, code, target",
    [
        (_no_caller_id, 400, "BadRequest", "sourceCallerIdNumber"),
        (_caller_id_as_text, 400, "BadRequest", "sourceCallerIdNumber"),
        (_caller_id_not_a_number, 400, "BadRequest", "sourceCallerIdNumber"),
        (_caller_id_not_owned, 403, "Forbidden", "sourceCallerIdNumber"),
        (_caller_id_unknown, 403, "Forbidden", "sourceCallerIdNumber"),
        (_caller_id_inbound_only, 403, "Forbidden", "sourceCallerIdNumber"),
        (_no_route, 400, "NoRouteToNumber", "targets"),
        (_not_e164, 400, "NoRouteToNumber", "targets"),
        (_trunk_disabled, 400, "NoRouteToNumber", "targets"),
        (_prefix_not_allowed, 400, "NoRouteToNumber", "targets"),
        (_trunk_full, 400, "NoRouteToNumber", "targets"),
        (_no_routes_at_all, 400, "NoRouteToNumber", "targets"),
    ],
)
async def test_create_calls_to_phones_that_break_the_rules_are_refused_and_change_nothing(
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    owned: Any,
    trunk: SipTrunk,
    change: Any,
    status: int,
    code: str,
    target: str,
) -> None:
    # given a request that breaks one rule
    body = create_body(receiver, owned.number)
    await database_sync_to_async(change)(body, owned, trunk)
    dialing = asyncio.ensure_future(media_message("dial", timeout=0.5))
    await asyncio.sleep(0.1)

    # when the application creates the call
    created = await api(acs, "POST", C, body)

    # then it is refused in the ACS shape, and nothing was created, dialed or called back
    assert created.status_code == status, created.content
    error = created.json()["error"]
    assert (error["code"], error["target"]) == (code, target)
    assert error["message"]
    for model in (Call, CallConnection, CallParticipant, Callback):
        assert await count(model) == 0, model
    with pytest.raises(TimeoutError):
        await dialing
    assert receiver.received == []


async def test_the_resources_limit_of_phone_calls_counts_the_applications_calls_too(
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    owned: Any,
    trunk: SipTrunk,
    settings: Any,
) -> None:
    # given a resource allowed two phone legs at once, with one call to a phone ringing
    settings.PSTN_MAX_CALLS = 2
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)
    await add_phone(acs, connection_id, owned.number)

    # then a third phone leg is refused, whether created or added, and nothing changes
    created = await api(acs, "POST", C, create_body(receiver, owned.number, to="+15550003333"))
    assert created.status_code == 429 and created.json()["error"]["code"] == "TooManyCalls"
    added = await api(
        acs,
        "POST",
        f"{C}/{connection_id}/participants:add",
        {
            "participantToAdd": phone_model("+15550003333"),
            "sourceCallerIdNumber": {"value": owned.number},
        },
    )
    assert added.status_code == 429 and added.json()["error"]["code"] == "TooManyCalls"
    assert await count(Call) == 1 and await count(CallParticipant) == 2

    # when a phone leg ends, there is room again
    await database_sync_to_async(phones.phone_ended)(call_id, f"4:{OTHER_PHONE}", 486, "")
    await wait_for_callback(receiver, "AddParticipantFailed")
    _, dial = await add_phone(acs, connection_id, owned.number, to="+15550003333")
    assert dial["rawId"] == "4:+15550003333"


async def test_adds_of_phones_that_break_the_rules_are_refused_and_change_nothing(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)
    callbacks_before = len(callbacks_of(receiver))
    path = f"{C}/{connection_id}/participants:add"
    for body, status, target in [
        ({"participantToAdd": phone_model(OTHER_PHONE)}, 400, "sourceCallerIdNumber"),
        (
            {
                "participantToAdd": phone_model(OTHER_PHONE),
                "sourceCallerIdNumber": {"value": owned.spare.number},
            },
            403,
            "sourceCallerIdNumber",
        ),
        (
            {
                "participantToAdd": phone_model("+445550001111"),
                "sourceCallerIdNumber": {"value": owned.number},
            },
            400,
            "participantToAdd",
        ),
        (
            {
                "participantToAdd": phone_model(PHONE),  # already in the call
                "sourceCallerIdNumber": {"value": owned.number},
            },
            400,
            "participantToAdd",
        ),
        ({"participantToAdd": {"kind": "phoneNumber"}}, 400, "participantToAdd"),
    ]:
        answer = await api(acs, "POST", path, body)
        assert answer.status_code == status, (body, answer.content)
        assert answer.json()["error"]["target"] == target
    assert await count(CallParticipant) == 1
    connection = await database_sync_to_async(CallConnection.objects.get)(pk=connection_id)
    assert connection.invitations == {}
    await asyncio.sleep(0.3)
    assert len(callbacks_of(receiver)) == callbacks_before


async def test_transfers_to_phones_are_refused_clearly(
    acs: AcsClient, receiver: Receiver, media_alive: None, owned: Any, trunk: SipTrunk
) -> None:
    connection_id, _ = await connected_phone_call(acs, receiver, owned.number)
    answer = await api(
        acs,
        "POST",
        f"{C}/{connection_id}:transferToParticipant",
        {"targetParticipant": phone_model(OTHER_PHONE)},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["target"]) == ("NotSupported", "targetParticipant")
    assert await count(CallParticipant) == 1


async def test_another_resource_never_reaches_the_phone_calls_nor_dials_with_its_numbers(
    acs: AcsClient,
    other_acs: AcsClient,
    other_resource: Any,
    receiver: Receiver,
    media_alive: None,
    owned: Any,
    trunk: SipTrunk,
) -> None:
    connection_id, call_id = await connected_phone_call(acs, receiver, owned.number)
    invitation, _ = await add_phone(acs, connection_id, owned.number)

    # another resource can neither add to, cancel in, remove from nor read this call
    for path, body in [
        (
            "/participants:add",
            {
                "participantToAdd": phone_model("+15550003333"),
                "sourceCallerIdNumber": {"value": owned.number},
            },
        ),
        ("/participants:cancelAddParticipant", {"invitationId": invitation}),
        ("/participants:remove", {"participantToRemove": phone_model(PHONE)}),
    ]:
        answer = await api(other_acs, "POST", f"{C}/{connection_id}{path}", body)
        assert answer.status_code == 404, (path, answer.content)
    assert (await api(other_acs, "GET", f"{C}/{connection_id}/participants")).status_code == 404

    # nor show this resource's number, nor reach its trunk with a number of its own
    created = await api(other_acs, "POST", C, create_body(receiver, owned.number))
    assert created.status_code == 403
    assert created.json()["error"]["target"] == "sourceCallerIdNumber"
    spare = owned.spare
    spare.owner, spare.status = other_resource, NumberStatus.OWNED
    spare.owned_calling = Capability.BOTH
    await database_sync_to_async(spare.save)()
    created = await api(other_acs, "POST", C, create_body(receiver, spare.number))
    assert created.status_code == 400
    assert created.json()["error"]["code"] == "NoRouteToNumber"
    assert await count(Call) == 1 and await count(CallParticipant) == 2
    assert (await leg_of(call_id, OTHER_PHONE)).state == "ringing"
