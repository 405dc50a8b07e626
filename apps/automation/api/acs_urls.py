"""The ACS Call Automation API routes, on the resource's origin and under /r/<slug>/.

ACS names actions with a colon after the id (`callConnections/{id}:play`): ids never hold
one, so the `cid` converter stops there."""

from __future__ import annotations

from django.urls import path, register_converter

from apps.automation.api import acs_views as v


class ColonFreeId:
    regex = "[^/:]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ColonFreeId, "cid")

C = "calling/callConnections"
urlpatterns = [
    path(f"{C}", v.CreateCall.as_view()),
    path(f"{C}:answer", v.AnswerCall.as_view()),
    path(f"{C}:redirect", v.RedirectCall.as_view()),
    path(f"{C}:reject", v.RejectCall.as_view()),
    path(f"{C}:connect", v.ConnectCall.as_view()),
    path(f"{C}/<cid:connection_id>", v.Connection.as_view()),
    path(f"{C}/<cid:connection_id>:terminate", v.Terminate.as_view()),
    path(f"{C}/<cid:connection_id>:transferToParticipant", v.Transfer.as_view()),
    path(f"{C}/<cid:connection_id>:play", v.Play.as_view()),
    path(f"{C}/<cid:connection_id>:recognize", v.Recognize.as_view()),
    path(f"{C}/<cid:connection_id>:cancelAllMediaOperations", v.CancelAll.as_view()),
    path(f"{C}/<cid:connection_id>:sendDtmfTones", v.SendDtmf.as_view()),
    path(
        f"{C}/<cid:connection_id>:startContinuousDtmfRecognition",
        v.ContinuousDtmf.as_view(on=True),
    ),
    path(
        f"{C}/<cid:connection_id>:stopContinuousDtmfRecognition",
        v.ContinuousDtmf.as_view(on=False),
    ),
    path(f"{C}/<cid:connection_id>:hold", v.Hold.as_view(on=True)),
    path(f"{C}/<cid:connection_id>:unhold", v.Hold.as_view(on=False)),
    path(f"{C}/<cid:connection_id>:startMediaStreaming", v.MediaStreaming.as_view(on=True)),
    path(f"{C}/<cid:connection_id>:stopMediaStreaming", v.MediaStreaming.as_view(on=False)),
    path(f"{C}/<cid:connection_id>:startTranscription", v.NotOffered.as_view()),
    path(f"{C}/<cid:connection_id>:stopTranscription", v.NotOffered.as_view()),
    path(f"{C}/<cid:connection_id>:updateTranscription", v.NotOffered.as_view()),
    path(f"{C}/<cid:connection_id>/participants", v.Participants.as_view()),
    path(f"{C}/<cid:connection_id>/participants:add", v.AddParticipant.as_view()),
    path(f"{C}/<cid:connection_id>/participants:remove", v.RemoveParticipant.as_view()),
    path(f"{C}/<cid:connection_id>/participants:mute", v.MuteParticipant.as_view()),
    path(
        f"{C}/<cid:connection_id>/participants:cancelAddParticipant",
        v.CancelAddParticipant.as_view(),
    ),
    path(f"{C}/<cid:connection_id>/participants:moveHere", v.NotOffered.as_view()),
    path(f"{C}/<cid:connection_id>/participants/<str:raw_id>", v.Participant.as_view()),
    path("calling/recordings", v.StartRecording.as_view()),
    path("calling/recordings/<cid:recording_id>", v.RecordingDetail.as_view()),
    path("calling/recordings/<cid:recording_id>:pause", v.RecordingState.as_view(state="inactive")),
    path("calling/recordings/<cid:recording_id>:resume", v.RecordingState.as_view(state="active")),
    # Where RecordingFileStatusUpdated points: download (Range) and delete, HMAC-signed.
    path("recordings/<cid:recording_id>/content", v.RecordingContent.as_view()),
    path("recordings/<cid:recording_id>/metadata", v.RecordingMetadata.as_view()),
]
