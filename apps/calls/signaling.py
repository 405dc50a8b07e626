"""Call signaling on the identity socket: 1:1 calls (invite, ring, accept or decline) and group
calls (join by group id or room, leave), SDP and ICE relayed between legs, each participant's
mute and camera state, and each call stored with its participants, times and end.

Frames to sockets are `{"type": "call", "event": ..., "callId": ...}` (docs/calls.md). Each
leg is held by one socket (its channel name): a 1:1 call rings every socket of the callee but
is answered by one, and signals reach that one only. Signals name their peer with `to`: a
participant's raw id (1:1 and mesh group calls) or `sfu...` (group calls through Janus; the
socket's own process handles those, apps.calls.consumers).

Webhooks get CallStarted, CallEnded, CallParticipantAdded and CallParticipantRemoved through
the events app. End codes follow the ACS calling client: 0 ended normally, 487 cancelled by the
caller before an answer, 603 declined, 408 nobody answered, 410 the socket of a leg went away, 503 the media server
(Janus) failed the participant, and 503 with subCode 510503 for every participant of a call whose
Janus server went away (apps/calls/janus_placement.py).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import IncomingCalls, Resource
from apps.accounts.services import TokenPrincipal, identity_group
from apps.calls import janus_placement, media_link, phones, rooms, sfu
from apps.calls import signals as call_signals
from apps.calls.exceptions import CallNotAllowed, CallNotFound, InvalidCallRequest, TooManyCalls
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
from apps.core import quotas, realtime
from apps.core.api import body_flag
from apps.core.identifiers import identifier_kind, identifier_model
from apps.events import schemas
from apps.events.services import NewEvent, publish_events
from apps.numbers import orders as numbers

logger = logging.getLogger(__name__)

FRAME_TYPE = "call"
CALL_SCOPES = frozenset({"voip", "voip.join"})
PLACE_CALLS = frozenset({"voip"})
MAX_SIGNAL_BYTES = 64 * 1024
END_NORMAL, END_REMOVED, END_UNANSWERED, END_GONE = 0, 403, 408, 410
END_CANCELLED, END_MEDIA_LOST, END_DECLINED = 487, 503, 603
# A call whose Janus server went away ends with 503 and this subCode: 510000 + the code marks an
# end Spool decided, as apps/automation/sip.py marks a phone's (docs/calls.md).
SUB_MEDIA_SERVER_GONE = 510503
MEDIA_SERVER_GONE = "The media server went away."
PHONE_PREFIX = "4:"  # a phone leg's raw id: 4:+E.164 (apps/calls/phones.py)
# An SDP media section that sends: what a Consumer (receive-only role) may not offer or answer.
SENDING_DIRECTION = re.compile(r"^a=(sendrecv|sendonly)\s*$", re.MULTILINE)
SFU_PEER = "sfu"


def require_scope(principal: TokenPrincipal, allowed: frozenset[str] = CALL_SCOPES) -> None:
    if not principal.scopes & allowed:
        raise CallNotAllowed(f"This needs a token with the {' or '.join(sorted(allowed))} scope.")


def _frame(call: Call, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": FRAME_TYPE, "event": event, "callId": str(call.pk), **fields}


def _identity_id(raw_id: str) -> str:
    return raw_id.rsplit("_", 1)[-1]


def _push(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send (raw id, frame) pairs to each identity's sockets after commit (phone legs have
    no sockets: their frames are dropped)."""
    realtime.send_after_commit(
        [
            (identity_group(_identity_id(raw_id)), frame)
            for raw_id, frame in messages
            if not raw_id.startswith(PHONE_PREFIX)
        ]
    )


def _to_leg(leg: CallParticipant, frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A frame for the one socket that holds `leg`."""
    return leg.raw_id, {**frame, "toChannel": leg.channel_name} if leg.channel_name else frame


def roster_entry(leg: CallParticipant) -> dict[str, Any]:
    return {
        "rawId": leg.raw_id,
        "identifier": identifier_kind(leg.raw_id),
        "role": leg.role,
        "isMuted": leg.is_muted,
        "isVideoOn": leg.is_video_on,
    }


def access_call(principal: TokenPrincipal, call_id: Any) -> tuple[Call, CallParticipant]:
    """The call and the principal's leg in it. Raises CallNotFound for anyone else."""
    try:
        key = uuid.UUID(str(call_id))
    except ValueError:
        raise CallNotFound(f"Call {call_id!r} was not found.") from None
    leg = (
        CallParticipant.objects.select_related("call")
        .filter(call_id=key, raw_id=principal.raw_id, call__resource=principal.identity.resource)
        .first()
    )
    if leg is None:
        raise CallNotFound(f"Call {call_id!r} was not found.")
    return leg.call, leg


def _live_leg(principal: TokenPrincipal, call_id: Any) -> tuple[Call, CallParticipant]:
    call, leg = access_call(principal, call_id)
    if call.state == CallState.DISCONNECTED:
        raise CallNotAllowed("The call has ended.")
    if leg.state != CallLegState.CONNECTED:
        raise CallNotAllowed("You are not in this call.")
    return call, leg


def check_call_allowance(principal: TokenPrincipal, *, placing: bool) -> None:
    """An identity places at most `call-invites` calls per window (SPOOL_QUOTA_CALL_INVITES)
    and is in at most SPOOL_MAX_CALLS_PER_IDENTITY calls at once. Raises QuotaExceeded or
    TooManyCalls (429)."""
    if placing:
        quotas.spend(
            "call-invites",
            principal.identity.pk,
            settings.QUOTAS["call-invites"],
            what="placing calls",
        )
    in_calls = CallParticipant.objects.filter(
        raw_id=principal.raw_id,
        call__ended_at=None,
        state__in=[CallLegState.RINGING, CallLegState.CONNECTED],
    ).count()
    if in_calls >= settings.MAX_CALLS_PER_IDENTITY:
        raise TooManyCalls(
            f"This identity is in {in_calls} calls, the most it may be in at once "
            f"({settings.MAX_CALLS_PER_IDENTITY}): hang up one first."
        )


# --- 1:1 calls -------------------------------------------------------------------------------
def invite(principal: TokenPrincipal, body: dict[str, Any], channel_name: str) -> Call:
    """Ring one identity of the caller's resource. Raises InvalidCallRequest, CallNotAllowed,
    or (check_call_allowance) QuotaExceeded / TooManyCalls."""
    require_scope(principal, PLACE_CALLS)
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise InvalidCallRequest("to must be the raw id of the identity to call.", target="to")
    if to == principal.raw_id:
        raise InvalidCallRequest("An identity cannot call itself.", target="to")
    video = body_flag(body, "video") or False
    muted = body_flag(body, "muted") or False
    if to.startswith(PHONE_PREFIX) and not numbers.is_owned(principal.identity.resource, to[2:]):
        check_call_allowance(principal, placing=True)
        return phones.dial(principal, to, body, channel_name, muted)
    if to.startswith(PHONE_PREFIX):
        to = _number_destination(principal, to)
        if to.startswith("4:"):  # the number's calls go to the application
            check_call_allowance(principal, placing=True)
            return _offer_to_application(principal, to, channel_name, video, muted, timezone.now())
    callee = accounts.access_identity(principal.identity.resource, to)
    check_call_allowance(principal, placing=True)
    now = timezone.now()
    if callee.incoming_calls in (IncomingCalls.APPLICATION, IncomingCalls.BUILT_IN_IVR):
        built_in_ivr = callee.incoming_calls == IncomingCalls.BUILT_IN_IVR
        return _offer_to_application(
            principal, callee.raw_id, channel_name, video, muted, now, built_in_ivr
        )
    with transaction.atomic():
        call = Call.objects.create(
            resource=principal.identity.resource,
            caller_raw_id=principal.raw_id,
            video=video,
            created_at=now,
        )
        CallParticipant.objects.bulk_create(
            [
                CallParticipant(
                    call=call,
                    raw_id=principal.raw_id,
                    is_caller=True,
                    state=CallLegState.CONNECTED,
                    channel_name=channel_name,
                    joined_at=now,
                    is_video_on=video,
                    is_muted=muted,
                ),
                CallParticipant(call=call, raw_id=callee.raw_id, state=CallLegState.RINGING),
            ]
        )
        _push(
            [
                (
                    callee.raw_id,
                    _frame(
                        call, "incomingCall", caller=identifier_kind(principal.raw_id), video=video
                    ),
                ),
                (principal.raw_id, _frame(call, "stateChanged", state="Ringing")),
            ]
        )
    return call


def _number_destination(principal: TokenPrincipal, to: str) -> str:
    """Where a call to one of the resource's own numbers goes: the identity its inbound
    destination names, or the number itself when the application takes its calls. Numbers
    elsewhere need a SIP trunk. Raises NumberNotFound or InvalidCallRequest."""
    owned = numbers.access_owned_number(principal.identity.resource, to[2:])
    destination = owned.inbound_destination
    if destination == numbers.APPLICATION_DESTINATION:
        return f"4:{owned.number}"
    if destination.startswith("8:"):
        return destination
    if destination.startswith((numbers.GROUP_PREFIX, numbers.ROOM_PREFIX)):
        raise InvalidCallRequest(
            "This number's calls join a group call or room: clients join it (groupId, roomId).",
            target="to",
        )
    raise InvalidCallRequest(
        "This number takes no calls: set its inbound destination to an identity or to application.",
        target="to",
    )


def _offer_to_application(
    principal: TokenPrincipal,
    to: str,
    channel_name: str,
    video: bool,
    muted: bool,
    now: Any,
    built_in_ivr: bool = False,
) -> Call:
    """A call to an identity whose calls go to the application: nothing rings; the resource's
    application hears of it (IncomingCall) and answers, redirects or rejects it. Its media
    goes through the media bridge once answered."""
    with transaction.atomic():
        call = start_bridged_call(principal, CallKind.GROUP, channel_name, muted, now)
        call_signals.call_offered.send(
            Call, call=call, to=to, video=video, built_in_ivr=built_in_ivr
        )
    return call


def start_bridged_call(
    principal: TokenPrincipal, kind: str, channel_name: str, muted: bool, now: Any
) -> Call:
    """A call whose media goes through the media process, with its caller connected on this
    socket and hearing `Ringing` (inside the caller's transaction)."""
    call = Call.objects.create(
        resource=principal.identity.resource,
        kind=kind,
        topology=CallTopology.BRIDGE,
        caller_raw_id=principal.raw_id,
        video=False,  # the bridge mixes audio only
        created_at=now,
    )
    CallParticipant.objects.create(
        call=call,
        raw_id=principal.raw_id,
        is_caller=True,
        state=CallLegState.CONNECTED,
        channel_name=channel_name,
        joined_at=now,
        is_muted=muted,
    )
    _push([(principal.raw_id, _frame(call, "stateChanged", state="Ringing"))])
    return call


def ring(call: Call, raw_id: str) -> CallParticipant:
    """Ring an identity into a bridged call (placed, added or transferred to by the
    application): a ringing leg, and `incomingCall` on each of its sockets."""
    leg, _ = CallParticipant.objects.update_or_create(
        call=call,
        raw_id=raw_id,
        defaults={"state": CallLegState.RINGING, "channel_name": "", "left_at": None},
    )
    caller = identifier_kind(call.caller_raw_id)
    _push([(raw_id, _frame(call, "incomingCall", caller=caller, video=False))])
    return leg


def stop_ringing(
    call: Call, leg: CallParticipant, code: int, reason: str, sub_code: int = 0
) -> None:
    """A ringing leg of a bridged call is no longer wanted (cancelled, unanswered; a phone's
    `sub_code` says whether its trunk or Spool decided: apps/automation/sip.py)."""
    if CallParticipant.objects.filter(pk=leg.pk, state=CallLegState.RINGING).update(
        state=CallLegState.DECLINED
    ):
        why = _reason(code, sub_code)
        frame = _frame(call, "stateChanged", state="Disconnected", callEndReason=why)
        _push([(leg.raw_id, {**frame, "reason": reason})])
        if leg.raw_id.startswith(PHONE_PREFIX):  # those in the call saw it "Connecting"
            gone = _frame(call, "participantsUpdated", added=[], removed=[leg.raw_id])
            gone["callEndReason"] = why
            connected = call.participants.filter(state=CallLegState.CONNECTED)
            _push([_to_leg(other, gone) for other in connected])
        call_signals.leg_ended.send(
            Call, call=call, leg=leg, code=code, sub_code=sub_code, reason=reason
        )


def connect_caller(call: Call) -> None:
    """The application answered: the caller's client sends its media to the bridge."""
    with transaction.atomic():
        answered = Call.objects.filter(pk=call.pk, state=CallState.RINGING).update(
            state=CallState.CONNECTED, connected_at=timezone.now()
        )
        if not answered:
            raise CallNotAllowed("The call is no longer ringing.")
        call.state = CallState.CONNECTED
        connected = _frame(
            call,
            "stateChanged",
            state="Connected",
            topology=CallTopology.BRIDGE,
            participants=roster(call, without=call.caller_raw_id),
        )
        caller = call.participants.get(raw_id=call.caller_raw_id)
        _push([_to_leg(caller, connected)])
        publish_events(call.resource, [_started_event(call), _added_event(call, caller)])
        _answer_phone_caller(call)


def accept(
    principal: TokenPrincipal, call_id: Any, channel_name: str, body: dict[str, Any] | None = None
) -> Call:
    """Answer a ringing call on this socket (with the callee's `video` and `muted` state). Only
    the callee may; raises CallNotAllowed."""
    require_scope(principal)
    video = body_flag(body or {}, "video") or False
    muted = body_flag(body or {}, "muted") or False
    call, leg = access_call(principal, call_id)
    if call.topology == CallTopology.BRIDGE:
        return _accept_bridged(call, leg, channel_name, muted)
    if leg.is_caller or leg.state != CallLegState.RINGING or call.state != CallState.RINGING:
        raise CallNotAllowed("Only the callee of a ringing call can accept it.")
    now = timezone.now()
    with transaction.atomic():
        answered = Call.objects.filter(pk=call.pk, state=CallState.RINGING).update(
            state=CallState.CONNECTED, connected_at=now
        )
        if not answered:
            raise CallNotAllowed("The call is no longer ringing.")
        CallParticipant.objects.filter(pk=leg.pk).update(
            state=CallLegState.CONNECTED,
            channel_name=channel_name,
            joined_at=now,
            is_video_on=video,
            is_muted=muted,
        )
        call.state, call.connected_at = CallState.CONNECTED, now
        legs = list(call.participants.all())
        connected = _frame(
            call,
            "stateChanged",
            state="Connected",
            answeredBy=channel_name,
            participants=[roster_entry(leg) for leg in legs],
        )
        _push([(call.caller_raw_id, connected), (principal.raw_id, connected)])
        publish_events(
            call.resource, [_started_event(call), *(_added_event(call, leg) for leg in legs)]
        )
    return call


def _accept_bridged(call: Call, leg: CallParticipant, channel_name: str, muted: bool) -> Call:
    """Answer a bridged call the application placed (or added this identity to): the leg
    joins, and its client sends its media to the bridge."""
    if leg.state != CallLegState.RINGING or call.state == CallState.DISCONNECTED:
        raise CallNotAllowed("Only a ringing participant can accept the call.")
    now = timezone.now()
    with transaction.atomic():
        if not CallParticipant.objects.filter(pk=leg.pk, state=CallLegState.RINGING).update(
            state=CallLegState.CONNECTED, channel_name=channel_name, joined_at=now, is_muted=muted
        ):
            raise CallNotAllowed("The call is no longer ringing.")
        leg.state, leg.channel_name, leg.is_muted = CallLegState.CONNECTED, channel_name, muted
        started = Call.objects.filter(pk=call.pk, state=CallState.RINGING).update(
            state=CallState.CONNECTED, connected_at=now
        )
        call.state = CallState.CONNECTED
        connected = _frame(
            call,
            "stateChanged",
            state="Connected",
            answeredBy=channel_name,
            topology=CallTopology.BRIDGE,
            participants=roster(call, without=leg.raw_id),
        )
        others = list(call.participants.filter(state=CallLegState.CONNECTED).exclude(pk=leg.pk))
        added = _frame(call, "participantsUpdated", added=[roster_entry(leg)], removed=[])
        # Every socket of the identity stops ringing; the answering one connects.
        _push([(leg.raw_id, connected), *(_to_leg(other, added) for other in others)])
        events = [_added_event(call, leg)]
        if started:
            events.insert(0, _started_event(call))
            _answer_phone_caller(call)
        publish_events(call.resource, events)
    return call


def _answer_phone_caller(call: Call) -> None:
    """A call from a phone was answered: its INVITE is accepted now, not before (the carrier
    bills from the 200 OK)."""
    if call.caller_raw_id.startswith(PHONE_PREFIX):
        call_signals.phone_answering.send(Call, call=call, raw_id=call.caller_raw_id)


def ring_timeout(call_id: str) -> None:
    """Stop ringing a 1:1 call that nobody answered in time (code 408)."""
    call = Call.objects.filter(pk=call_id, state=CallState.RINGING).first()
    if call is not None:
        _end(call, END_UNANSWERED, "Nobody answered.", by=call.caller_raw_id)


def decline(principal: TokenPrincipal, call_id: Any) -> Call:
    require_scope(principal)
    call, leg = access_call(principal, call_id)
    if leg.is_caller or leg.state != CallLegState.RINGING:
        raise CallNotAllowed("Only the callee of a ringing call can decline it.")
    if call.topology == CallTopology.BRIDGE and call.kind != CallKind.ONE_TO_ONE:
        stop_ringing(call, leg, END_DECLINED, "Declined by the callee.")
        return call
    CallParticipant.objects.filter(pk=leg.pk).update(state=CallLegState.DECLINED)
    return _end(call, END_DECLINED, "Declined by the callee.", by=principal.raw_id)


# --- Group calls -----------------------------------------------------------------------------
def _group_target(principal: TokenPrincipal, body: dict[str, Any]) -> dict[str, Any]:
    """The live-call lookup for a join (`groupId` or `roomId`) and the role it grants.
    Raises InvalidCallRequest, RoomNotFound or CallNotAllowed (not a participant, or shut)."""
    resource = principal.identity.resource
    group_id, room_id = body.get("groupId"), body.get("roomId")
    if (group_id is None) == (room_id is None):
        raise InvalidCallRequest("Give either groupId or roomId.", target="groupId")
    if group_id is not None:
        try:
            key = uuid.UUID(str(group_id))
        except ValueError:
            raise InvalidCallRequest("groupId must be a UUID.", target="groupId") from None
        return {"kind": CallKind.GROUP, "group_id": key, "room": None, "role": RoomRole.ATTENDEE}
    if not isinstance(room_id, str):
        raise InvalidCallRequest("roomId must be a room's id.", target="roomId")
    room = rooms.access_room(resource, room_id)
    role = rooms.role_in_room(room, principal.identity)
    if role is None:
        raise CallNotAllowed("Only the room's participants can join its calls.")
    if not rooms.is_open(room):
        raise CallNotAllowed("The room is not open now (outside its validity window).")
    return {"kind": CallKind.ROOM, "group_id": None, "room": room, "role": role}


def group_topology() -> str:
    sfu = settings.GROUP_CALLS == "sfu" and janus_placement.servers(janus_placement.SFU)
    return CallTopology.SFU if sfu else CallTopology.MESH


def join(principal: TokenPrincipal, body: dict[str, Any], channel_name: str) -> CallParticipant:
    """Join (or start) the live call of a group id or room on this socket; returns the leg.
    Others in the call get `participantsUpdated`. Raises as _group_target, or CallNotAllowed
    when a mesh call is full."""
    require_scope(principal)
    target = _group_target(principal, body)
    check_call_allowance(principal, placing=False)
    muted = body_flag(body, "muted") or False
    video = body_flag(body, "video") or False
    if target["role"] == RoomRole.CONSUMER:
        muted, video = True, False  # a Consumer only receives
    now = timezone.now()
    for attempt in range(2):  # two first joiners race to start the call: one wins, one retries
        try:
            with transaction.atomic():
                return _join_live_call(principal, target, channel_name, now, muted, video)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def live_group_call(
    resource: Resource, target: dict[str, Any], caller_raw_id: str, now: Any, *, video: bool
) -> tuple[Call, bool]:
    """The live call of `target`'s group id or room (as _group_target gives it), locked, or a
    new one started by `caller_raw_id`; and whether it is new. Inside a transaction: two first
    joiners race to start it, and the loser gets IntegrityError (one live call per group)."""
    lookup = {"group_id": target["group_id"]} if target["group_id"] else {"room": target["room"]}
    call = (
        Call.objects.select_for_update()
        .filter(resource=resource, ended_at__isnull=True, **lookup)
        .first()
    )
    if call is not None:
        return call, False
    call = Call.objects.create(
        resource=resource,
        kind=target["kind"],
        topology=group_topology(),
        caller_raw_id=caller_raw_id,
        state=CallState.CONNECTED,
        created_at=now,
        connected_at=now,
        video=video,
        **lookup,
    )
    return call, True


def _join_live_call(
    principal: TokenPrincipal,
    target: dict[str, Any],
    channel_name: str,
    now: Any,
    muted: bool,
    video: bool,
) -> CallParticipant:
    call, started = live_group_call(
        principal.identity.resource, target, principal.raw_id, now, video=video
    )
    others = list(call.participants.filter(state=CallLegState.CONNECTED))
    mine = next((leg for leg in others if leg.raw_id == principal.raw_id), None)
    others = [leg for leg in others if leg is not mine]
    if call.topology == CallTopology.MESH and len(others) >= settings.MESH_MAX_PARTICIPANTS:
        raise CallNotAllowed(
            f"The call is full: a mesh call holds {settings.MESH_MAX_PARTICIPANTS} participants "
            "(larger group calls go through Janus: install it, or set SPOOL_JANUS_URL)."
        )
    leg, _ = CallParticipant.objects.update_or_create(
        call=call,
        raw_id=principal.raw_id,
        defaults={
            "state": CallLegState.CONNECTED,
            "is_caller": started,
            "role": target["role"],
            "channel_name": channel_name,
            "joined_at": now,
            "left_at": None,
            "is_muted": muted,
            "is_video_on": video,
        },
    )
    leg.call = call
    messages = []
    if mine is not None and mine.channel_name != channel_name:
        # Joined again from another socket: the old one is out, the others rebuild its peer.
        gone = _frame(call, "stateChanged", state="Disconnected", callEndReason=_reason(0))
        messages.append(_to_leg(mine, gone))
        messages += [
            _to_leg(other, _frame(call, "participantsUpdated", added=[], removed=[mine.raw_id]))
            for other in others
        ]
    added = _frame(call, "participantsUpdated", added=[roster_entry(leg)], removed=[])
    messages += [_to_leg(other, added) for other in others]
    _push(messages)
    events = [_started_event(call)] if started else []
    if mine is None:
        events.append(_added_event(call, leg))
    publish_events(call.resource, events)
    return leg


# --- Phones in group calls and rooms ---------------------------------------------------------
def add_phone(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> CallParticipant:
    """Dial a phone into the group call or room this principal is in (the calling client's
    `call.addParticipant({phoneNumber}, {alternateCallerId})`): the phone rings through the
    resource's SIP routes as any call to a phone does (apps/calls/phones.py), and joins the
    call's media through the media process's bridge to the VideoRoom when it answers. Raises
    InvalidCallRequest, CallNotAllowed, or dialing's refusals."""
    require_scope(principal, PLACE_CALLS)
    call, leg = _live_leg(principal, call_id)
    participant = body.get("participant")
    to = (
        participant.get("rawId") or participant.get("phoneNumber")
        if isinstance(participant, dict)
        else participant
    )
    if isinstance(to, str) and to.startswith("+"):
        to = PHONE_PREFIX + to
    if not isinstance(to, str) or not to.startswith(PHONE_PREFIX):
        raise InvalidCallRequest(
            "participant must be a phone number ({phoneNumber: '+1...'}).", target="participant"
        )
    if call.kind == CallKind.ONE_TO_ONE:
        raise CallNotAllowed("Phones join group calls and rooms; a 1:1 call has its two.")
    if call.topology != CallTopology.SFU:
        raise CallNotAllowed(
            "Phones join group calls through the SFU: this deployment's group calls are a mesh "
            "(install Janus, or set SPOOL_JANUS_URL; SPOOL_GROUP_CALLS=sfu)."
        )
    if not janus_placement.media_shares_sfu():
        raise CallNotAllowed(
            "Phones join group calls when the media process drives the SFU's Janus "
            "(SPOOL_MEDIA_JANUS_URL unset or equal to SPOOL_JANUS_URL)."
        )
    if leg.role == RoomRole.CONSUMER:
        raise CallNotAllowed("A Consumer cannot add participants to the call.")
    if call.kind == CallKind.ROOM and not (call.room and call.room.pstn_dial_out_enabled):
        raise CallNotAllowed("This room does not allow dialing out to phones (pstnDialOutEnabled).")
    live = call.participants.filter(
        raw_id=to, state__in=(CallLegState.RINGING, CallLegState.CONNECTED)
    )
    if live.exists():
        raise InvalidCallRequest("This phone is in the call already.", target="participant")
    caller_id = phones.caller_id_of(body.get("alternateCallerId"))
    check_call_allowance(principal, placing=True)
    with transaction.atomic():
        return phones.ring_phone(call, to, caller_id)


def remove_phone(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> Call:
    """Hang up a phone in the group call or room this principal is in (ringing or answered)."""
    require_scope(principal, PLACE_CALLS)
    call, leg = _live_leg(principal, call_id)
    raw_id = body.get("rawId")
    if leg.role == RoomRole.CONSUMER:
        raise CallNotAllowed("A Consumer cannot remove participants from the call.")
    phone = call.participants.filter(
        raw_id=raw_id if isinstance(raw_id, str) else "",
        state__in=(CallLegState.RINGING, CallLegState.CONNECTED),
    ).first()
    if phone is None or not phone.raw_id.startswith(PHONE_PREFIX):
        raise InvalidCallRequest("rawId must name a phone in the call.", target="rawId")
    with transaction.atomic():
        media_link.send_after_commit({"type": "leave", "call": str(call.pk), "rawId": phone.raw_id})
        if phone.state == CallLegState.RINGING:
            stop_ringing(call, phone, END_CANCELLED, "Cancelled by a participant.")
            return call
        return _leave(call, phone, END_REMOVED)


def roster(call: Call, *, without: str = "") -> list[dict[str, Any]]:
    legs = call.participants.filter(state=CallLegState.CONNECTED).exclude(raw_id=without)
    return [roster_entry(leg) for leg in legs]


def _leave(call: Call, leg: CallParticipant, code: int) -> Call:
    """One participant leaves a group call; the last one out ends it."""
    now = timezone.now()
    with transaction.atomic():
        left = CallParticipant.objects.filter(pk=leg.pk, state=CallLegState.CONNECTED).update(
            state=CallLegState.LEFT, left_at=now
        )
        if not left:
            return call
        gone = _frame(call, "stateChanged", state="Disconnected", callEndReason=_reason(code))
        remaining = list(call.participants.filter(state=CallLegState.CONNECTED))
        removed = _frame(call, "participantsUpdated", added=[], removed=[leg.raw_id])
        _push([_to_leg(leg, gone), *(_to_leg(other, removed) for other in remaining)])
        publish_events(call.resource, [_removed_event(call, leg)])
        if call.topology == CallTopology.BRIDGE:
            call_signals.leg_ended.send(Call, call=call, leg=leg, code=code)
        if not remaining:
            return _end(call, END_NORMAL, "The last participant left.", by=leg.raw_id)
    return call


# --- Both kinds ------------------------------------------------------------------------------
def hang_up(principal: TokenPrincipal, call_id: Any, body: dict[str, Any] | None = None) -> Call:
    """Leave the call. A 1:1 call ends for both (cancelled if it still rings); a group call
    goes on without the leaver unless `forEveryone` (a room's Presenters, anyone in a group)."""
    require_scope(principal)
    call, leg = access_call(principal, call_id)
    for_everyone = body_flag(body or {}, "forEveryone")
    if call.state == CallState.DISCONNECTED:
        return call
    if call.topology == CallTopology.BRIDGE and leg.state == CallLegState.RINGING:
        if call.kind == CallKind.ONE_TO_ONE:  # a phone calling this identity
            return decline(principal, call_id)
        stop_ringing(call, leg, END_DECLINED, "Declined.")
        return call
    if call.topology == CallTopology.BRIDGE and call.state == CallState.RINGING:
        return _end(call, END_CANCELLED, "Cancelled before it was answered.", by=leg.raw_id)
    if call.kind == CallKind.ONE_TO_ONE:
        if call.state == CallState.RINGING:
            return _end(call, END_CANCELLED, "Cancelled before it was answered.", by=leg.raw_id)
        return _end(call, END_NORMAL, "Hung up.", by=leg.raw_id)
    if for_everyone:
        if call.kind == CallKind.ROOM and leg.role != RoomRole.PRESENTER:
            raise CallNotAllowed("Only a room's Presenters can end its call for everyone.")
        return _end(call, END_NORMAL, "Ended for everyone.", by=leg.raw_id)
    return _leave(call, leg, END_NORMAL)


def relay(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> None:
    """Pass an SDP offer or answer or an ICE candidate to another leg of a live call: `to`
    names it (a 1:1 call's other leg when absent). A Consumer's SDP may not send media."""
    require_scope(principal)
    call, mine = _live_leg(principal, call_id)
    data = check_signal(mine, body)
    to = body.get("to")
    others = call.participants.exclude(raw_id=principal.raw_id)
    other = (others.filter(raw_id=to) if isinstance(to, str) else others).first()
    if other is None or other.state != CallLegState.CONNECTED:
        raise CallNotAllowed("That participant is not in the call.")
    frame = _frame(
        call, "signal", sender=identifier_kind(principal.raw_id), **{"from": principal.raw_id}
    )
    _push([_to_leg(other, {**frame, "data": data})])


def check_signal(leg: CallParticipant, body: dict[str, Any]) -> dict[str, Any]:
    """A signal's data (an SDP description or ICE candidate object of at most 64 KB).
    Raises InvalidCallRequest, or CallNotAllowed when a Consumer's SDP would send media."""
    data = body.get("data")
    if not isinstance(data, dict) or len(json.dumps(data)) > MAX_SIGNAL_BYTES:
        raise InvalidCallRequest(
            f"data must be an object of at most {MAX_SIGNAL_BYTES // 1024} KB.", target="data"
        )
    sdp = data.get("sdp")
    if leg.role == RoomRole.CONSUMER and isinstance(sdp, str) and SENDING_DIRECTION.search(sdp):
        raise CallNotAllowed("A Consumer receives only: its SDP must be recvonly or inactive.")
    return data


def check_sfu_signal(
    principal: TokenPrincipal, call_id: Any, body: dict[str, Any]
) -> dict[str, Any]:
    """A signal for the call's Janus room (`to` is `sfu` or `sfu:<raw id>`): its data, if the
    principal is in a live call through Janus. Raises as check_signal, or CallNotAllowed."""
    require_scope(principal)
    call, leg = _live_leg(principal, call_id)
    if call.topology != CallTopology.SFU:
        raise CallNotAllowed("This call's media does not go through the SFU.")
    return check_signal(leg, body)


def update_media(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> None:
    """The client muted or unmuted, or turned its camera on or off: the others hear of it."""
    require_scope(principal)
    call, leg = _live_leg(principal, call_id)
    muted, video = body_flag(body, "muted"), body_flag(body, "videoOn")
    if leg.role == RoomRole.CONSUMER and (muted is False or video):
        raise CallNotAllowed("A Consumer receives only: it cannot unmute or turn a camera on.")
    changes = {
        field: value
        for field, value in (("is_muted", muted), ("is_video_on", video))
        if value is not None
    }
    if not changes:
        return
    with transaction.atomic():
        CallParticipant.objects.filter(pk=leg.pk).update(**changes)
        for field, value in changes.items():
            setattr(leg, field, value)
        changed = _frame(call, "participantStateChanged", participant=roster_entry(leg))
        others = call.participants.filter(state=CallLegState.CONNECTED).exclude(pk=leg.pk)
        _push([_to_leg(other, changed) for other in others])


def room_changed(room: Room, *, deleted: bool = False) -> None:
    """The room's participants or validity changed, or it is about to be deleted: its live call
    follows at once. A deleted or closed room's call ends; a participant no longer in the room
    leaves (code 403); a changed role applies from now on and everyone hears of it."""
    call = Call.objects.filter(room=room, ended_at__isnull=True).first()
    if call is None:
        return
    if deleted or not rooms.is_open(room):
        reason = "The room was deleted." if deleted else "The room is no longer open."
        _end(call, END_NORMAL, reason, by=call.caller_raw_id)
        return
    roles = {
        str(identity_id): role
        for identity_id, role in room.participants.values_list("identity_id", "role")
    }
    for leg in call.participants.filter(state=CallLegState.CONNECTED):
        role = roles.get(_identity_id(leg.raw_id))
        if role is None:
            _leave(call, leg, END_REMOVED)
        elif role != leg.role:
            _change_role(call, leg, role)


def _change_role(call: Call, leg: CallParticipant, role: str) -> None:
    changes: dict[str, Any] = {"role": role}
    if role == RoomRole.CONSUMER:
        changes.update(is_muted=True, is_video_on=False)  # a Consumer only receives
    with transaction.atomic():
        CallParticipant.objects.filter(pk=leg.pk).update(**changes)
        for field, value in changes.items():
            setattr(leg, field, value)
        changed = _frame(call, "participantStateChanged", participant=roster_entry(leg))
        everyone = call.participants.filter(state=CallLegState.CONNECTED)
        _push([_to_leg(other, changed) for other in everyone])


def media_lost(principal: TokenPrincipal, call_id: Any) -> None:
    """The media server (Janus) refused or lost this participant: it leaves the call with
    code 503, and its client may join again."""
    call, leg = access_call(principal, call_id)
    if call.state != CallState.DISCONNECTED:
        _leave(call, leg, END_MEDIA_LOST)


def end_janus_calls(url: str) -> int:
    """The Janus server `url` went away (janus_placement found it down): every live call placed
    on it ends for everyone, code 503 and subCode 510503, whatever its kind (CallEnded, and for
    Call Automation CallDisconnected, carry both). Returns how many calls were live there.
    Idempotent: a call another process ended meanwhile is left as it ended."""
    calls = list(Call.objects.filter(janus_server=url, ended_at__isnull=True))
    for call in calls:
        _end(
            call,
            END_MEDIA_LOST,
            MEDIA_SERVER_GONE,
            by=call.caller_raw_id,
            sub_code=SUB_MEDIA_SERVER_GONE,
        )
    if calls:
        logger.warning("Janus %s went away: %d calls on it ended", url, len(calls))
    return len(calls)


def socket_closed(channel_name: str) -> None:
    """The socket holding a leg went away: it leaves its group calls and ends its 1:1 calls
    (code 410)."""
    legs = CallParticipant.objects.select_related("call").filter(
        channel_name=channel_name, call__ended_at__isnull=True
    )
    for leg in legs:
        if leg.call.kind == CallKind.ONE_TO_ONE or (
            leg.is_caller and leg.call.state == CallState.RINGING
        ):
            _end(leg.call, END_GONE, "A participant's connection closed.", by=leg.raw_id)
        elif leg.state == CallLegState.CONNECTED:
            _leave(leg.call, leg, END_GONE)


# --- The media bridge (Call Automation) ------------------------------------------------------
MEDIA_PEER = "media"
DTMF_TONES = frozenset("0123456789*#ABCD")


def end_call(call: Call, code: int, reason: str, *, by: str, sub_code: int = 0) -> Call:
    """End a call for everyone (the application terminated it, its media failed, or its
    phone ended it: `sub_code` as apps/automation/sip.py gives it)."""
    return _end(call, code, reason, by=by, sub_code=sub_code)


def remove_leg(call: Call, leg: CallParticipant, code: int) -> Call:
    """Take a connected participant out of a call (the application removed it)."""
    return _leave(call, leg, code)


def check_media_signal(
    principal: TokenPrincipal, call_id: Any, body: dict[str, Any]
) -> dict[str, Any]:
    """A signal for the media bridge (`to` is `media`): its data, if the principal is in a live
    bridged call. Raises as check_signal, or CallNotAllowed."""
    require_scope(principal)
    call, leg = _live_leg(principal, call_id)
    if call.topology != CallTopology.BRIDGE:
        raise CallNotAllowed("This call's media does not go through the media bridge.")
    return check_signal(leg, body)


def send_dtmf(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> Call:
    """A key pressed in a live call (the calling client's `sendDtmf(tone)`): carried on
    signaling because Janus's mixers drop RFC 4733 packets. A bridged call's media process
    hears it (recognize, continuous DTMF); the other legs of other calls get `dtmfReceived`."""
    require_scope(principal)
    tone = body.get("tone")
    if not isinstance(tone, str) or tone.upper() not in DTMF_TONES or len(tone) != 1:
        raise InvalidCallRequest("tone must be one of 0-9, *, #, A-D.", target="tone")
    call, leg = _live_leg(principal, call_id)
    if call.topology != CallTopology.BRIDGE:
        frame = _frame(call, "dtmfReceived", tone=tone.upper(), **{"from": leg.raw_id})
        others = call.participants.filter(state=CallLegState.CONNECTED).exclude(pk=leg.pk)
        _push([_to_leg(other, frame) for other in others])
    return call


def _reason(code: int, sub_code: int = 0) -> dict[str, int]:
    return {"code": code, "subCode": sub_code}


def _end(call: Call, code: int, reason: str, *, by: str, sub_code: int = 0) -> Call:
    now = timezone.now()
    with transaction.atomic():
        ended = Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(
            state=CallState.DISCONNECTED,
            ended_at=now,
            end_code=code,
            end_subcode=sub_code or None,
            end_reason=reason,
        )
        if not ended:
            return call
        was_connected = call.state == CallState.CONNECTED
        call.state, call.ended_at, call.end_code, call.end_reason = (
            CallState.DISCONNECTED,
            now,
            code,
            reason,
        )
        call.end_subcode = sub_code or None
        legs = list(call.participants.all())
        live = [leg for leg in legs if leg.state == CallLegState.CONNECTED]
        CallParticipant.objects.filter(call=call, state=CallLegState.CONNECTED).update(
            state=CallLegState.LEFT, left_at=now
        )
        why = _reason(code, sub_code)
        frame = _frame(call, "stateChanged", state="Disconnected", callEndReason=why)
        ringing = [leg for leg in legs if leg.state == CallLegState.RINGING]
        if call.kind == CallKind.ONE_TO_ONE:
            _push([(leg.raw_id, frame) for leg in legs])
        else:
            _push([_to_leg(leg, frame) for leg in live] + [(leg.raw_id, frame) for leg in ringing])
        if call.topology == CallTopology.BRIDGE:
            call_signals.call_ended.send(Call, call=call)
        elif any(leg.raw_id.startswith(PHONE_PREFIX) for leg in legs):
            # The media process holds the phones of a group call: they hang up.
            media_link.send_after_commit({"type": "end", "call": str(call.pk)})
        server = ""
        if call.topology == CallTopology.SFU:
            server = call.janus_server or janus_placement.server_of(call.pk)
        if server and not janus_placement.is_down(server):  # (a dead one has no rooms left)
            transaction.on_commit(lambda: sfu.destroy_room_in_background(server, str(call.pk)))
        if was_connected:
            publish_events(
                call.resource,
                [*(_removed_event(call, leg) for leg in live), _ended_event(call, by)],
            )
    return call


# --- Webhook events --------------------------------------------------------------------------
def _base(call: Call) -> dict[str, Any]:
    base: dict[str, Any] = {
        "correlationId": str(call.pk),
        "isTwoParty": call.kind == CallKind.ONE_TO_ONE,
        "isRoomsCall": call.kind == CallKind.ROOM,
    }
    if call.group_id:
        base["group"] = {"id": str(call.group_id)}
    if call.room_id:
        base["room"] = {"id": call.room_id}
    return base


def _user(raw_id: str, role: str = RoomRole.ATTENDEE) -> dict[str, Any]:
    model = identifier_model(raw_id)
    model.pop("kind", None)
    return {"communicationIdentifier": model, "role": role}


def _started_event(call: Call) -> NewEvent:
    return NewEvent(
        schemas.PREFIX + "CallStarted",
        f"call/{call.pk}/startedBy/{call.caller_raw_id}",
        {**_base(call), "startedBy": _user(call.caller_raw_id)},
    )


def _added_event(call: Call, leg: CallParticipant) -> NewEvent:
    return NewEvent(
        schemas.PREFIX + "CallParticipantAdded",
        f"call/{call.pk}/participant/{leg.raw_id}",
        {
            **_base(call),
            "startedBy": _user(call.caller_raw_id),
            "user": _user(leg.raw_id, leg.role),
            "participantId": leg.raw_id,
        },
    )


def _removed_event(call: Call, leg: CallParticipant) -> NewEvent:
    return NewEvent(
        schemas.PREFIX + "CallParticipantRemoved",
        f"call/{call.pk}/participant/{leg.raw_id}",
        {**_base(call), "user": _user(leg.raw_id, leg.role), "participantId": leg.raw_id},
    )


def _ended_event(call: Call, by: str) -> NewEvent:
    return NewEvent(
        schemas.PREFIX + "CallEnded",
        f"call/{call.pk}",
        {
            **_base(call),
            "startedBy": _user(call.caller_raw_id),
            "endedBy": _user(by),
            "reason": {
                "code": call.end_code,
                "subCode": call.end_subcode or 0,
                "message": call.end_reason,
            },
            "callDurationInSeconds": call.duration_seconds,
        },
    )
