"""Calls from phones: a trunk called one of a resource's numbers, and the media process's SIP
line (apps/automation/sip_line.py) asks here what to do with it. apps/pstn/inbound.py decides
whether it may come in; then it goes where the number's inbound destination says:

- an identity: its clients ring (`incomingCall` from a `phoneNumber` caller); it answers or
  declines like any call. (An identity whose calls go to the application hands it on.)
- `application`: the resource's application hears IncomingCall (Call Automation) and answers,
  redirects or rejects it.

Either way the call is bridged: the phone is its caller, a leg of the call's AudioBridge room
once answered, and Janus has sent the trunk 180 Ringing meanwhile. When the call is answered
the media process accepts the phone's INVITE (`phone_answering`, from signaling.py); when it
ends unanswered, the phone is refused with the call's end code as its SIP status.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import IncomingCalls, Resource
from apps.accounts.services import IdentityNotFound, access_identity
from apps.calls import phones, rooms, signaling
from apps.calls import signals as call_signals
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallTopology,
    Room,
    RoomRole,
)
from apps.events.services import publish_events
from apps.numbers.orders import APPLICATION_DESTINATION, GROUP_PREFIX, ROOM_PREFIX
from apps.pstn import inbound


def call_in(source: str, caller: str, number: str, sip_call_id: str) -> Call:
    """A call from `caller` to `number` through the trunk at `source` (its IP): the bridged call
    it becomes, ringing. Raises inbound.InboundRefused with the SIP status to refuse it with."""
    now = timezone.now()
    with transaction.atomic():
        admission = inbound.admit(source, number)
        resource = admission.number.owner
        assert resource is not None  # admit() takes owned numbers only
        inbound.check_capacity(admission, phones.live_phone_calls(resource.pk))
        destination = admission.number.inbound_destination
        if destination.startswith((GROUP_PREFIX, ROOM_PREFIX)):
            return _join_group(resource, destination, caller, admission.trunk_name, sip_call_id)
        identity = None
        if destination.startswith("8:"):
            try:
                identity = access_identity(resource, destination)
            except IdentityNotFound:
                raise inbound.InboundRefused(480, "Temporarily Unavailable") from None
        to_application = destination == APPLICATION_DESTINATION or (
            identity is not None and identity.incoming_calls != IncomingCalls.CLIENT
        )
        phone = f"{signaling.PHONE_PREFIX}{caller}"
        call = Call.objects.create(
            resource=resource,
            # The application may add others to its calls; a call to an identity is theirs two.
            kind=CallKind.GROUP if to_application else CallKind.ONE_TO_ONE,
            topology=CallTopology.BRIDGE,
            caller_raw_id=phone,
            video=False,
            created_at=now,
        )
        CallParticipant.objects.create(
            call=call,
            raw_id=phone,
            is_caller=True,
            state=CallLegState.CONNECTED,
            joined_at=now,
            sip_trunk=admission.trunk_name,
            sip_call_id=sip_call_id[:200],
        )
        if identity is None:
            call_signals.call_offered.send(
                Call,
                call=call,
                to=f"{signaling.PHONE_PREFIX}{number}",
                video=False,
                built_in_ivr=False,
            )
        elif to_application:
            call_signals.call_offered.send(
                Call,
                call=call,
                to=identity.raw_id,
                video=False,
                built_in_ivr=identity.incoming_calls == IncomingCalls.BUILT_IN_IVR,
            )
        else:
            signaling.ring(call, identity.raw_id)
    return call


def _join_group(
    resource: Resource, destination: str, caller: str, trunk: str, sip_call_id: str
) -> Call:
    """The phone joins the live call of the group or room its number names (starting it if
    there is none), answered at once: nobody has to pick up a group call. Browsers hear it
    through the media process's bridge to the call's VideoRoom, so the call must be on the SFU.
    Raises InboundRefused: 480 when the room is closed or gone, or group calls are a mesh here;
    486 when a phone with this number is in the call already."""
    target = group_target(resource, destination)
    if target is None or signaling.group_topology() != CallTopology.SFU:
        raise inbound.InboundRefused(480, "Temporarily Unavailable")
    phone = f"{signaling.PHONE_PREFIX}{caller}"
    now = timezone.now()
    for attempt in range(2):  # a browser may start the call meanwhile: then join that one
        try:
            with transaction.atomic():
                call, started = signaling.live_group_call(resource, target, phone, now, video=False)
                return _seat_phone(call, started, phone, trunk, sip_call_id, now)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def group_target(resource: Resource, destination: str) -> dict[str, Any] | None:
    """A `group:<uuid>` or `room:<id>` destination as signaling's join target (a phone is an
    Attendee), or None when it names no open room of the resource."""
    if destination.startswith(GROUP_PREFIX):
        group_id = uuid.UUID(destination[len(GROUP_PREFIX) :])  # checked when it was set
        return {"kind": CallKind.GROUP, "group_id": group_id, "room": None}
    room = Room.objects.filter(resource=resource, pk=destination[len(ROOM_PREFIX) :]).first()
    if room is None or not rooms.is_open(room):
        return None
    return {"kind": CallKind.ROOM, "group_id": None, "room": room}


def _seat_phone(
    call: Call, started: bool, phone: str, trunk: str, sip_call_id: str, now: Any
) -> Call:
    if call.topology != CallTopology.SFU:
        raise inbound.InboundRefused(480, "Temporarily Unavailable")
    if call.participants.filter(raw_id=phone, state__in=phones.LIVE).exists():
        raise inbound.InboundRefused(486, "Busy Here")
    leg, _ = CallParticipant.objects.update_or_create(
        call=call,
        raw_id=phone,
        defaults={
            "state": CallLegState.CONNECTED,
            "is_caller": started,
            "role": RoomRole.ATTENDEE,
            "channel_name": "",
            "joined_at": now,
            "left_at": None,
            "sip_trunk": trunk,
            "sip_call_id": sip_call_id[:200],
        },
    )
    others = call.participants.filter(state=CallLegState.CONNECTED).exclude(pk=leg.pk)
    added = signaling._frame(
        call, "participantsUpdated", added=[signaling.roster_entry(leg)], removed=[]
    )
    signaling._push([signaling._to_leg(other, added) for other in others])
    events = [signaling._started_event(call)] if started else []
    publish_events(call.resource, [*events, signaling._added_event(call, leg)])
    call_signals.phone_answering.send(Call, call=call, raw_id=phone)
    return call


def ended_calls(call_ids: list[str]) -> list[str]:
    return [
        str(pk)
        for pk in Call.objects.filter(pk__in=call_ids)
        .exclude(ended_at=None)
        .values_list("pk", flat=True)
    ]


def answer_code(call_id: str) -> int:
    """The SIP status that refuses a phone whose call ended before anyone answered: the call's
    end code where it is one (486 busy, 603 declined, 403 forbidden), else 480 (nobody
    answered, or the callee could not be reached)."""
    code = Call.objects.filter(pk=call_id).values_list("end_code", flat=True).first()
    if code is None or not 400 <= code <= 699 or code in (408, 410, 487, 503):
        return 480
    return int(code)
