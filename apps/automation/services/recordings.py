"""Call Automation's recordings: start (mixed, or unmixed with a channel per participant),
pause, resume and stop them, and their files (where they are, deletion, retention). The media
process records and joins the files.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Resource
from apps.automation import storage
from apps.automation.exceptions import (
    InvalidAutomationRequest,
    NotSupported,
    RecordingNotFound,
    WrongCallState,
)
from apps.automation.models import CallConnection, ConnectionState, Recording, RecordingState
from apps.automation.services.calls import _call_of_locator, access_connection
from apps.automation.services.shared import _callback_uri
from apps.calls import media_link
from apps.calls.models import Call, CallTopology
from apps.core.identifiers import raw_id_of

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
