"""Call Automation's calls: incoming calls offered to the application (answer, reject,
redirect), calls the application places or connects to, call connections (hang up, terminate,
disconnect), participants (add, cancel, remove, mute, transfer) and the hooks signaling calls
when legs join, leave or the call ends. (The package's __init__ says how requests reach the
media process and how its results come back.)
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import Resource
from apps.automation import callbacks
from apps.automation.exceptions import (
    CallConnectionNotFound,
    InvalidAutomationRequest,
    NotSupported,
    WrongCallState,
)
from apps.automation.models import (
    CallConnection,
    ConnectionState,
    MediaStreaming,
    Recording,
    RecordingState,
)
from apps.automation.services.media_operations import _cancel_operations
from apps.automation.services.media_streaming import (
    _create_media_streaming,
    check_media_streaming_options,
)
from apps.automation.services.shared import (
    MAX_OPERATION_CONTEXT,
    _callback_uri,
    _identity_of,
    _live,
    _operation_uri,
    _require_media,
    _text,
    access_participant,
    application_raw_id,
    media_available,
    participants,
)
from apps.calls import media_link, phones, signaling
from apps.calls.models import Call, CallKind, CallLegState, CallParticipant, CallState, CallTopology
from apps.core.errors import ApiError
from apps.core.identifiers import identifier_model, raw_id_of
from apps.events import schemas
from apps.events.services import NewEvent, publish_events

CONTEXT_SALT = "spool.automation.incoming-call"
MAX_CONTEXT_LENGTH = 2048
REJECT_CODES = {"none": 603, "busy": 486, "forbidden": 403}
END_TERMINATED = 0
PHONE_PREFIX = signaling.PHONE_PREFIX
LIVE_LEGS = (CallLegState.RINGING, CallLegState.CONNECTED)
MAX_CALLER_ID_LENGTH = 32
# A phone that did not answer: ACS direct routing reports the trunk's SIP status as the code
# and 560000 + the status as the subCode (an outbound call's final response from the SBC).
TRUNK_SUBCODE = 560000
PHONE_FAILURES = {
    404: "The phone number does not exist.",
    408: "The phone did not answer.",
    480: "The phone did not answer.",
    486: "The phone is busy.",
    487: "The call to the phone was cancelled.",
    603: "The phone declined the call.",
}


def _repeatable(resource: Resource, repeatability_request_id: str) -> CallConnection | None:
    if not repeatability_request_id:
        return None
    return CallConnection.objects.filter(
        resource=resource, repeatability_request_id=repeatability_request_id[:100]
    ).first()


# --- Incoming calls --------------------------------------------------------------------------
def offer_incoming_call(call: Call, to: str) -> None:
    """A caller rang an identity whose calls go to the application: IncomingCall to the
    resource's event subscriptions, with a context that answer/redirect/reject present back."""
    context = signing.dumps({"call": str(call.pk), "to": to}, salt=CONTEXT_SALT)
    caller = call.caller_raw_id
    data = {
        "to": identifier_model(to),
        "from": identifier_model(caller),
        "callerDisplayName": "",
        "serverCallId": str(call.pk),
        "incomingCallContext": context,
        "correlationId": str(call.pk),
    }
    publish_events(
        call.resource,
        [NewEvent(schemas.PREFIX + "IncomingCall", f"/caller/{caller}/recipient/{to}", data)],
    )


def _incoming(resource: Resource, body: dict[str, Any]) -> tuple[Call, str]:
    """The ringing call an incomingCallContext names (this resource's, not expired)."""
    context = _text(body, "incomingCallContext", limit=MAX_CONTEXT_LENGTH, required=True)
    try:
        claims = signing.loads(
            context, salt=CONTEXT_SALT, max_age=settings.INCOMING_CALL_SECONDS + 30
        )
    except signing.BadSignature:
        raise InvalidAutomationRequest(
            "incomingCallContext is not one Spool issued, or it has expired.",
            target="incomingCallContext",
        ) from None
    call = Call.objects.filter(pk=claims.get("call"), resource=resource).first()
    if call is None:
        raise CallConnectionNotFound("The incoming call was not found.")
    if call.state != CallState.RINGING:
        raise WrongCallState("The incoming call is no longer ringing.")
    return call, str(claims.get("to", ""))


def answer(
    resource: Resource, body: dict[str, Any], *, repeatability_request_id: str = ""
) -> CallConnection:
    earlier = _repeatable(resource, repeatability_request_id)
    if earlier is not None:
        return earlier
    call, to = _incoming(resource, body)
    callback_uri = _callback_uri(body)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    streaming = check_media_streaming_options(body.get("mediaStreamingOptions"))
    _require_media()
    now = timezone.now()
    try:
        with transaction.atomic():
            connection = CallConnection.objects.create(
                resource=resource,
                call=call,
                callback_uri=callback_uri,
                source_raw_id=to or application_raw_id(resource),
                targets=[to] if to else [],
                operation_context=context,
                created_at=now,
                repeatability_request_id=repeatability_request_id[:100],
            )
            _create_media_streaming(connection, streaming)
            signaling.connect_caller(call)
    except IntegrityError:
        earlier = _repeatable(resource, repeatability_request_id)
        if earlier is None:
            raise
        return earlier
    return connection


def answer_with_built_in_ivr(call: Call, to: str) -> None:
    """The console's Try IVR: Spool's own IVR (apps/automation/ivr.py) answers at once; its
    callbacks are handled in the worker rather than POSTed (BUILT_IN_IVR_URI)."""
    if not media_available():
        signaling.end_call(call, 503, "The media plane is not running.", by=to)
        return
    transaction.on_commit(lambda: _answer_built_in(call, to))


def _answer_built_in(call: Call, to: str) -> None:
    call.refresh_from_db()
    if call.state != CallState.RINGING:
        return
    with transaction.atomic():
        CallConnection.objects.create(
            resource=call.resource,
            call=call,
            callback_uri=callbacks.BUILT_IN_IVR_URI,
            source_raw_id=to,
            targets=[to],
            operation_context="try-ivr",
            created_at=timezone.now(),
        )
        signaling.connect_caller(call)


def reject(resource: Resource, body: dict[str, Any]) -> None:
    call, to = _incoming(resource, body)
    reason = body.get("callRejectReason", "none")
    if reason not in REJECT_CODES:
        raise InvalidAutomationRequest(
            "callRejectReason must be none, busy or forbidden.", target="callRejectReason"
        )
    signaling.end_call(
        call, REJECT_CODES[reason], f"Rejected by the application ({reason}).", by=to
    )


def redirect(resource: Resource, body: dict[str, Any]) -> None:
    """Ring another identity instead: the call goes on as a plain call between browsers
    (through the media bridge), without the application."""
    call, _ = _incoming(resource, body)
    target = _target_of(resource, body.get("target"), "target", phones=False)
    if target == call.caller_raw_id:
        raise InvalidAutomationRequest(
            "A call cannot be redirected to its caller.", target="target"
        )
    with transaction.atomic():
        signaling.ring(call, target)


# --- Calls the application places ------------------------------------------------------------
def create_call(
    resource: Resource, body: dict[str, Any], *, repeatability_request_id: str = ""
) -> CallConnection:
    """Ring one or more identities or phone numbers; the call connects when one answers
    (CallConnected). Phones need `sourceCallerIdNumber` and pass the toll-fraud rules
    (phones.ring_phone); a refusal creates nothing. When every target has stopped ringing
    unanswered, CreateCallFailed (leg_ended)."""
    earlier = _repeatable(resource, repeatability_request_id)
    if earlier is not None:
        return earlier
    targets = body.get("targets")
    if not isinstance(targets, list) or not targets or len(targets) > 10:
        raise InvalidAutomationRequest("targets must list 1 to 10 identifiers.", target="targets")
    raw_ids = list(dict.fromkeys(_target_of(resource, t, "targets") for t in targets))
    calls_phones = any(raw_id.startswith(PHONE_PREFIX) for raw_id in raw_ids)
    caller_id = _source_caller_id(body) if calls_phones else None
    callback_uri = _callback_uri(body)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    display_name = _text(body, "sourceDisplayName", limit=256)
    source = application_raw_id(resource)
    if body.get("source") is not None:
        source = _identity_of(resource, body["source"], "source")
    streaming = check_media_streaming_options(body.get("mediaStreamingOptions"))
    _require_media()
    now = timezone.now()
    try:
        with transaction.atomic():
            call = Call.objects.create(
                resource=resource,
                kind=CallKind.GROUP,
                topology=CallTopology.BRIDGE,
                caller_raw_id=source,
                created_at=now,
            )
            connection = CallConnection.objects.create(
                resource=resource,
                call=call,
                callback_uri=callback_uri,
                source_raw_id=source,
                source_display_name=display_name,
                targets=raw_ids,
                operation_context=context,
                created_at=now,
                repeatability_request_id=repeatability_request_id[:100],
            )
            _create_media_streaming(connection, streaming)
            for raw_id in raw_ids:
                if raw_id.startswith(PHONE_PREFIX):
                    _ring_phone(call, raw_id, caller_id, "targets")
                else:
                    signaling.ring(call, raw_id)
    except IntegrityError:
        earlier = _repeatable(resource, repeatability_request_id)
        if earlier is None:
            raise
        return earlier
    return connection


def _target_of(resource: Resource, model: Any, field: str, *, phones: bool = True) -> str:
    """The raw id an identifier names: an identity of this resource or, where `phones`, a
    phone number (`4:+...`, checked by _ring_phone)."""
    raw_id = raw_id_of(model)
    if raw_id is None or not raw_id.startswith(PHONE_PREFIX):
        return _identity_of(resource, model, field)
    if not phones:
        raise NotSupported(
            f"{field}: phone numbers can be called with create call and add participant only.",
            target=field,
        )
    return raw_id


def _source_caller_id(body: dict[str, Any]) -> str:
    """The E.164 number of `sourceCallerIdNumber` (`{"value": "+1..."}`), which a call to a
    phone shows; ring_phone checks that the resource owns it."""
    value = body.get("sourceCallerIdNumber")
    if value is None:
        raise InvalidAutomationRequest(
            "sourceCallerIdNumber is required to call a phone number: one of the resource's "
            "numbers with outbound calling.",
            target="sourceCallerIdNumber",
        )
    number = value.get("value") if isinstance(value, dict) else None
    if number is None:
        raw_id = raw_id_of(value)
        number = raw_id[len(PHONE_PREFIX) :] if raw_id and raw_id.startswith(PHONE_PREFIX) else None
    if not isinstance(number, str) or not number or len(number) > MAX_CALLER_ID_LENGTH:
        raise InvalidAutomationRequest(
            'sourceCallerIdNumber must be a phone number identifier: {"value": "+14255550100"}.',
            target="sourceCallerIdNumber",
        )
    return number


def _ring_phone(call: Call, raw_id: str, caller_id: str | None, field: str) -> CallParticipant:
    """phones.ring_phone, whose refusals name this API's fields."""
    try:
        return phones.ring_phone(call, raw_id, caller_id)
    except ApiError as error:
        names = {"to": field, "alternateCallerId": "sourceCallerIdNumber"}
        error.target = names.get(error.target or "", error.target)
        raise


def connect(resource: Resource, body: dict[str, Any]) -> CallConnection:
    """Join the application to a live call by server call id (ACS `:connect`)."""
    locator = body.get("callLocator")
    call = _call_of_locator(resource, locator)
    if call.topology != CallTopology.BRIDGE:
        raise NotSupported(
            "Only calls through the media bridge (calls with the application in them) can be "
            "connected to.",
            target="callLocator",
        )
    callback_uri = _callback_uri(body)
    streaming = check_media_streaming_options(body.get("mediaStreamingOptions"))
    _require_media()
    with transaction.atomic():
        connection = CallConnection.objects.create(
            resource=resource,
            call=call,
            callback_uri=callback_uri,
            source_raw_id=application_raw_id(resource),
            operation_context=_text(body, "operationContext", limit=MAX_OPERATION_CONTEXT),
            created_at=timezone.now(),
            state=ConnectionState.CONNECTED,
            connected_at=timezone.now(),
        )
        callbacks.emit(connection, "CallConnected", {})
        _create_media_streaming(connection, streaming)
    return connection


def _call_of_locator(resource: Resource, locator: Any) -> Call:
    if not isinstance(locator, dict):
        raise InvalidAutomationRequest("callLocator is required.", target="callLocator")
    kind = locator.get("kind", "serverCallLocator")
    value = locator.get("serverCallId") or locator.get("id")
    if kind not in ("serverCallLocator", "ServerCallLocator") or not isinstance(value, str):
        raise NotSupported("callLocator must be a serverCallLocator here.", target="callLocator")
    try:
        key = uuid.UUID(value)
    except ValueError:
        raise CallConnectionNotFound(f"Call {value!r} was not found.") from None
    call = Call.objects.filter(pk=key, resource=resource, ended_at__isnull=True).first()
    if call is None:
        raise CallConnectionNotFound(f"Call {value!r} was not found or has ended.")
    return call


# --- Call connections ------------------------------------------------------------------------
def access_connection(resource: Resource, connection_id: Any) -> CallConnection:
    try:
        key = uuid.UUID(str(connection_id))
    except ValueError:
        raise CallConnectionNotFound(f"Call connection {connection_id!r} was not found.") from None
    connection = (
        CallConnection.objects.select_related("call").filter(pk=key, resource=resource).first()
    )
    if connection is None:
        raise CallConnectionNotFound(f"Call connection {connection_id!r} was not found.")
    return connection


def list_connections(resource: Resource) -> QuerySet[CallConnection]:
    return CallConnection.objects.filter(resource=resource).select_related("call")


def hang_up(connection: CallConnection) -> None:
    """The application leaves. A call with one participant left ends with it."""
    if connection.state == ConnectionState.DISCONNECTED:
        return
    call = connection.call
    live = call.participants.filter(state=CallLegState.CONNECTED).count()
    if live <= 1 or call.state == CallState.RINGING:
        terminate(connection)
        return
    disconnect(connection, "The application hung up.")


def terminate(connection: CallConnection) -> None:
    """End the call for everyone."""
    if connection.call.ended_at is None:
        signaling.end_call(
            connection.call,
            END_TERMINATED,
            "Ended by the application.",
            by=connection.source_raw_id,
        )
    disconnect(connection, "The call ended.")


def disconnect(
    connection: CallConnection, reason: str, *, code: int = 200, subcode: int = 0
) -> None:
    """The connection is over: CallDisconnected is its last callback; media operations
    still queued are dropped."""
    with transaction.atomic():
        done = (
            CallConnection.objects.filter(pk=connection.pk)
            .exclude(state=ConnectionState.DISCONNECTED)
            .update(state=ConnectionState.DISCONNECTED, ended_at=timezone.now(), end_reason=reason)
        )
        if not done:
            return
        connection.state = ConnectionState.DISCONNECTED
        _cancel_operations(connection, emit=False)
        MediaStreaming.objects.filter(connection=connection).update(wanted=False)
        media_link.send_after_commit({"type": "streaming", "call": str(connection.call_id)})
        callbacks.emit(connection, "CallDisconnected", {}, result=(code, subcode, reason))
        media_link.send_after_commit({"type": "operations", "call": str(connection.call_id)})


# --- Participants ----------------------------------------------------------------------------


def participant_body(leg: CallParticipant) -> dict[str, Any]:
    return {
        "identifier": identifier_model(leg.raw_id),
        "isMuted": leg.is_muted,
        "isOnHold": leg.is_on_hold,
    }


def add_participant(connection: CallConnection, body: dict[str, Any]) -> tuple[str, str]:
    """Ring an identity or a phone number into the call; AddParticipantSucceeded when it
    answers, or AddParticipantFailed (a phone's SIP status as the result). A phone needs
    `sourceCallerIdNumber` and passes the toll-fraud rules; a refusal changes nothing.
    Returns (raw id, invitation id)."""
    _live(connection)
    raw_id = _target_of(connection.resource, body.get("participantToAdd"), "participantToAdd")
    if connection.call.participants.filter(
        raw_id=raw_id, state__in=[CallLegState.CONNECTED, CallLegState.RINGING]
    ).exists():
        raise InvalidAutomationRequest(
            "That participant is already in or invited to the call.", target="participantToAdd"
        )
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    url = _operation_uri(body)
    phone = raw_id.startswith(PHONE_PREFIX)
    caller_id = _source_caller_id(body) if phone else None
    with transaction.atomic():
        if phone:
            leg = _ring_phone(connection.call, raw_id, caller_id, "participantToAdd")
        else:
            leg = signaling.ring(connection.call, raw_id)
        remember_invitation(connection, leg, "add", context, url)
    return raw_id, str(leg.pk)


def cancel_add_participant(connection: CallConnection, body: dict[str, Any]) -> str:
    _live(connection)
    invitation = _text(body, "invitationId", limit=100, required=True)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    leg = connection.call.participants.filter(
        pk=int(invitation) if invitation.isdigit() else -1, state=CallLegState.RINGING
    ).first()
    if leg is None:
        raise InvalidAutomationRequest("No pending invitation has that id.", target="invitationId")
    with transaction.atomic():
        take_invitation(connection, leg)
        signaling.stop_ringing(connection.call, leg, signaling.END_CANCELLED, "Cancelled.")
        callbacks.emit(
            connection,
            "CancelAddParticipantSucceeded",
            {"invitationId": invitation, "operationContext": context},
        )
    return invitation


def remove_participant(connection: CallConnection, body: dict[str, Any]) -> None:
    _live(connection)
    raw_id = raw_id_of(body.get("participantToRemove")) or ""
    leg = access_participant(connection, raw_id)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    with transaction.atomic():
        signaling.remove_leg(connection.call, leg, signaling.END_REMOVED)
        callbacks.emit(
            connection,
            "RemoveParticipantSucceeded",
            {"participant": identifier_model(raw_id), "operationContext": context},
            url=_operation_uri(body),
        )


def mute(connection: CallConnection, body: dict[str, Any]) -> None:
    _live(connection)
    targets = body.get("targetParticipants")
    if not isinstance(targets, list) or len(targets) != 1:
        raise InvalidAutomationRequest(
            "targetParticipants must name exactly one participant.", target="targetParticipants"
        )
    leg = access_participant(connection, raw_id_of(targets[0]) or "")
    with transaction.atomic():
        CallParticipant.objects.filter(pk=leg.pk).update(is_muted=True)
        media_link.send_after_commit(
            {"type": "mute", "call": str(connection.call_id), "rawId": leg.raw_id, "muted": True}
        )


def transfer(connection: CallConnection, body: dict[str, Any]) -> None:
    """Hand the call over to another identity: it rings, and when it answers the application
    leaves (CallTransferAccepted, then CallDisconnected)."""
    _live(connection)
    raw_id = _target_of(
        connection.resource, body.get("targetParticipant"), "targetParticipant", phones=False
    )
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    if connection.call.participants.filter(raw_id=raw_id, state=CallLegState.CONNECTED).exists():
        raise InvalidAutomationRequest(
            "The transfer target is already in the call.", target="targetParticipant"
        )
    with transaction.atomic():
        CallConnection.objects.filter(pk=connection.pk).update(state=ConnectionState.TRANSFERRING)
        leg = signaling.ring(connection.call, raw_id)
        remember_invitation(connection, leg, "transfer", context, _operation_uri(body))


def remember_invitation(
    connection: CallConnection, leg: CallParticipant, kind: str, context: str, url: str
) -> None:
    invitations = dict(connection.invitations)
    invitations[leg.raw_id] = {"kind": kind, "context": context, "url": url, "id": str(leg.pk)}
    CallConnection.objects.filter(pk=connection.pk).update(invitations=invitations)
    connection.invitations = invitations


def take_invitation(connection: CallConnection, raw_id: Any) -> dict[str, Any] | None:
    """The pending invitation of `raw_id` (a raw id, or its leg), which is forgotten."""
    raw_id = getattr(raw_id, "raw_id", raw_id)
    connection.refresh_from_db(fields=["invitations"])
    invitations = dict(connection.invitations)
    invitation = invitations.pop(raw_id, None)
    if invitation is not None:
        CallConnection.objects.filter(pk=connection.pk).update(invitations=invitations)
        connection.invitations = invitations
    return invitation


# --- Hooks from signaling --------------------------------------------------------------------


def media_joined(call_id: str, raw_id: str) -> None:
    """A leg's media reached the bridge (the media process says so): the connection is
    connected (CallConnected) and hears who is in the call (ParticipantsUpdated); an invitation
    or transfer to this leg succeeded."""
    for connection in CallConnection.objects.filter(call_id=call_id).exclude(
        state=ConnectionState.DISCONNECTED
    ):
        with transaction.atomic():
            if connection.state == ConnectionState.CONNECTING:
                CallConnection.objects.filter(pk=connection.pk).update(
                    state=ConnectionState.CONNECTED, connected_at=timezone.now()
                )
                connection.state = ConnectionState.CONNECTED
                callbacks.emit(connection, "CallConnected", {})
            invitation = take_invitation(connection, raw_id)
            if invitation is not None:
                _invitation_answered(connection, raw_id, invitation)
            callbacks.emit(connection, "ParticipantsUpdated", _roster_data(connection))


def _invitation_answered(
    connection: CallConnection, raw_id: str, invitation: dict[str, Any]
) -> None:
    context, url = invitation["context"], invitation["url"]
    if invitation["kind"] == "add":
        callbacks.emit(
            connection,
            "AddParticipantSucceeded",
            {"participant": identifier_model(raw_id), "operationContext": context},
            url=url,
        )
        return
    callbacks.emit(
        connection,
        "CallTransferAccepted",
        {
            "transferTarget": identifier_model(raw_id),
            "transferee": identifier_model(connection.call.caller_raw_id),
            "operationContext": context,
        },
        url=url,
    )
    disconnect(connection, "The call was transferred.")


def leg_ended(
    call: Call, leg: CallParticipant, code: int, *, sub_code: int = 0, reason: str = ""
) -> None:
    """A leg left or stopped ringing: a pending invitation failed, the others are told. A
    call the application placed whose targets all stopped ringing unanswered fails
    (CreateCallFailed, then CallDisconnected) and ends with the last one's code. A phone's
    `sub_code` and `reason` (apps/automation/sip.py) are its resultInformation when given."""
    result = _leg_result(leg.raw_id, code)
    if sub_code and reason:
        result = (result[0], sub_code, reason)
    for connection in CallConnection.objects.filter(call=call).exclude(
        state=ConnectionState.DISCONNECTED
    ):
        invitation = take_invitation(connection, leg.raw_id)
        if invitation is not None:
            name = "AddParticipantFailed" if invitation["kind"] == "add" else "CallTransferFailed"
            if invitation["kind"] == "transfer":
                CallConnection.objects.filter(pk=connection.pk).update(
                    state=ConnectionState.CONNECTED
                )
            callbacks.emit(
                connection,
                name,
                {
                    "participant": identifier_model(leg.raw_id),
                    "operationContext": invitation["context"],
                },
                url=invitation["url"],
                result=result,
            )
        elif connection.state == ConnectionState.CONNECTED:
            callbacks.emit(connection, "ParticipantsUpdated", _roster_data(connection))
    media_link.send_after_commit({"type": "leave", "call": str(call.pk), "rawId": leg.raw_id})
    unanswered = Call.objects.filter(pk=call.pk, state=CallState.RINGING, ended_at=None)
    if unanswered.exists() and not call.participants.filter(state__in=LIVE_LEGS).exists():
        for connection in CallConnection.objects.filter(
            call=call, state=ConnectionState.CONNECTING
        ):
            _create_call_failed(connection, result)
        signaling.end_call(call, result[0], result[2], by=leg.raw_id, sub_code=result[1])


def _leg_result(raw_id: str, code: int) -> tuple[int, int, str]:
    """resultInformation of a leg that did not answer (`code`: why it stopped ringing)."""
    code = code if code >= 400 else 487
    if raw_id.startswith(PHONE_PREFIX):
        message = PHONE_FAILURES.get(code, f"The call to the phone failed (SIP {code}).")
        return code, TRUNK_SUBCODE + code, message
    return code, 0, "The participant did not answer."


def _create_call_failed(connection: CallConnection, result: tuple[int, int, str]) -> None:
    callbacks.emit(connection, "CreateCallFailed", {}, result=result)
    disconnect(connection, result[2], code=result[0], subcode=result[1])


def call_ended(call: Call) -> None:
    # A recording ends with its call; the media process writes its file.
    Recording.objects.filter(call=call).exclude(state=RecordingState.STOPPED).update(
        state=RecordingState.STOPPED, stopped_at=timezone.now()
    )
    # A call the application placed that ended before anyone answered (nobody answered in
    # time, the media failed) failed to be created; one the application ended did not.
    never_answered = call.end_code not in (0, None) and (
        Call.objects.filter(pk=call.pk, connected_at=None).exists()
    )
    for connection in CallConnection.objects.filter(call=call).exclude(
        state=ConnectionState.DISCONNECTED
    ):
        code = 200 if call.end_code in (0, None) else int(call.end_code)
        # An abnormal end's subCode too (510503: the call's Janus server went away).
        subcode = (call.end_subcode or 0) if code != 200 else 0
        reason = call.end_reason or "The call ended."
        if never_answered and connection.state == ConnectionState.CONNECTING:
            _create_call_failed(connection, (code, subcode, reason))
        else:
            disconnect(connection, reason, code=code, subcode=subcode)
    media_link.send_after_commit({"type": "end", "call": str(call.pk)})


def dial_phone(call: Call, leg: CallParticipant, caller_id: str, trunks: list[str]) -> None:
    """A client called a phone number: the media process places it through the trunks."""
    media_link.send_after_commit(
        {
            "type": "dial",
            "call": str(call.pk),
            "rawId": leg.raw_id,
            "callerId": caller_id,
            "trunks": trunks,
        }
    )


def answer_phone(call: Call, raw_id: str) -> None:
    """A call from a phone was answered: the media process accepts the phone's INVITE."""
    media_link.send_after_commit({"type": "answer_phone", "call": str(call.pk), "rawId": raw_id})


def _roster_data(connection: CallConnection) -> dict[str, Any]:
    return {
        "participants": [participant_body(leg) for leg in participants(connection)],
        "sequenceNumber": connection.next_callback_seq,
    }
