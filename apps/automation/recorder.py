"""Recordings in the media process (apps/automation/media.py): the Recorder mixin of
MediaProcess starts, pauses and stops a call's recording in its Janus room, mixed (one file a
segment) or unmixed (each leg's own .mjr, stretch by stretch); the files are joined by the
database steps (apps/automation/media_steps.py).
"""

from __future__ import annotations

import logging
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from apps.automation import services
from apps.automation.call_media import CallMedia
from apps.automation.media_steps import (
    _finish_recording_if_stopped,
    _now_us,
    _recording_changed,
    _unmixed_stretch,
)
from apps.automation.models import Recording, RecordingState
from apps.calls.sfu import JanusError

logger = logging.getLogger(__name__)


class Recorder:
    """MediaProcess's recordings, on the calls it holds."""

    calls: dict[str, CallMedia]

    async def _apply_recording(self, recording_id: str) -> None:
        recording = await database_sync_to_async(
            lambda: Recording.objects.filter(pk=recording_id).first()
        )()
        if recording is None:
            return
        call_id = str(recording.call_id)
        media = self.calls.get(call_id)
        want = recording.state == RecordingState.ACTIVE
        if media is None or not media.opened:
            if recording.state == RecordingState.STOPPED:
                await database_sync_to_async(_finish_recording_if_stopped)(recording_id)
            return
        media.recording_id = recording_id
        if recording.channel_type == "unmixed":
            await self._apply_unmixed(media, recording)
            return
        if want and media.recording_segment is None:
            index = len(recording.segments)
            base = settings.RECORDINGS_DIR / f"{recording_id}-{index}"
            settings.RECORDINGS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = await media.room.start_recording(base)
            media.recording_segment = path
            await database_sync_to_async(_recording_changed)(recording_id, path.name, "active")
        elif not want and media.recording_segment is not None:
            await media.room.stop_recording()
            media.recording_segment = None
            await database_sync_to_async(_recording_changed)(recording_id, "", "inactive")
            if recording.state == RecordingState.STOPPED:
                await database_sync_to_async(_finish_recording_if_stopped)(recording_id)
        elif recording.state == RecordingState.STOPPED:
            await database_sync_to_async(_finish_recording_if_stopped)(recording_id)

    async def _apply_unmixed(self, media: CallMedia, recording: Recording) -> None:
        """An unmixed recording: while active, every leg's own audio goes to a .mjr of its own
        (Janus, before the mix); each start or resume opens a stretch, each pause or stop
        closes it, and the stretches' tracks are lined up into one WAV when it stops."""
        want = recording.state == RecordingState.ACTIVE
        if want and media.recording_segment is None:
            index = len(recording.segments)
            settings.RECORDINGS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            media.recording_segment = settings.RECORDINGS_DIR / f"{recording.pk}-{index}"
            media.recording_unmixed = True
            await database_sync_to_async(_unmixed_stretch)(recording.pk, start=_now_us())
            for raw_id in list(media.legs):
                await self._record_leg(media, raw_id)
            await database_sync_to_async(_recording_changed)(recording.pk, "", "active")
        elif not want and media.recording_segment is not None:
            await self._stop_unmixed(media)
            await database_sync_to_async(_recording_changed)(recording.pk, "", "inactive")
            if recording.state == RecordingState.STOPPED:
                await database_sync_to_async(_finish_recording_if_stopped)(recording.pk)
        elif recording.state == RecordingState.STOPPED:
            await database_sync_to_async(_finish_recording_if_stopped)(recording.pk)

    async def _record_leg(self, media: CallMedia, raw_id: str) -> None:
        """Record a leg's own audio on its channel, if an unmixed recording is active (and has
        a channel for it: at most five)."""
        base = media.recording_segment
        if base is None or not media.recording_unmixed or raw_id not in media.legs:
            return
        channel = await database_sync_to_async(services.recording_channel)(
            media.recording_id, raw_id
        )
        if channel is None:
            return
        name = f"{base.name}-{channel}-{uuid.uuid4().hex[:8]}"
        try:
            mjr = await media.room.start_leg_recording(raw_id, base.with_name(name))
        except JanusError as error:
            logger.warning("could not record %s in call %s: %s", raw_id, media.call_id, error)
            return
        await database_sync_to_async(_unmixed_stretch)(
            media.recording_id, track={"participant": raw_id, "file": mjr.name}
        )

    async def _stop_unmixed(self, media: CallMedia) -> None:
        for raw_id in list(media.room.leg_recordings):
            try:
                await media.room.stop_leg_recording(raw_id)
            except JanusError as error:  # its file closes when it leaves, or with the room
                logger.warning("stopping %s's recording: %s", raw_id, error)
        media.recording_segment = None
        media.recording_unmixed = False
        await database_sync_to_async(_unmixed_stretch)(media.recording_id, end=_now_us())
