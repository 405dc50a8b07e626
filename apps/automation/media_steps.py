"""The media process's database steps (apps/automation/media.py): sync functions it runs
through database_sync_to_async. Recovery after a restart, the work due each round, claiming
and finishing media operations (their callbacks), hold failures, continuous DTMF, legs and
media lost, and recordings: state changes, unmixed stretches, joining the segments into the
file and RecordingFileStatusUpdated.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.automation import audio, callbacks, services, storage
from apps.automation.models import (
    CallConnection,
    ConnectionState,
    MediaOperation,
    OperationState,
    Recording,
    RecordingState,
)
from apps.calls import signaling
from apps.calls.models import Call, CallLegState, CallParticipant, CallState, CallTopology
from apps.core.api import rfc3339
from apps.core.identifiers import identifier_model
from apps.events import schemas
from apps.events.services import NewEvent, publish_events

logger = logging.getLogger(__name__)

END_MEDIA_LOST = 503


def recover() -> None:
    """Calls a previous media process held are gone with its Janus session: end them."""
    live = Call.objects.filter(
        topology=CallTopology.BRIDGE, ended_at__isnull=True, state=CallState.CONNECTED
    )
    for call in live:
        signaling.end_call(
            call, END_MEDIA_LOST, "The media process restarted.", by=call.caller_raw_id
        )
    for operation in MediaOperation.objects.filter(state=OperationState.RUNNING).select_related(
        "connection"
    ):
        _finish(
            operation, OperationState.FAILED, result=(500, 8500, "The media process restarted.")
        )
    # What was recorded before the restart is kept: the segments become the file.
    Recording.objects.filter(call__ended_at__isnull=False).exclude(
        state=RecordingState.STOPPED
    ).update(state=RecordingState.STOPPED, stopped_at=timezone.now())
    for recording in Recording.objects.filter(state=RecordingState.STOPPED, file_name=""):
        _finish_recording_if_stopped(recording.pk)


def _due_work() -> dict[str, list[str]]:
    queued = MediaOperation.objects.filter(
        state=OperationState.QUEUED, connection__state=ConnectionState.CONNECTED
    ).values_list("connection__call_id", flat=True)
    recordings = Recording.objects.filter(
        call__ended_at__isnull=True, call__topology=CallTopology.BRIDGE
    ).exclude(state=RecordingState.STOPPED, file_name__gt="")
    ended = Call.objects.filter(topology=CallTopology.BRIDGE, ended_at__isnull=False).values_list(
        "pk", flat=True
    )
    return {
        "operations": sorted({str(pk) for pk in queued}),
        "recordings": [r.pk for r in recordings if r.state == RecordingState.STOPPED],
        "ended": [
            str(pk) for pk in ended.filter(ended_at__gte=timezone.now() - timedelta(minutes=5))
        ],
    }


def _is_sfu_call(call_id: str) -> bool:
    """Whether the call's browsers are in a VideoRoom (a group call or room through the SFU)."""
    return Call.objects.filter(pk=call_id, topology=CallTopology.SFU).exists()


def _still_ringing(call_id: str) -> bool:
    """Whether the call has not connected yet: a leg joining now hears early media."""
    return Call.objects.filter(pk=call_id, state=CallState.RINGING).exists()


def _chose_mute(call_id: str, raw_id: str) -> bool:
    """Whether the participant muted itself (its client's choice, kept on its leg)."""
    return CallParticipant.objects.filter(call_id=call_id, raw_id=raw_id, is_muted=True).exists()


def _ring_timeouts() -> None:
    """A call the application placed that nobody answered in time ends (408)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RING_TIMEOUT_SECONDS)
    for call in Call.objects.filter(
        topology=CallTopology.BRIDGE, state=CallState.RINGING, created_at__lt=cutoff, ended_at=None
    ):
        signaling.end_call(
            call, signaling.END_UNANSWERED, "Nobody answered.", by=call.caller_raw_id
        )


def _claim_operation(call_id: str) -> MediaOperation | None:
    for operation in MediaOperation.objects.filter(
        connection__call_id=call_id,
        connection__state=ConnectionState.CONNECTED,
        state=OperationState.QUEUED,
    ).select_related("connection")[:5]:
        if MediaOperation.objects.filter(pk=operation.pk, state=OperationState.QUEUED).update(
            state=OperationState.RUNNING, started_at=timezone.now()
        ):
            return operation
    return None


def _emit(operation: MediaOperation, name: str) -> None:
    callbacks.emit(
        operation.connection,
        name,
        {"operationContext": operation.operation_context or None},
        url=operation.callback_uri,
        result=(200, 0, "Action completed successfully."),
    )


def _finish(
    operation: MediaOperation,
    state: str,
    *,
    result: tuple[int, int, str] | None = None,
    data: dict[str, Any] | None = None,
    tones: list[str] | None = None,
) -> None:
    with transaction.atomic():
        fields: dict[str, Any] = {"state": state, "ended_at": timezone.now()}
        if result is not None:
            fields.update(result_code=result[0], result_subcode=result[1], result_message=result[2])
        if tones is not None:
            fields["tones"] = tones
        finished = MediaOperation.objects.filter(
            pk=operation.pk, state__in=[OperationState.RUNNING, OperationState.QUEUED]
        ).update(**fields)
        if finished:
            callbacks.emit_operation_end(operation, state, result=result, data=data)


def _hold_failed(message: dict[str, Any], result: tuple[int, int, str]) -> None:
    connection = CallConnection.objects.filter(pk=message["connection"]).first()
    if connection is None:
        return
    CallParticipant.objects.filter(call_id=connection.call_id, raw_id=message["rawId"]).update(
        is_on_hold=False
    )
    callbacks.emit(
        connection,
        "HoldFailed",
        {"operationContext": message.get("operationContext") or None},
        url=message.get("callbackUri") or "",
        result=result,
    )


def _choice_data(result: dict[str, Any]) -> dict[str, Any]:
    return {"recognitionType": "choices", "choiceResult": result}


def _speech_data(result: dict[str, Any]) -> dict[str, Any]:
    return {"recognitionType": "speech", "speechResult": result}


def _continuous_tone(call_id: str, raw_id: str, tone: str) -> None:
    for connection in CallConnection.objects.filter(
        call_id=call_id, continuous_dtmf=True, state=ConnectionState.CONNECTED
    ):
        callbacks.emit(
            connection,
            "ContinuousDtmfRecognitionToneReceived",
            {
                "tone": services.TONE_NAMES[tone],
                "sequenceId": connection.next_callback_seq,
                "targetParticipant": identifier_model(raw_id),
            },
            result=(200, 0, "Success"),
        )


def _leg_lost(call_id: str, raw_id: str) -> None:
    leg = (
        Call.objects.get(pk=call_id)
        .participants.filter(raw_id=raw_id, state=CallLegState.CONNECTED)
        .first()
    )
    if leg is not None:
        signaling.remove_leg(leg.call, leg, END_MEDIA_LOST)


def _media_failed(call_id: str) -> None:
    call = Call.objects.filter(pk=call_id, ended_at__isnull=True).first()
    if call is not None:
        signaling.end_call(
            call,
            END_MEDIA_LOST,
            signaling.MEDIA_SERVER_GONE,
            by=call.caller_raw_id,
            sub_code=signaling.SUB_MEDIA_SERVER_GONE,
        )


def _recording_changed(recording_id: str, segment: str, state: str) -> None:
    recording = Recording.objects.select_related("connection").get(pk=recording_id)
    with transaction.atomic():
        if segment:
            Recording.objects.filter(pk=recording_id).update(
                segments=[*recording.segments, segment]
            )
        connection = recording.connection
        if connection is not None:
            callbacks.emit(
                connection,
                "RecordingStateChanged",
                {
                    "recordingId": recording_id,
                    "state": state,
                    "startDateTime": rfc3339(recording.started_at),
                    "recordingKind": "AzureCommunicationServices",
                },
                url=recording.state_callback_uri,
            )


def _now_us() -> int:
    return time.time_ns() // 1000  # the clock Janus stamps .mjr files with (same host)


def _unmixed_stretch(
    recording_id: str,
    *,
    start: int | None = None,
    end: int | None = None,
    track: dict[str, str] | None = None,
) -> None:
    """Open a stretch of an unmixed recording (`start`), add a leg's file to the open one
    (`track`), or close it (`end`)."""
    with transaction.atomic():
        recording = Recording.objects.select_for_update().filter(pk=recording_id).first()
        if recording is None:
            return
        stretches = [s for s in recording.segments if isinstance(s, dict)]
        if start is not None:
            stretches.append({"start": start, "end": None, "tracks": []})
        elif stretches and stretches[-1]["end"] is None:
            if track is not None:
                stretches[-1]["tracks"].append(track)
            if end is not None:
                stretches[-1]["end"] = end
        Recording.objects.filter(pk=recording_id).update(segments=stretches)


def _join_unmixed(recording: Recording, out: Path) -> None:
    """Line up an unmixed recording's stretches into `out`, one channel per participant (as
    many channels as the highest one given), and remove the legs' .mjr files."""
    folder = settings.RECORDINGS_DIR
    channel_of = {entry["participant"]: int(entry["channel"]) for entry in recording.channels}
    stretches = [
        audio.Stretch(
            int(stretch["start"]),
            int(stretch["end"]) if stretch.get("end") else None,
            [
                audio.Track(channel_of[track["participant"]], folder / track["file"])
                for track in stretch["tracks"]
                if track["participant"] in channel_of and (folder / track["file"]).exists()
            ],
        )
        for stretch in recording.segments
        if isinstance(stretch, dict)
    ]
    audio.join_unmixed_recording(stretches, out, max(channel_of.values(), default=0) + 1)
    for stretch in stretches:
        for track in stretch.tracks:
            track.mjr.unlink(missing_ok=True)


def _finish_recording_if_stopped(recording_id: str) -> None:
    """Join a stopped recording's segments into its file; RecordingFileStatusUpdated."""
    if not recording_id:
        return
    recording = Recording.objects.select_related("resource").filter(pk=recording_id).first()
    if recording is None or recording.state != RecordingState.STOPPED or recording.file_name:
        return
    folder = settings.RECORDINGS_DIR
    segments = [
        folder / name
        for name in recording.segments
        if isinstance(name, str) and (folder / name).exists()
    ]
    name = f"{recording.pk}.{recording.audio_format}"
    joined = folder / name
    if recording.channel_type == "unmixed" and recording.segments:
        _join_unmixed(recording, joined)
    elif segments:
        audio.join_recording(segments, joined, recording.audio_format)
        for segment in segments:
            segment.unlink(missing_ok=True)
    elif not joined.exists():
        name = ""
    size = 0
    if name:
        try:
            size = storage.keep(joined).size
        except Exception:
            # The bucket refused: the file stays here and the next round tries again.
            logger.exception("could not keep recording %s; will try again", recording.pk)
            Recording.objects.filter(pk=recording.pk).update(segments=[])
            return
    with transaction.atomic():
        Recording.objects.filter(pk=recording.pk).update(
            file_name=name or "-",
            size_bytes=size,
            stopped_at=recording.stopped_at or timezone.now(),
        )
        if name:
            publish_events(recording.resource, [_file_status_event(recording, name)])


def _file_status_event(recording: Recording, name: str) -> NewEvent:
    from apps.accounts.services import resource_endpoint

    endpoint = resource_endpoint(recording.resource)
    content = f"{endpoint}recordings/{recording.pk}/content"
    stopped = recording.stopped_at or timezone.now()
    data = {
        "recordingStorageInfo": {
            "recordingChunks": [
                {
                    "documentId": recording.pk,
                    "index": 0,
                    "endReason": "SessionEnded",
                    "contentLocation": content,
                    "metadataLocation": f"{endpoint}recordings/{recording.pk}/metadata",
                    "deleteLocation": content,
                }
            ]
        },
        "recordingStartTime": rfc3339(recording.started_at),
        "recordingDurationMs": int((stopped - recording.started_at).total_seconds() * 1000),
        "recordingContentType": "Audio",
        "recordingChannelType": recording.channel_type.capitalize(),
        "recordingFormatType": recording.audio_format.capitalize(),
        "sessionEndReason": "CallEnded",
    }
    return NewEvent(
        schemas.PREFIX + "RecordingFileStatusUpdated",
        f"/recording/call/{recording.call_id}/serverCallId/{recording.call_id}",
        data,
    )
