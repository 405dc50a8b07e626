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

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import IncomingCalls
from apps.accounts.services import IdentityNotFound, access_identity
from apps.calls import phones, signaling
from apps.calls import signals as call_signals
from apps.calls.models import Call, CallKind, CallLegState, CallParticipant, CallTopology
from apps.numbers.orders import APPLICATION_DESTINATION
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
