"""The ACS Call Automation API (`/calling/...`), as azure-communication-callautomation calls
it (HMAC). Status codes are the SDK's: it raises on any other (voice-lab README)."""

from __future__ import annotations

from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.automation import downloads, services
from apps.automation.exceptions import NotSupported, RecordingNotFound
from apps.automation.models import CallConnection, Recording
from apps.automation.models import RecordingState as State
from apps.core.api import AcsApiView, json_object, rfc3339
from apps.core.identifiers import identifier_model

# What SDKs 1.0 to 1.6 send (1.5: 2025-06-15; 1.6: 2026-03-12).
API_VERSIONS = (
    "2023-03-06",
    "2023-10-15",
    "2024-04-15",
    "2024-09-15",
    "2025-05-15",
    "2025-06-15",
    "2026-03-12",
)


class AutomationView(AcsApiView):
    api_versions = API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]

    def connection(self, request: Request, connection_id: str) -> CallConnection:
        return services.access_connection(request_resource(request), connection_id)


def repeat_id(request: Request) -> str:
    return request.headers.get("Repeatability-Request-ID", "")


def connection_body(connection: CallConnection) -> dict[str, Any]:
    body: dict[str, Any] = {
        "callConnectionId": str(connection.pk),
        "serverCallId": connection.server_call_id,
        "targets": [identifier_model(raw_id) for raw_id in connection.targets],
        "callConnectionState": connection.state,
        "callbackUri": connection.callback_uri,
        "source": identifier_model(connection.source_raw_id),
        "correlationId": str(connection.correlation_id),
        "answeredBy": identifier_model(connection.source_raw_id)["communicationUser"]
        if connection.source_raw_id.startswith("8:")
        else None,
    }
    if connection.source_display_name:
        body["sourceDisplayName"] = connection.source_display_name
    body["mediaStreamingSubscription"] = services.streaming_subscription(connection)
    return {key: value for key, value in body.items() if value is not None}


class CreateCall(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        connection = services.create_call(
            request_resource(request),
            json_object(request),
            repeatability_request_id=repeat_id(request),
        )
        return Response(connection_body(connection), status=201)


class AnswerCall(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        connection = services.answer(
            request_resource(request),
            json_object(request),
            repeatability_request_id=repeat_id(request),
        )
        return Response(connection_body(connection), status=200)


class RedirectCall(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        services.redirect(request_resource(request), json_object(request))
        return Response(status=204)


class RejectCall(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        services.reject(request_resource(request), json_object(request))
        return Response(status=204)


class ConnectCall(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        connection = services.connect(request_resource(request), json_object(request))
        return Response(connection_body(connection), status=200)


class Connection(AutomationView):
    def get(self, request: Request, slug: str, connection_id: str) -> Response:
        return Response(connection_body(self.connection(request, connection_id)))

    def delete(self, request: Request, slug: str, connection_id: str) -> Response:
        services.hang_up(self.connection(request, connection_id))
        return Response(status=204)


class Terminate(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.terminate(self.connection(request, connection_id))
        return Response(status=204)


class Transfer(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        services.transfer(self.connection(request, connection_id), body)
        return Response({"operationContext": body.get("operationContext")}, status=202)


class Play(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.play(self.connection(request, connection_id), json_object(request))
        return Response(status=202)


class Recognize(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.recognize(self.connection(request, connection_id), json_object(request))
        return Response(status=202)


class CancelAll(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.cancel_all(self.connection(request, connection_id))
        return Response(status=202)


class SendDtmf(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        services.send_dtmf(self.connection(request, connection_id), body)
        return Response({"operationContext": body.get("operationContext")}, status=202)


class ContinuousDtmf(AutomationView):
    on = True

    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.set_continuous_dtmf(
            self.connection(request, connection_id), json_object(request), self.on
        )
        return Response(status=200)


class Hold(AutomationView):
    on = True

    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.hold(self.connection(request, connection_id), json_object(request), self.on)
        return Response(status=200)


class MediaStreaming(AutomationView):
    on = True

    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        services.set_media_streaming(
            self.connection(request, connection_id), json_object(request), self.on
        )
        return Response(status=202)


class NotOffered(AutomationView):
    """Operations Spool does not offer yet: a clear error rather than a 404."""

    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        self.connection(request, connection_id)
        action = request.path.rsplit(":", 1)[-1]
        raise NotSupported(f"{action} is not offered by this deployment yet.")


class Participants(AutomationView):
    def get(self, request: Request, slug: str, connection_id: str) -> Response:
        connection = self.connection(request, connection_id)
        return Response(
            {"value": [services.participant_body(leg) for leg in services.participants(connection)]}
        )


class Participant(AutomationView):
    def get(self, request: Request, slug: str, connection_id: str, raw_id: str) -> Response:
        leg = services.access_participant(self.connection(request, connection_id), raw_id)
        return Response(services.participant_body(leg))


class AddParticipant(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        raw_id, invitation = services.add_participant(self.connection(request, connection_id), body)
        return Response(
            {
                "participant": {"identifier": identifier_model(raw_id), "isMuted": False},
                "operationContext": body.get("operationContext"),
                "invitationId": invitation,
            },
            status=202,
        )


class RemoveParticipant(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        services.remove_participant(self.connection(request, connection_id), body)
        return Response({"operationContext": body.get("operationContext")}, status=202)


class MuteParticipant(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        services.mute(self.connection(request, connection_id), body)
        return Response({"operationContext": body.get("operationContext")}, status=200)


class CancelAddParticipant(AutomationView):
    def post(self, request: Request, slug: str, connection_id: str) -> Response:
        body = json_object(request)
        invitation = services.cancel_add_participant(self.connection(request, connection_id), body)
        return Response(
            {"invitationId": invitation, "operationContext": body.get("operationContext")},
            status=202,
        )


# --- Recordings ------------------------------------------------------------------------------
def recording_body(recording: Recording) -> dict[str, Any]:
    state = "active" if recording.state == State.ACTIVE else "inactive"
    return {
        "recordingId": recording.pk,
        "recordingState": state,
        "recordingKind": "AzureCommunicationServices",
    }


class StartRecording(AutomationView):
    def post(self, request: Request, slug: str) -> Response:
        recording = services.start_recording(request_resource(request), json_object(request))
        return Response(recording_body(recording), status=200)


class RecordingDetail(AutomationView):
    def get(self, request: Request, slug: str, recording_id: str) -> Response:
        recording = services.access_recording(request_resource(request), recording_id)
        if recording.state == State.STOPPED:
            raise RecordingNotFound(f"Recording {recording_id!r} has stopped.")
        return Response(recording_body(recording))

    def delete(self, request: Request, slug: str, recording_id: str) -> Response:
        recording = services.access_recording(request_resource(request), recording_id)
        services.set_recording_state(recording, State.STOPPED)
        return Response(status=204)


class RecordingState(AutomationView):
    state = State.ACTIVE

    def post(self, request: Request, slug: str, recording_id: str) -> Response:
        recording = services.access_recording(request_resource(request), recording_id)
        services.set_recording_state(recording, self.state)
        return Response(status=202)


class RecordingContent(AutomationView):
    """A finished recording's file: GET with Range (200 or 206), DELETE. The SDKs sign these
    requests with HMAC like any other; no api-version is sent, so none is required."""

    api_version_required = False

    def get(self, request: Request, slug: str, recording_id: str) -> HttpResponseBase:
        recording = services.access_recording(request_resource(request), recording_id)
        return downloads.recording_response(recording, request.headers.get("Range", ""))

    def delete(self, request: Request, slug: str, recording_id: str) -> Response:
        recording = services.access_recording(request_resource(request), recording_id)
        services.delete_recording_file(recording)
        return Response(status=200)  # the SDKs' delete_recording accepts 200 only


class RecordingMetadata(RecordingContent):
    def get(self, request: Request, slug: str, recording_id: str) -> HttpResponseBase:
        recording = services.access_recording(request_resource(request), recording_id)
        participants: list[dict[str, Any]]
        if recording.channel_type == "unmixed":
            # Who is on which channel of the file (channels nobody took hold silence).
            participants = [
                {"participantId": entry["participant"], "channel": entry["channel"]}
                for entry in recording.channels
            ]
            channels = max((int(entry["channel"]) for entry in recording.channels), default=0) + 1
        else:
            participants = [
                {"participantId": leg.raw_id}
                for leg in recording.call.participants.exclude(joined_at=None)
            ]
            channels = 1
        return Response(
            {
                "resourceId": str(recording.resource_id),
                "callId": str(recording.call_id),
                "chunkDocumentId": recording.pk,
                "chunkIndex": 0,
                "chunkStartTime": rfc3339(recording.started_at),
                "chunkDuration": (
                    (recording.stopped_at - recording.started_at).total_seconds() * 1000
                    if recording.stopped_at
                    else None
                ),
                "recordingInfo": {
                    "contentType": "audio",
                    "channelType": recording.channel_type,
                    "format": recording.audio_format,
                    "audioConfiguration": {"sampleRate": 16000, "channels": channels},
                },
                "participants": participants,
            }
        )
