"""Calls to phone numbers: a client (browser or call agent) calls `4:+E.164` with one of its
resource's numbers as caller id, or the application (Call Automation) creates a call to a phone
or adds one to its call; the phone's leg goes out through the resource's SIP routes and trunks
(apps/pstn/dialing.py checks who may call what, ring_phone() for both). Its media goes through
the media process, where the phone is a leg of the call's AudioBridge room like any other
(apps/automation/sip.py): the call's topology is `bridge`.

The media process reports the phone's progress here: answered and ended (busy, no answer,
declined, or hung up), with the SIP status as the end code, as ACS reports it (486 busy, 480 /
408 no answer, 603 declined; 0 once an answered call ends normally). A client's call to a phone
(1:1) connects and ends with the phone; in the application's calls the phone is one leg that
joins and leaves (the `phone_answered` and `leg_ended` signals tell apps/automation).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.services import TokenPrincipal
from apps.calls import media_link, signaling
from apps.calls import signals as call_signals
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
    CallTopology,
)
from apps.events.services import publish_events
from apps.pstn import dialing

LIVE = (CallLegState.RINGING, CallLegState.CONNECTED)


def dial(
    principal: TokenPrincipal, to: str, body: dict[str, Any], channel_name: str, muted: bool
) -> Call:
    """Place a call from the principal to the phone number `to` (`4:+...`), shown as
    `alternateCallerId`. Raises dialing's refusals (no caller id, no route, too many)."""
    with transaction.atomic():
        call = signaling.start_bridged_call(
            principal, CallKind.ONE_TO_ONE, channel_name, muted, timezone.now()
        )
        ring_phone(call, to, caller_id_of(body.get("alternateCallerId")))
    return call


def live_phone_calls(resource_id: Any) -> dict[str, int]:
    """A resource's phone legs now (either way, ringing or answered), by the trunk's FQDN."""
    by_trunk: dict[str, int] = {}
    for fqdn in CallParticipant.objects.filter(
        call__resource_id=resource_id,
        call__ended_at=None,
        raw_id__startswith=signaling.PHONE_PREFIX,
        state__in=LIVE,
    ).values_list("sip_trunk", flat=True):
        by_trunk[fqdn] = by_trunk.get(fqdn, 0) + 1
    return by_trunk


def ring_phone(call: Call, to: str, caller_id: str | None) -> CallParticipant:
    """Ring the phone `to` (`4:+E.164`) into the bridged `call`, shown as `caller_id`: a
    ringing leg, which the media process places through the route's trunks (the
    `phone_dialed` signal). Checks the toll-fraud rules first, counting the resource's live
    phone legs (this call's earlier ones too). Raises dialing's refusals (DialRefused,
    NoRoute, TooManyPhoneCalls); call it inside the transaction that creates or changes the
    call, so that a refusal changes nothing."""
    by_trunk = live_phone_calls(call.resource_id)
    plan = dialing.plan_dial(
        call.resource,
        to[len(signaling.PHONE_PREFIX) :],
        caller_id,
        live_calls=sum(by_trunk.values()),
        live_by_trunk=by_trunk,
    )
    # A phone that was in the call before (it left, or did not answer) rings on its old row.
    phone, _ = CallParticipant.objects.update_or_create(
        call=call,
        raw_id=to,
        defaults={
            "state": CallLegState.RINGING,
            "sip_trunk": plan.trunks[0],
            "sip_call_id": "",
            "channel_name": "",
            "joined_at": None,
            "left_at": None,
        },
    )
    call_signals.phone_dialed.send(
        Call, call=call, leg=phone, caller_id=plan.caller_id, trunks=list(plan.trunks)
    )
    return phone


def caller_id_of(value: Any) -> str | None:
    """alternateCallerId as the JS client sends it ({"phoneNumber"} or {"rawId"}) or a string."""
    if isinstance(value, dict):
        value = value.get("phoneNumber") or value.get("rawId")
    if isinstance(value, str) and value.startswith(signaling.PHONE_PREFIX):
        value = value[len(signaling.PHONE_PREFIX) :]
    return value if isinstance(value, str) else None


def phone_placed(call_id: str, raw_id: str, trunk: str, sip_call_id: str) -> bool:
    """The INVITE went out through `trunk`. False when the leg is no longer wanted (its
    invitation was cancelled or its call ended meanwhile): the media process hangs it up."""
    legs = CallParticipant.objects.filter(call_id=call_id, raw_id=raw_id)
    legs.update(sip_trunk=trunk, sip_call_id=sip_call_id[:200])
    return legs.filter(state=CallLegState.RINGING, call__ended_at=None).exists()


def phone_early_media(call_id: str) -> None:
    """The phone's network sends audio before the phone answers (ringback, an announcement):
    a client calling it (1:1, still ringing) hears it. Its client gets `EarlyMedia` and sends
    its media to the bridge, where the media process keeps it out of the mix until the answer."""
    call = Call.objects.filter(
        pk=call_id, ended_at=None, kind=CallKind.ONE_TO_ONE, state=CallState.RINGING
    ).first()
    if call is None:
        return
    caller = call.participants.filter(
        raw_id=call.caller_raw_id, state=CallLegState.CONNECTED
    ).first()
    if caller is None or not caller.channel_name:
        return
    early = signaling._frame(
        call,
        "stateChanged",
        state="EarlyMedia",
        topology=CallTopology.BRIDGE,
        participants=signaling.roster(call, without=call.caller_raw_id),
    )
    signaling._push([signaling._to_leg(caller, early)])


def phone_answered(call_id: str, raw_id: str) -> None:
    """The phone answered. A client's call to it connects (the caller's client joins the
    bridge); in the application's call the phone joins, and apps/automation hears of it (the
    `phone_answered` signal: CallConnected, AddParticipantSucceeded). A phone no longer wanted
    (its invitation was cancelled meanwhile) is sent out of the bridge."""
    call = Call.objects.filter(pk=call_id, ended_at=None).first()
    if call is None:
        return  # the media process hangs up the phones of a call that ended
    now = timezone.now()
    with transaction.atomic():
        leg = call.participants.filter(raw_id=raw_id).first()
        if leg is None or leg.state == CallLegState.CONNECTED:
            return
        if not CallParticipant.objects.filter(pk=leg.pk, state=CallLegState.RINGING).update(
            state=CallLegState.CONNECTED, joined_at=now
        ):
            media_link.send_after_commit({"type": "leave", "call": str(call.pk), "rawId": raw_id})
            return
        leg.state, leg.joined_at = CallLegState.CONNECTED, now
        events = [signaling._added_event(call, leg)]
        if call.kind == CallKind.ONE_TO_ONE:
            if call.state == CallState.RINGING:
                signaling.connect_caller(call)
        else:
            if Call.objects.filter(pk=call.pk, state=CallState.RINGING).update(
                state=CallState.CONNECTED, connected_at=now
            ):
                call.state, call.connected_at = CallState.CONNECTED, now
                events.insert(0, signaling._started_event(call))
            added = signaling._frame(
                call, "participantsUpdated", added=[signaling.roster_entry(leg)], removed=[]
            )
            others = call.participants.filter(state=CallLegState.CONNECTED).exclude(pk=leg.pk)
            signaling._push([signaling._to_leg(other, added) for other in others])
        publish_events(call.resource, events)
        call_signals.phone_answered.send(Call, call=call, leg=leg)


def phone_ended(call_id: str, raw_id: str, code: int, reason: str, sub_code: int = 0) -> None:
    """The phone's side ended (refused, unanswered, or hung up), with its SIP status as `code`
    and `sub_code` saying who decided (apps/automation/sip.py). A 1:1 call ends with it, and
    so does a call from the phone that the application has not answered yet; otherwise only the
    phone's leg goes, and apps/automation hears of it through `leg_ended` (AddParticipantFailed,
    CreateCallFailed, ParticipantsUpdated; the last leg out ends the call)."""
    call = Call.objects.filter(pk=call_id, ended_at=None).first()
    if call is None:
        return
    leg = call.participants.filter(raw_id=raw_id, state__in=LIVE).first()
    if leg is None:
        return
    answered = leg.state == CallLegState.CONNECTED
    end_code = signaling.END_NORMAL if answered and code < 300 else code
    why = reason or ("The phone hung up." if answered else "The phone did not answer.")
    if call.kind != CallKind.ONE_TO_ONE and not answered:
        signaling.stop_ringing(call, leg, code, why, sub_code)  # the invitation failed
        return
    if call.kind != CallKind.ONE_TO_ONE and call.state == CallState.CONNECTED:
        signaling.remove_leg(call, leg, end_code)
        return
    # A 1:1 call, or a phone calling the application that gives up before it answers.
    if not answered:
        CallParticipant.objects.filter(pk=leg.pk).update(state=CallLegState.DECLINED)
    signaling.end_call(call, end_code, why, by=raw_id, sub_code=sub_code)
