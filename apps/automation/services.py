"""Call Automation's rules: incoming calls offered to the application, call connections
(create, answer, redirect, reject, hang up, terminate), participants, media operations and
recordings. The API views, the signaling hooks and the media process all call these.

A call the application is in has topology `bridge`: the legs' media meets in a Janus
AudioBridge room that the media process (apps/automation/media.py) holds. Requests here change
rows and tell the media process (apps/calls/media_link.py); what happens on the media plane
comes back as callbacks (apps/automation/callbacks.py), which go out in order per connection.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.automation import callbacks, storage
from apps.automation.exceptions import (
    CallConnectionNotFound,
    InvalidAutomationRequest,
    MediaPlaneUnavailable,
    NotSupported,
    RecordingNotFound,
    WrongCallState,
)
from apps.automation.models import (
    CallConnection,
    ConnectionState,
    MediaOperation,
    MediaStreaming,
    OperationKind,
    OperationState,
    Recording,
    RecordingState,
    StreamingState,
)
from apps.calls import media_link, signaling
from apps.calls.models import Call, CallKind, CallLegState, CallParticipant, CallState, CallTopology
from apps.core.identifiers import identifier_model, is_communication_user, raw_id_of
from apps.core.outbound import WEBSOCKET_SCHEMES, check_url
from apps.events import schemas
from apps.events.services import NewEvent, publish_events

CONTEXT_SALT = "spool.automation.incoming-call"
MEDIA_ALIVE_KEY = "automation:media:alive"
MAX_CONTEXT_LENGTH = 2048
MAX_OPERATION_CONTEXT = 2048
MAX_PLAY_SOURCES = 10
MAX_TEXT_LENGTH = 4000
MAX_TONES = 50
MAX_PLAY_TO = 50
# ACS names DTMF tones by word; clients send the key itself.
TONE_NAMES = {
    **{
        str(d): n for d, n in enumerate("zero one two three four five six seven eight nine".split())
    },
    "*": "asterisk",
    "#": "pound",
    "A": "a",
    "B": "b",
    "C": "c",
    "D": "d",
}
TONE_KEYS = {name: key for key, name in TONE_NAMES.items()}
REJECT_CODES = {"none": 603, "busy": 486, "forbidden": 403}
END_TERMINATED = 0


# --- Identities and the media plane ---------------------------------------------------------
def application_raw_id(resource: Resource) -> str:
    """Who the application is in its calls (ACS shows the application's own identity)."""
    return f"8:acs:{resource.pk}_callautomation"


def media_available() -> bool:
    """The media process is alive (it refreshes this mark every second)."""
    return bool(cache.get(MEDIA_ALIVE_KEY))


def _require_media() -> None:
    if not media_available():
        raise MediaPlaneUnavailable(
            "The media plane is not running: start Spool with Janus installed "
            "(manage.py serve starts it), or run manage.py media."
        )


# --- Checks on request bodies ----------------------------------------------------------------
def _text(body: dict[str, Any], field: str, *, limit: int, required: bool = False) -> str:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise InvalidAutomationRequest(f"{field} is required.", target=field)
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidAutomationRequest(
            f"{field} must be a string of at most {limit} characters.", target=field
        )
    return value


def _callback_uri(
    body: dict[str, Any], field: str = "callbackUri", *, required: bool = True
) -> str:
    value = _text(body, field, limit=2048, required=required)
    return check_url(value, target=field) if value else ""


def _identity_of(resource: Resource, model: Any, field: str) -> str:
    """The raw id a CommunicationIdentifierModel names, which must be an identity of this
    resource (phone numbers need SIP trunks, which are not set up here yet)."""
    raw_id = raw_id_of(model)
    if raw_id is None:
        raise InvalidAutomationRequest(
            f"{field} must name a communication identifier.", target=field
        )
    if raw_id.startswith("4:"):
        raise NotSupported(
            "Calls to phone numbers need a SIP trunk, which this deployment does not have yet.",
            target=field,
        )
    if not is_communication_user(raw_id):
        raise NotSupported(f"{field}: only communication users can be called here.", target=field)
    return accounts.access_identity(resource, raw_id).raw_id


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
    target = _identity_of(resource, body.get("target"), "target")
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
    """Ring one or more identities; the call connects when one answers (CallConnected)."""
    earlier = _repeatable(resource, repeatability_request_id)
    if earlier is not None:
        return earlier
    targets = body.get("targets")
    if not isinstance(targets, list) or not targets or len(targets) > 10:
        raise InvalidAutomationRequest("targets must list 1 to 10 identifiers.", target="targets")
    raw_ids = list(dict.fromkeys(_identity_of(resource, t, "targets") for t in targets))
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
                signaling.ring(call, raw_id)
    except IntegrityError:
        earlier = _repeatable(resource, repeatability_request_id)
        if earlier is None:
            raise
        return earlier
    return connection


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


def _live(connection: CallConnection) -> CallConnection:
    if connection.state != ConnectionState.CONNECTED:
        raise WrongCallState(
            f"The call connection is {connection.state}: this needs an established call."
        )
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
def participants(connection: CallConnection) -> list[CallParticipant]:
    return list(connection.call.participants.filter(state=CallLegState.CONNECTED))


def participant_body(leg: CallParticipant) -> dict[str, Any]:
    return {
        "identifier": identifier_model(leg.raw_id),
        "isMuted": leg.is_muted,
        "isOnHold": leg.is_on_hold,
    }


def access_participant(connection: CallConnection, raw_id: str) -> CallParticipant:
    leg = connection.call.participants.filter(raw_id=raw_id, state=CallLegState.CONNECTED).first()
    if leg is None:
        raise CallConnectionNotFound(f"Participant {raw_id!r} is not in the call.")
    return leg


def add_participant(connection: CallConnection, body: dict[str, Any]) -> tuple[str, str]:
    """Ring an identity into the call; AddParticipantSucceeded when it answers (or Failed).
    Returns (raw id, invitation id)."""
    _live(connection)
    raw_id = _identity_of(connection.resource, body.get("participantToAdd"), "participantToAdd")
    if connection.call.participants.filter(
        raw_id=raw_id, state__in=[CallLegState.CONNECTED, CallLegState.RINGING]
    ).exists():
        raise InvalidAutomationRequest(
            "That participant is already in or invited to the call.", target="participantToAdd"
        )
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    with transaction.atomic():
        leg = signaling.ring(connection.call, raw_id)
        remember_invitation(connection, leg, "add", context, _operation_uri(body))
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
    raw_id = _identity_of(connection.resource, body.get("targetParticipant"), "targetParticipant")
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    if connection.call.participants.filter(raw_id=raw_id, state=CallLegState.CONNECTED).exists():
        raise InvalidAutomationRequest(
            "The transfer target is already in the call.", target="targetParticipant"
        )
    with transaction.atomic():
        CallConnection.objects.filter(pk=connection.pk).update(state=ConnectionState.TRANSFERRING)
        leg = signaling.ring(connection.call, raw_id)
        remember_invitation(connection, leg, "transfer", context, _operation_uri(body))


def _operation_uri(body: dict[str, Any]) -> str:
    return _callback_uri(body, "operationCallbackUri", required=False)


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


def leg_ended(call: Call, leg: CallParticipant, code: int) -> None:
    """A leg left or stopped ringing: a pending invitation failed, the others are told."""
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
                result=(code if code >= 400 else 487, 0, "The participant did not answer."),
            )
        elif connection.state == ConnectionState.CONNECTED:
            callbacks.emit(connection, "ParticipantsUpdated", _roster_data(connection))
    media_link.send_after_commit({"type": "leave", "call": str(call.pk), "rawId": leg.raw_id})


def call_ended(call: Call) -> None:
    # A recording ends with its call; the media process writes its file.
    Recording.objects.filter(call=call).exclude(state=RecordingState.STOPPED).update(
        state=RecordingState.STOPPED, stopped_at=timezone.now()
    )
    for connection in CallConnection.objects.filter(call=call).exclude(
        state=ConnectionState.DISCONNECTED
    ):
        code = 200 if call.end_code in (0, None) else int(call.end_code)
        disconnect(connection, call.end_reason or "The call ended.", code=code)
    media_link.send_after_commit({"type": "end", "call": str(call.pk)})


def _roster_data(connection: CallConnection) -> dict[str, Any]:
    return {
        "participants": [participant_body(leg) for leg in participants(connection)],
        "sequenceNumber": connection.next_callback_seq,
    }


# --- Media operations ------------------------------------------------------------------------
def _queue(
    connection: CallConnection, kind: str, request: dict[str, Any], body: dict[str, Any]
) -> MediaOperation:
    _live(connection)
    with transaction.atomic():
        if body.get("interruptCallMediaOperation") is True:
            _cancel_operations(connection, emit=True)
        operation = MediaOperation.objects.create(
            connection=connection,
            kind=kind,
            request=request,
            operation_context=_text(body, "operationContext", limit=MAX_OPERATION_CONTEXT),
            callback_uri=_operation_uri(body),
            created_at=timezone.now(),
        )
        media_link.send_after_commit({"type": "operations", "call": str(connection.call_id)})
    return operation


def check_play_source(source: Any, field: str) -> dict[str, Any]:
    """A PlaySource reduced to what the media process plays: {"file": url} or {"text", "voice",
    "locale"}. Raises InvalidAutomationRequest."""
    if not isinstance(source, dict):
        raise InvalidAutomationRequest(f"{field} must be a play source.", target=field)
    kind = str(source.get("kind", "")).lower()
    if kind == "file":
        url = (
            (source.get("file") or {}).get("uri") if isinstance(source.get("file"), dict) else None
        )
        return {"file": check_url(url, target=f"{field}.file.uri")}
    if kind in ("text", "ssml"):
        inner = source.get(kind)
        if not isinstance(inner, dict):
            raise InvalidAutomationRequest(f"{field}.{kind} is required.", target=field)
        text = inner.get("text") if kind == "text" else inner.get("ssmlText")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_LENGTH:
            raise InvalidAutomationRequest(
                f"{field}: the text must be 1 to {MAX_TEXT_LENGTH} characters.", target=field
            )
        return {
            kind: text,
            "voice": str(inner.get("voiceName") or ""),
            "locale": str(inner.get("sourceLocale") or ""),
        }
    raise InvalidAutomationRequest(f"{field}.kind must be file, text or ssml.", target=field)


def play(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    sources = body.get("playSources")
    if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_PLAY_SOURCES:
        raise InvalidAutomationRequest(
            f"playSources must list 1 to {MAX_PLAY_SOURCES} sources.", target="playSources"
        )
    checked = [check_play_source(s, f"playSources[{i}]") for i, s in enumerate(sources)]
    to = _play_to(connection, body.get("playTo"))
    options = body.get("playOptions") or {}
    loop = bool(options.get("loop")) if isinstance(options, dict) else False
    request = {"sources": checked, "loop": loop, "to": to}
    return _queue(connection, OperationKind.PLAY, request, body)


def _play_to(connection: CallConnection, play_to: Any) -> list[str] | None:
    """The raw ids a play is for; None for the whole call (playTo left out or naming everyone).
    The media process sets the others' way apart (apps/automation/sideroom.py)."""
    if not play_to:
        return None
    if not isinstance(play_to, list) or len(play_to) > MAX_PLAY_TO:
        raise InvalidAutomationRequest(
            f"playTo must list 1 to {MAX_PLAY_TO} participants.", target="playTo"
        )
    named = []
    for index, model in enumerate(play_to):
        raw_id = raw_id_of(model) if isinstance(model, dict) else None
        if not raw_id:
            raise InvalidAutomationRequest(
                f"playTo[{index}] must be a communication identifier.", target="playTo"
            )
        named.append(access_participant(connection, raw_id).raw_id)
    everyone = {leg.raw_id for leg in participants(connection)}
    return None if set(named) == everyone else sorted(set(named))


def recognize(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    """Queue a recognize: DTMF keys; or, by speech (pocketsphinx, offline, en-US), choices, free
    speech, or free speech or keys, whichever the target gives first. Raises
    InvalidAutomationRequest, NotSupported, CallConnectionNotFound; nothing is queued then."""
    kind = body.get("recognizeInputType")
    if kind in ("choices", "speech", "speechOrDtmf"):
        return _recognize_by_speech(connection, body, kind)
    if kind != "dtmf":
        raise NotSupported(
            "recognizeInputType must be dtmf, speech, speechOrDtmf or choices.",
            target="recognizeInputType",
        )
    options = body.get("recognizeOptions")
    if not isinstance(options, dict):
        raise InvalidAutomationRequest("recognizeOptions is required.", target="recognizeOptions")
    target = access_participant(connection, raw_id_of(options.get("targetParticipant")) or "")
    request = {
        "target": target.raw_id,
        "prompts": _prompts(body),
        "interruptPrompt": bool(options.get("interruptPrompt", False)),
        "initialSilenceSeconds": _seconds(options, "initialSilenceTimeoutInSeconds", 5, 300),
        **_dtmf_request(options),
    }
    return _queue(connection, OperationKind.RECOGNIZE, request, body)


def _prompts(body: dict[str, Any]) -> list[dict[str, Any]]:
    prompts = body.get("playPrompts") or ([body["playPrompt"]] if body.get("playPrompt") else [])
    if not isinstance(prompts, list) or len(prompts) > MAX_PLAY_SOURCES:
        raise InvalidAutomationRequest("playPrompts must be a list.", target="playPrompts")
    return [check_play_source(p, f"playPrompts[{i}]") for i, p in enumerate(prompts)]


def _dtmf_request(options: dict[str, Any]) -> dict[str, Any]:
    """How keys are collected (dtmf, and the keys of speechOrDtmf), from dtmfOptions."""
    dtmf = options.get("dtmfOptions")
    dtmf = {} if dtmf is None else dtmf
    if not isinstance(dtmf, dict):
        raise InvalidAutomationRequest("dtmfOptions must be an object.", target="dtmfOptions")
    stop_tones = dtmf.get("stopTones") or []
    if not isinstance(stop_tones, list) or any(t not in TONE_KEYS for t in stop_tones):
        raise InvalidAutomationRequest(
            "stopTones must list tones (zero ... nine, asterisk, pound, a ... d).",
            target="stopTones",
        )
    return {
        "interToneSeconds": _seconds(dtmf, "interToneTimeoutInSeconds", 2, 60),
        "maxTones": _seconds(dtmf, "maxTonesToCollect", 1, MAX_TONES),
        "stopTones": [TONE_KEYS[t] for t in stop_tones],
    }


def _seconds(options: dict[str, Any], field: str, default: int, most: int) -> int:
    value = options.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidAutomationRequest(f"{field} must be 1 to {most}.", target=field)
    return value


def send_dtmf(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    tones = body.get("tones")
    if (
        not isinstance(tones, list)
        or not 1 <= len(tones) <= 18
        or any(t not in TONE_KEYS for t in tones)
    ):
        raise InvalidAutomationRequest(
            "tones must list 1 to 18 tones (zero ... nine, asterisk, pound, a ... d).",
            target="tones",
        )
    target = access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    request = {"tones": "".join(TONE_KEYS[t] for t in tones), "to": [target.raw_id]}
    return _queue(connection, OperationKind.SEND_DTMF, request, body)


def cancel_all(connection: CallConnection) -> None:
    _live(connection)
    with transaction.atomic():
        _cancel_operations(connection, emit=True)
        media_link.send_after_commit({"type": "cancel", "call": str(connection.call_id)})


def _cancel_operations(connection: CallConnection, *, emit: bool) -> None:
    """Cancel queued operations here; a running one is stopped by the media process, which
    sends its Canceled callback."""
    queued = list(connection.operations.filter(state=OperationState.QUEUED))
    now = timezone.now()
    MediaOperation.objects.filter(pk__in=[op.pk for op in queued]).update(
        state=OperationState.CANCELED, ended_at=now
    )
    if emit:
        for operation in queued:
            callbacks.emit_operation_end(operation, OperationState.CANCELED)
    media_link.send_after_commit({"type": "cancel", "call": str(connection.call_id)})


def set_continuous_dtmf(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    _live(connection)
    access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    CallConnection.objects.filter(pk=connection.pk).update(continuous_dtmf=on)


def hold(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    """Hold: the participant neither hears the call nor is heard, and hears the hold music
    (playSourceInfo) if any, looped, until unheld. HoldFailed follows if the media plane
    cannot set the participant apart or the music cannot be played."""
    _live(connection)
    leg = access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    music = None
    if on and body.get("playSourceInfo") is not None:
        music = check_play_source(body["playSourceInfo"], "playSourceInfo")
    message = {
        "type": "hold",
        "call": str(connection.call_id),
        "rawId": leg.raw_id,
        "on": on,
        "music": music,
        "connection": str(connection.pk),
        "operationContext": _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT),
        "callbackUri": _operation_uri(body),
    }
    with transaction.atomic():
        CallParticipant.objects.filter(pk=leg.pk).update(is_on_hold=on)
        media_link.send_after_commit(message)


# --- Recordings ------------------------------------------------------------------------------
MAX_RECORDING_CHANNELS = 5  # ACS: an unmixed recording has at most five channels


def start_recording(resource: Resource, body: dict[str, Any]) -> Recording:
    connection_id = body.get("callConnectionId")
    if connection_id:
        connection: CallConnection | None = access_connection(resource, connection_id)
        assert connection is not None
        call = connection.call
    else:
        call = _call_of_locator(resource, body.get("callLocator"))
        connection = call.connections.exclude(state=ConnectionState.DISCONNECTED).first()
    if call.topology != CallTopology.BRIDGE or call.ended_at is not None:
        raise WrongCallState("Only a live call through the media bridge can be recorded.")
    audio_format = str(body.get("recordingFormatType") or "wav").lower()
    if audio_format not in ("wav", "mp3"):
        raise NotSupported("recordingFormatType must be wav or mp3.", target="recordingFormatType")
    if str(body.get("recordingContentType") or "audio").lower() != "audio":
        raise NotSupported("recordingContentType must be audio.", target="recordingContentType")
    channel_type = str(body.get("recordingChannelType") or "mixed").lower()
    if channel_type not in ("mixed", "unmixed"):
        raise NotSupported(
            "recordingChannelType must be mixed or unmixed.", target="recordingChannelType"
        )
    channels: list[dict[str, Any]] = []
    if channel_type == "unmixed":
        if audio_format != "wav":
            # MP3 holds at most two channels: a participant per channel needs WAV.
            raise NotSupported(
                "Unmixed recordings are wav; mp3 holds at most two channels.",
                target="recordingFormatType",
            )
        channels = _recording_channels(call, body)
    elif body.get("channelAffinity") or body.get("audioChannelParticipantOrdering"):
        raise InvalidAutomationRequest(
            "channelAffinity and audioChannelParticipantOrdering need an unmixed recording.",
            target="recordingChannelType",
        )
    state_uri = _callback_uri(body, "recordingStateCallbackUri", required=False)
    if Recording.objects.filter(call=call).exclude(state=RecordingState.STOPPED).exists():
        raise WrongCallState("The call is already being recorded.")
    paused = body.get("pauseOnStart") is True
    with transaction.atomic():
        recording = Recording.objects.create(
            id=uuid.uuid4().hex,
            resource=resource,
            call=call,
            connection=connection,
            state=RecordingState.INACTIVE if paused else RecordingState.ACTIVE,
            state_callback_uri=state_uri,
            audio_format=audio_format,
            channel_type=channel_type,
            channels=channels,
            started_at=timezone.now(),
        )
        media_link.send_after_commit({"type": "recording", "recording": recording.pk})
    return recording


def _recording_channels(call: Call, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The channels an unmixed recording starts with: `channelAffinity` pins participants to
    channels (one given without a channel takes the lowest free one), then
    `audioChannelParticipantOrdering` gives the lowest free channels in its order. Everyone
    must be a participant of the call, once; the others get channels as they are heard.
    Raises InvalidAutomationRequest."""
    affinity = body.get("channelAffinity") or []
    ordering = body.get("audioChannelParticipantOrdering") or []
    for field, value in (
        ("channelAffinity", affinity),
        ("audioChannelParticipantOrdering", ordering),
    ):
        if not isinstance(value, list):
            raise InvalidAutomationRequest(f"{field} must be a list.", target=field)
    if len(affinity) + len(ordering) > MAX_RECORDING_CHANNELS:
        raise InvalidAutomationRequest(
            f"An unmixed recording has at most {MAX_RECORDING_CHANNELS} channels.",
            target="channelAffinity",
        )
    in_call = set(call.participants.values_list("raw_id", flat=True))
    pinned: dict[str, int | None] = {}
    for item in affinity:
        model = item.get("participant") if isinstance(item, dict) else None
        raw_id = _recording_participant(model, in_call, "channelAffinity", pinned)
        channel = item.get("channel")
        if channel is not None and (
            not isinstance(channel, int)
            or isinstance(channel, bool)
            or not 0 <= channel < MAX_RECORDING_CHANNELS
        ):
            raise InvalidAutomationRequest(
                f"channelAffinity channels are 0 to {MAX_RECORDING_CHANNELS - 1}.",
                target="channelAffinity",
            )
        if channel is not None and channel in pinned.values():
            raise InvalidAutomationRequest(
                f"Channel {channel} is given twice in channelAffinity.", target="channelAffinity"
            )
        pinned[raw_id] = channel
    for model in ordering:
        field = "audioChannelParticipantOrdering"
        pinned[_recording_participant(model, in_call, field, pinned)] = None
    taken = {c for c in pinned.values() if c is not None}
    free = (c for c in range(MAX_RECORDING_CHANNELS) if c not in taken)
    channels = [
        {"channel": channel if channel is not None else next(free), "participant": raw_id}
        for raw_id, channel in pinned.items()
    ]
    return sorted(channels, key=lambda entry: int(entry["channel"]))


def _recording_participant(model: Any, in_call: set[str], field: str, seen: dict[str, Any]) -> str:
    raw_id = raw_id_of(model)
    if raw_id is None:
        raise InvalidAutomationRequest(f"{field} names a participant without an id.", target=field)
    if raw_id not in in_call:
        raise InvalidAutomationRequest(
            f"{field} names {raw_id}, who is not a participant of the call.", target=field
        )
    if raw_id in seen:
        raise InvalidAutomationRequest(f"{field} names {raw_id} twice.", target=field)
    return raw_id


def recording_channel(recording_id: str, raw_id: str) -> int | None:
    """The channel of an unmixed recording that `raw_id`'s audio goes to: the one it has, or
    the lowest free one (ACS's "next channel" for participants heard later); None when the
    recording is not unmixed or all its channels are taken. Locks the recording's row."""
    with transaction.atomic():
        recording = Recording.objects.select_for_update().filter(pk=recording_id).first()
        if recording is None or recording.channel_type != "unmixed":
            return None
        for entry in recording.channels:
            if entry["participant"] == raw_id:
                return int(entry["channel"])
        taken = {int(entry["channel"]) for entry in recording.channels}
        free = [c for c in range(MAX_RECORDING_CHANNELS) if c not in taken]
        if not free:
            return None
        channels = [*recording.channels, {"channel": free[0], "participant": raw_id}]
        channels.sort(key=lambda entry: int(entry["channel"]))
        Recording.objects.filter(pk=recording_id).update(channels=channels)
        return free[0]


def access_recording(resource: Resource, recording_id: Any) -> Recording:
    recording = Recording.objects.filter(
        pk=str(recording_id)[:64], resource=resource, deleted_at__isnull=True
    ).first()
    if recording is None:
        raise RecordingNotFound(f"Recording {recording_id!r} was not found.")
    return recording


def set_recording_state(recording: Recording, state: str) -> Recording:
    """Pause (inactive), resume (active) or stop a recording; the media process follows."""
    if recording.state == RecordingState.STOPPED:
        raise WrongCallState("The recording has stopped.")
    with transaction.atomic():
        Recording.objects.filter(pk=recording.pk).update(
            state=state, stopped_at=timezone.now() if state == RecordingState.STOPPED else None
        )
        recording.state = state
        media_link.send_after_commit({"type": "recording", "recording": recording.pk})
    return recording


def recording_path(recording: Recording) -> Any:
    return settings.RECORDINGS_DIR / recording.file_name


def delete_recording_file(recording: Recording) -> None:
    if recording.file_name:
        storage.remove(recording.file_name)
    Recording.objects.filter(pk=recording.pk).update(deleted_at=timezone.now())


def prune_recordings() -> int:
    """Delete recordings older than SPOOL_RECORDING_RETENTION_DAYS (0 keeps them)."""
    if settings.RECORDING_RETENTION_DAYS <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=settings.RECORDING_RETENTION_DAYS)
    old = Recording.objects.filter(started_at__lt=cutoff, deleted_at__isnull=True)
    count = 0
    for recording in old:
        delete_recording_file(recording)
        count += 1
    return count


# --- Recognize choices by speech -------------------------------------------------------------
MAX_CHOICES = 30
MAX_PHRASES = 20
MAX_PHRASE_LENGTH = 100
MAX_CHOICE_SILENCE = 20  # seconds: ACS's most for choices (and here for all speech)
MAX_END_SILENCE_MS = 10000
DEFAULT_END_SILENCE_MS = 500  # pocketsphinx's endpointer window (300 ms) is the least in effect
PHRASE_REFUSED = re.compile(r"[^A-Za-z' ,.?!-]")  # the recognizer's dictionary is English words
SPEECH_LANGUAGES = ("en-us", "en")


def _recognize_by_speech(
    connection: CallConnection, body: dict[str, Any], kind: str
) -> MediaOperation:
    """Recognize by speech (pocketsphinx, offline, en-US; apps/automation/speech.py in the
    media process): `choices`, one of the application's choices, said or keyed (a choice's
    `tone`); `speech`, free speech to text, one utterance ended by `endSilenceTimeoutInMs`;
    `speechOrDtmf`, that or keys collected under dtmfOptions, whichever comes first."""
    options = body.get("recognizeOptions")
    if not isinstance(options, dict):
        raise InvalidAutomationRequest("recognizeOptions is required.", target="recognizeOptions")
    target = access_participant(connection, raw_id_of(options.get("targetParticipant")) or "")
    language = options.get("speechLanguage") or "en-US"
    if not isinstance(language, str) or language.lower() not in SPEECH_LANGUAGES:
        raise NotSupported(
            "speechLanguage: speech is recognized in en-US only here.", target="speechLanguage"
        )
    if options.get("speechRecognitionModelEndpointId"):
        raise NotSupported(
            "Custom speech models are not offered here.",
            target="speechRecognitionModelEndpointId",
        )
    request: dict[str, Any] = {
        "inputType": kind,
        "target": target.raw_id,
        "prompts": _prompts(body),
        "interruptPrompt": bool(options.get("interruptPrompt", False)),
        "initialSilenceSeconds": _seconds(
            options, "initialSilenceTimeoutInSeconds", 5, MAX_CHOICE_SILENCE
        ),
    }
    if kind == "choices":
        request["choices"] = _choices(options)
    else:
        request["endSilenceMs"] = _end_silence_ms(options)
    if kind == "speechOrDtmf":
        request.update(_dtmf_request(options))
    return _queue(connection, OperationKind.RECOGNIZE, request, body)


def _end_silence_ms(options: dict[str, Any]) -> int:
    speech_options = options.get("speechOptions")
    speech_options = {} if speech_options is None else speech_options
    if not isinstance(speech_options, dict):
        raise InvalidAutomationRequest("speechOptions must be an object.", target="speechOptions")
    value = speech_options.get("endSilenceTimeoutInMs")
    if value is None:
        return DEFAULT_END_SILENCE_MS
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_END_SILENCE_MS
    ):
        raise InvalidAutomationRequest(
            f"endSilenceTimeoutInMs must be 1 to {MAX_END_SILENCE_MS}.",
            target="endSilenceTimeoutInMs",
        )
    return value


def _choices(options: dict[str, Any]) -> list[dict[str, Any]]:
    from apps.automation import speech

    raw = options.get("choices")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CHOICES:
        raise InvalidAutomationRequest(
            f"choices must list 1 to {MAX_CHOICES} choices.", target="choices"
        )
    choices, labels, tones = [], set(), set()
    for index, choice in enumerate(raw):
        field = f"choices[{index}]"
        if not isinstance(choice, dict):
            raise InvalidAutomationRequest(f"{field} must be an object.", target=field)
        label = _text(choice, "label", limit=MAX_PHRASE_LENGTH, required=True)
        if label in labels:
            raise InvalidAutomationRequest(f"{field}.label is not unique.", target=field)
        labels.add(label)
        phrases = _choice_phrases(choice.get("phrases"), f"{field}.phrases", speech)
        tone = choice.get("tone")
        if tone is not None and tone not in TONE_KEYS:
            raise InvalidAutomationRequest(
                f"{field}.tone must be a tone (zero ... nine, asterisk, pound, a ... d).",
                target=field,
            )
        if tone is not None and tone in tones:
            raise InvalidAutomationRequest(f"{field}.tone is not unique.", target=field)
        if tone is not None:
            tones.add(tone)
        if not phrases and tone is None:
            raise InvalidAutomationRequest(f"{field} needs phrases or a tone.", target=field)
        choices.append(
            {"label": label, "phrases": phrases, "tone": TONE_KEYS[tone] if tone else ""}
        )
    return choices


def _choice_phrases(value: Any, field: str, speech: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_PHRASES:
        raise InvalidAutomationRequest(
            f"{field} must list at most {MAX_PHRASES} phrases.", target=field
        )
    phrases: list[str] = []
    for phrase in value:
        if not isinstance(phrase, str) or not 1 <= len(phrase) <= MAX_PHRASE_LENGTH:
            raise InvalidAutomationRequest(
                f"{field}: each phrase is 1 to {MAX_PHRASE_LENGTH} characters.", target=field
            )
        normalized = speech.normalize(phrase)
        if not normalized or PHRASE_REFUSED.search(phrase):
            raise InvalidAutomationRequest(
                f"{field}: {phrase!r} must be words of letters (spell numbers as words).",
                target=field,
            )
        unknown = speech.unknown_words(normalized)
        if unknown:
            raise InvalidAutomationRequest(
                f"{field}: the recognizer does not know {', '.join(unknown)!r}.", target=field
            )
        if normalized not in phrases:
            phrases.append(normalized)
    return phrases


# --- Media streaming -------------------------------------------------------------------------
AUDIO_FORMATS = ("pcm16KMono", "pcm24KMono")


def check_media_streaming_options(options: Any) -> dict[str, Any] | None:
    """ACS mediaStreamingOptions, checked; None when absent. Raises InvalidAutomationRequest,
    NotSupported, UnsafeUrl (the transport URL must be a ws(s) URL; its address is checked when
    the media process connects)."""
    if options is None:
        return None
    field = "mediaStreamingOptions"
    if not isinstance(options, dict):
        raise InvalidAutomationRequest(f"{field} must be an object.", target=field)
    if str(options.get("transportType") or "websocket").lower() != "websocket":
        raise NotSupported(f"{field}.transportType must be websocket.", target=field)
    url = check_url(
        options.get("transportUrl"), target=f"{field}.transportUrl", schemes=WEBSOCKET_SCHEMES
    )
    channel = str(options.get("audioChannelType") or "mixed").lower()
    if channel not in ("mixed", "unmixed"):
        raise InvalidAutomationRequest(
            f"{field}.audioChannelType must be mixed or unmixed.", target=field
        )
    if str(options.get("contentType") or "audio").lower() != "audio":
        raise NotSupported(f"{field}.contentType must be audio.", target=field)
    audio_format = str(options.get("audioFormat") or AUDIO_FORMATS[0])
    matched = [f for f in AUDIO_FORMATS if f.lower() == audio_format.lower()]
    if not matched:
        raise InvalidAutomationRequest(
            f"{field}.audioFormat must be pcm16KMono or pcm24KMono.", target=field
        )
    flags = {}
    for name in ("enableBidirectional", "startMediaStreaming", "enableDtmfTones"):
        value = options.get(name)
        if value is not None and not isinstance(value, bool):
            raise InvalidAutomationRequest(f"{field}.{name} must be true or false.", target=field)
        flags[name] = bool(value)
    if flags["enableDtmfTones"]:
        raise NotSupported(f"{field}.enableDtmfTones is not offered here.", target=field)
    return {
        "url": url,
        "channel": channel,
        "format": matched[0],
        "bidirectional": flags["enableBidirectional"],
        "start": flags["startMediaStreaming"],
    }


def _create_media_streaming(connection: CallConnection, options: dict[str, Any] | None) -> None:
    if options is None:
        return
    MediaStreaming.objects.create(
        connection=connection,
        transport_url=options["url"],
        audio_channel_type=options["channel"],
        audio_format=options["format"],
        bidirectional=options["bidirectional"],
        wanted=options["start"],
        created_at=timezone.now(),
    )
    # A connection still connecting streams once connected (the media process looks then).
    media_link.send_after_commit({"type": "streaming", "call": str(connection.call_id)})


def streaming_subscription(connection: CallConnection) -> dict[str, Any] | None:
    """The connection's mediaStreamingSubscription, as ACS shows it in the call connection."""
    streaming = MediaStreaming.objects.filter(connection=connection).first()
    if streaming is None:
        return None
    return {
        "id": str(streaming.pk),
        "state": streaming.state,
        "subscribedContentTypes": ["audio"],
    }


def set_media_streaming(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    """Start or stop the connection's media streaming (configured by mediaStreamingOptions on
    answer, create or connect); MediaStreamingStarted / Stopped / Failed follow from the media
    process. Raises WrongCallState, InvalidAutomationRequest."""
    _live(connection)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    url = _operation_uri(body)
    with transaction.atomic():
        streaming = MediaStreaming.objects.select_for_update().filter(connection=connection).first()
        if streaming is None:
            raise InvalidAutomationRequest(
                "Media streaming is not set up for this call: pass mediaStreamingOptions when "
                "answering, creating or connecting it."
            )
        if streaming.wanted == on:
            raise InvalidAutomationRequest(
                "Media streaming is already " + ("started." if on else "stopped.")
            )
        MediaStreaming.objects.filter(pk=streaming.pk).update(
            wanted=on, operation_context=context, callback_uri=url
        )
        media_link.send_after_commit({"type": "streaming", "call": str(connection.call_id)})


def media_streaming_plans(call_id: str) -> list[dict[str, Any]]:
    """For the media process: each live connection's streaming of this call, what the
    application wants, and what the stream needs (its URL, headers, options)."""
    from apps.accounts.tokens import sign

    plans = []
    for streaming in MediaStreaming.objects.filter(connection__call_id=call_id).select_related(
        "connection__resource"
    ):
        connection = streaming.connection
        now = int(timezone.now().timestamp())
        # As ACS does, the application can tell it is Spool calling: a token signed with the
        # keys at /.well-known/jwks.json, as callbacks carry.
        token = sign(
            {
                "iss": settings.PUBLIC_URL or "spool",
                "aud": accounts.resource_endpoint(connection.resource),
                "sub": f"calling/callConnections/{connection.pk}",
                "jti": uuid.uuid4().hex,
                "iat": now,
                "exp": now + 300,
            }
        )
        plans.append(
            {
                "id": str(streaming.pk),
                "connection": str(connection.pk),
                "wanted": streaming.wanted and connection.state == ConnectionState.CONNECTED,
                "active": streaming.state == StreamingState.ACTIVE,
                "url": streaming.transport_url,
                "unmixed": streaming.audio_channel_type == "unmixed",
                "format": streaming.audio_format,
                "bidirectional": streaming.bidirectional,
                "headers": {
                    "Authorization": f"Bearer {token}",
                    "x-ms-call-connection-id": str(connection.pk),
                    "x-ms-call-correlation-id": str(connection.correlation_id),
                },
            }
        )
    return plans


def streaming_due() -> list[str]:
    """Calls whose streaming is not as the application wants it (for the media process)."""
    rows = MediaStreaming.objects.filter(
        Q(wanted=True, state=StreamingState.INACTIVE, connection__state=ConnectionState.CONNECTED)
        | Q(wanted=False, state=StreamingState.ACTIVE)
    )
    return sorted({str(call_id) for call_id in rows.values_list("connection__call_id", flat=True)})


def _streaming_update(streaming: MediaStreaming, status: str, details: str) -> dict[str, Any]:
    return {
        "mediaStreamingUpdate": {
            "contentType": "Audio",
            "mediaStreamingStatus": status,
            "mediaStreamingStatusDetails": details,
        },
        "operationContext": streaming.operation_context or None,
    }


def media_streaming_started(subscription_id: str) -> None:
    """The media process streams: active, then MediaStreamingStarted (a stop asked for
    meanwhile is applied after it, so Stopped follows)."""
    with transaction.atomic():
        streaming = (
            MediaStreaming.objects.select_for_update()
            .select_related("connection")
            .filter(pk=subscription_id)
            .first()
        )
        if streaming is None:
            return
        MediaStreaming.objects.filter(pk=streaming.pk).update(
            state=StreamingState.ACTIVE, started_at=timezone.now(), failure=""
        )
        if streaming.connection.state == ConnectionState.CONNECTED:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingStarted",
                _streaming_update(streaming, "mediaStreamingStarted", "subscriptionStarted"),
                url=streaming.callback_uri,
                result=(200, 0, "Action completed successfully."),
            )


def media_streaming_ended(
    subscription_id: str, *, details: str = "", message: str = "", callback: bool = True
) -> None:
    """The media process stopped streaming: inactive, then MediaStreamingStopped, or (with
    `details`, a failure) MediaStreamingFailed, unless the connection has ended (CallDisconnected
    is its last callback) or `callback` is False."""
    with transaction.atomic():
        streaming = (
            MediaStreaming.objects.select_for_update()
            .select_related("connection")
            .filter(pk=subscription_id)
            .first()
        )
        if streaming is None:
            return
        fields: dict[str, Any] = {"state": StreamingState.INACTIVE, "stopped_at": timezone.now()}
        if details:
            fields.update(wanted=False, failure=message[:300])
        MediaStreaming.objects.filter(pk=streaming.pk).update(**fields)
        if not callback or streaming.connection.state != ConnectionState.CONNECTED:
            return
        if details:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingFailed",
                _streaming_update(streaming, "mediaStreamingFailed", details),
                url=streaming.callback_uri,
                result=(400, 8603, message or "Action failed, media streaming failed."),
            )
        else:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingStopped",
                _streaming_update(streaming, "mediaStreamingStopped", "subscriptionStopped"),
                url=streaming.callback_uri,
                result=(200, 0, "Action completed successfully."),
            )
