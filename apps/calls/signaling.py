"""1:1 call signaling on the identity socket: invite, ring, accept or decline, relay SDP and
ICE between the two legs, hang up; each call stored with its participants, times and end.

Frames to sockets are `{"type": "call", "event": ..., "callId": ...}` (docs/calls.md). Each
leg is held by one socket (its channel name), so a call rings every socket of the callee but
is answered by one, and signals reach that one only. Webhooks get CallStarted, CallEnded,
CallParticipantAdded and CallParticipantRemoved through the events app.

End codes follow the ACS calling client: 0 ended normally, 487 cancelled by the caller before
an answer, 603 declined, 410 the socket of a leg went away.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.services import TokenPrincipal, identity_group
from apps.calls.exceptions import CallNotAllowed, CallNotFound, InvalidCallRequest
from apps.calls.models import Call, CallLegState, CallParticipant, CallState
from apps.core import realtime
from apps.core.identifiers import identifier_kind, identifier_model
from apps.events import schemas
from apps.events.services import NewEvent, publish_events

FRAME_TYPE = "call"
CALL_SCOPES = frozenset({"voip", "voip.join"})
PLACE_CALLS = frozenset({"voip"})
MAX_SIGNAL_BYTES = 64 * 1024
END_NORMAL, END_GONE, END_CANCELLED, END_DECLINED = 0, 410, 487, 603


def require_scope(principal: TokenPrincipal, allowed: frozenset[str] = CALL_SCOPES) -> None:
    if not principal.scopes & allowed:
        raise CallNotAllowed(f"This needs a token with the {' or '.join(sorted(allowed))} scope.")


def _frame(call: Call, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": FRAME_TYPE, "event": event, "callId": str(call.pk), **fields}


def _identity_id(raw_id: str) -> str:
    return raw_id.rsplit("_", 1)[-1]


def _push(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send (raw id, frame) pairs to each identity's sockets after commit."""
    realtime.send_after_commit(
        [(identity_group(_identity_id(raw_id)), frame) for raw_id, frame in messages]
    )


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


def invite(principal: TokenPrincipal, body: dict[str, Any], channel_name: str) -> Call:
    """Ring one identity of the caller's resource. Raises InvalidCallRequest or CallNotAllowed."""
    require_scope(principal, PLACE_CALLS)
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise InvalidCallRequest("to must be the raw id of the identity to call.", target="to")
    if to == principal.raw_id:
        raise InvalidCallRequest("An identity cannot call itself.", target="to")
    video = body.get("video", False)
    if not isinstance(video, bool):
        raise InvalidCallRequest("video must be true or false.", target="video")
    callee = accounts.access_identity(principal.identity.resource, to)
    now = timezone.now()
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


def accept(principal: TokenPrincipal, call_id: Any, channel_name: str) -> Call:
    """Answer a ringing call on this socket. Only the callee may; raises CallNotAllowed."""
    require_scope(principal)
    call, leg = access_call(principal, call_id)
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
            state=CallLegState.CONNECTED, channel_name=channel_name, joined_at=now
        )
        call.state, call.connected_at = CallState.CONNECTED, now
        connected = _frame(call, "stateChanged", state="Connected", answeredBy=channel_name)
        _push([(call.caller_raw_id, connected), (principal.raw_id, connected)])
        _publish_started(call, principal.raw_id)
    return call


def decline(principal: TokenPrincipal, call_id: Any) -> Call:
    require_scope(principal)
    call, leg = access_call(principal, call_id)
    if leg.is_caller or leg.state != CallLegState.RINGING:
        raise CallNotAllowed("Only the callee of a ringing call can decline it.")
    CallParticipant.objects.filter(pk=leg.pk).update(state=CallLegState.DECLINED)
    return _end(call, END_DECLINED, "Declined by the callee.", by=principal.raw_id)


def hang_up(principal: TokenPrincipal, call_id: Any) -> Call:
    """End the call for both legs (cancels it if it still rings)."""
    require_scope(principal)
    call, _ = access_call(principal, call_id)
    if call.state == CallState.DISCONNECTED:
        return call
    if call.state == CallState.RINGING:
        return _end(call, END_CANCELLED, "Cancelled before it was answered.", by=principal.raw_id)
    return _end(call, END_NORMAL, "Hung up.", by=principal.raw_id)


def relay(principal: TokenPrincipal, call_id: Any, body: dict[str, Any]) -> None:
    """Pass an SDP offer or answer or an ICE candidate to the other leg of a live call."""
    require_scope(principal)
    call, _ = access_call(principal, call_id)
    if call.state == CallState.DISCONNECTED:
        raise CallNotAllowed("The call has ended.")
    data = body.get("data")
    if not isinstance(data, dict) or len(json.dumps(data)) > MAX_SIGNAL_BYTES:
        raise InvalidCallRequest(
            f"data must be an object of at most {MAX_SIGNAL_BYTES // 1024} KB.", target="data"
        )
    other = call.participants.exclude(raw_id=principal.raw_id).first()
    if other is None:
        raise CallNotAllowed("Nobody else is in the call.")
    frame = _frame(call, "signal", sender=identifier_kind(principal.raw_id), data=data)
    if other.channel_name:
        frame["toChannel"] = other.channel_name  # only the answering socket takes it
    _push([(other.raw_id, frame)])


def socket_closed(channel_name: str) -> None:
    """The socket holding a leg went away: its live calls end (code 410)."""
    legs = CallParticipant.objects.select_related("call").filter(
        channel_name=channel_name, call__ended_at__isnull=True
    )
    for leg in legs:
        _end(leg.call, END_GONE, "A participant's connection closed.", by=leg.raw_id)


def _end(call: Call, code: int, reason: str, *, by: str) -> Call:
    now = timezone.now()
    with transaction.atomic():
        ended = Call.objects.filter(pk=call.pk, ended_at__isnull=True).update(
            state=CallState.DISCONNECTED, ended_at=now, end_code=code, end_reason=reason
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
        legs = list(call.participants.all())
        CallParticipant.objects.filter(call=call, state=CallLegState.CONNECTED).update(
            state=CallLegState.LEFT, left_at=now
        )
        frame = _frame(
            call, "stateChanged", state="Disconnected", callEndReason={"code": code, "subCode": 0}
        )
        _push([(leg.raw_id, frame) for leg in legs])
        if was_connected:
            _publish_ended(call, by, legs)
    return call


# --- Webhook events --------------------------------------------------------------------------
def _base(call: Call) -> dict[str, Any]:
    return {"correlationId": str(call.pk), "isTwoParty": True, "isRoomsCall": False}


def _user(raw_id: str) -> dict[str, Any]:
    model = identifier_model(raw_id)
    model.pop("kind", None)
    return {"communicationIdentifier": model, "role": "Attendee"}


def _publish_started(call: Call, callee_raw_id: str) -> None:
    subject = f"call/{call.pk}/startedBy/{call.caller_raw_id}"
    started = {**_base(call), "startedBy": _user(call.caller_raw_id)}
    publish_events(
        call.resource,
        [
            NewEvent(schemas.PREFIX + "CallStarted", subject, started),
            *(
                NewEvent(
                    schemas.PREFIX + "CallParticipantAdded",
                    f"call/{call.pk}/participant/{raw_id}",
                    {**started, "user": _user(raw_id), "participantId": raw_id},
                )
                for raw_id in (call.caller_raw_id, callee_raw_id)
            ),
        ],
    )


def _publish_ended(call: Call, by: str, legs: list[CallParticipant]) -> None:
    ended = {
        **_base(call),
        "startedBy": _user(call.caller_raw_id),
        "endedBy": _user(by),
        "reason": {"code": call.end_code, "subCode": 0, "message": call.end_reason},
        "callDurationInSeconds": call.duration_seconds,
    }
    publish_events(
        call.resource,
        [
            *(
                NewEvent(
                    schemas.PREFIX + "CallParticipantRemoved",
                    f"call/{call.pk}/participant/{leg.raw_id}",
                    {**_base(call), "user": _user(leg.raw_id), "participantId": leg.raw_id},
                )
                for leg in legs
                if leg.state == CallLegState.CONNECTED
            ),
            NewEvent(schemas.PREFIX + "CallEnded", f"call/{call.pk}", ended),
        ],
    )
