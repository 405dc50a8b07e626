"""Calls to phone numbers: a client (browser or call agent) calls `4:+E.164` with one of its
resource's numbers as caller id; the call goes out through the resource's SIP routes and
trunks (apps/pstn/dialing.py checks who may call what). Its media goes through the media
process, where the phone is a leg of the call's AudioBridge room like any other
(apps/automation/sip.py): the call's topology is `bridge`.

The media process reports the phone's progress here: answered (the caller's client then
sends its media to the bridge) and ended (busy, no answer, declined, or hung up), with the SIP
status as the call's end code, as ACS reports it (486 busy, 480 / 408 no answer, 603
declined; 0 once an answered call ends normally).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.services import TokenPrincipal
from apps.calls import signaling
from apps.calls import signals as call_signals
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
)
from apps.events.services import publish_events
from apps.pstn import dialing

LIVE = (CallLegState.RINGING, CallLegState.CONNECTED)


def dial(
    principal: TokenPrincipal, to: str, body: dict[str, Any], channel_name: str, muted: bool
) -> Call:
    """Place a call from the principal to the phone number `to` (`4:+...`), shown as
    `alternateCallerId`. Raises dialing's refusals (no caller id, no route, too many)."""
    resource = principal.identity.resource
    with transaction.atomic():
        live = CallParticipant.objects.filter(
            call__resource=resource,
            call__ended_at=None,
            raw_id__startswith=signaling.PHONE_PREFIX,
            state__in=LIVE,
        )
        by_trunk: dict[str, int] = {}
        for fqdn in live.values_list("sip_trunk", flat=True):
            by_trunk[fqdn] = by_trunk.get(fqdn, 0) + 1
        plan = dialing.plan_dial(
            resource,
            to[len(signaling.PHONE_PREFIX) :],
            _caller_id(body.get("alternateCallerId")),
            live_calls=live.count(),
            live_by_trunk=by_trunk,
        )
        call = signaling.start_bridged_call(
            principal, CallKind.ONE_TO_ONE, channel_name, muted, timezone.now()
        )
        phone = CallParticipant.objects.create(
            call=call, raw_id=to, state=CallLegState.RINGING, sip_trunk=plan.trunks[0]
        )
        call_signals.phone_dialed.send(
            Call, call=call, leg=phone, caller_id=plan.caller_id, trunks=list(plan.trunks)
        )
    return call


def _caller_id(value: Any) -> str | None:
    """alternateCallerId as the JS client sends it ({"phoneNumber"} or {"rawId"}) or a string."""
    if isinstance(value, dict):
        value = value.get("phoneNumber") or value.get("rawId")
    if isinstance(value, str) and value.startswith(signaling.PHONE_PREFIX):
        value = value[len(signaling.PHONE_PREFIX) :]
    return value if isinstance(value, str) else None


def phone_placed(call_id: str, raw_id: str, trunk: str, sip_call_id: str) -> None:
    """The INVITE went out through `trunk`."""
    CallParticipant.objects.filter(call_id=call_id, raw_id=raw_id).update(
        sip_trunk=trunk, sip_call_id=sip_call_id[:200]
    )


def phone_answered(call_id: str, raw_id: str) -> None:
    """The phone answered: the call connects, and the caller's client joins the bridge."""
    call = Call.objects.filter(pk=call_id, ended_at=None).first()
    if call is None:
        return
    with transaction.atomic():
        leg = call.participants.filter(raw_id=raw_id, state=CallLegState.RINGING).first()
        if leg is None:
            return
        CallParticipant.objects.filter(pk=leg.pk).update(
            state=CallLegState.CONNECTED, joined_at=timezone.now()
        )
        leg.state = CallLegState.CONNECTED
        if call.state == CallState.RINGING:
            signaling.connect_caller(call)
        publish_events(call.resource, [signaling._added_event(call, leg)])


def phone_ended(call_id: str, raw_id: str, code: int, reason: str) -> None:
    """The phone's side ended (refused, unanswered, or hung up): so does its 1:1 call."""
    call = Call.objects.filter(pk=call_id, ended_at=None).first()
    if call is None:
        return
    leg = call.participants.filter(raw_id=raw_id, state__in=LIVE).first()
    if leg is None:
        return
    answered = leg.state == CallLegState.CONNECTED
    if not answered:
        CallParticipant.objects.filter(pk=leg.pk).update(state=CallLegState.DECLINED)
    end_code = signaling.END_NORMAL if answered and code < 300 else code
    why = reason or ("The phone hung up." if answered else "The phone did not answer.")
    signaling.end_call(call, end_code, why, by=raw_id)
