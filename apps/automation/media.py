"""The media process (`manage.py media`, started by `serve` when Janus is installed): it holds
one Janus AudioBridge room per bridged call (apps/automation/bridge.py) and runs what happens
on the media plane: legs' WebRTC offers, media operations (play, recognize DTMF, send DTMF),
recordings, and the ring timeout of calls the application placed.

Media itself runs in Janus; this process only drives it, so it is never a web or Celery slot.
It listens on `settings.MEDIA_CHANNEL` (apps/calls/media_link.py) and also reads the database
every second (queued operations, recordings), so a message lost while it restarted delays work,
never loses it. When it starts, calls its predecessor held are ended (code 503: their Janus
rooms went with its Janus session) and their running operations failed; recordings keep the
segments written so far. docs/automation.md has the process model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.accounts.services import identity_group
from apps.automation import audio, callbacks, services, speech, storage, streaming
from apps.automation.bridge import AudioBridgeRoom
from apps.automation.models import (
    CallConnection,
    ConnectionState,
    MediaOperation,
    OperationKind,
    OperationState,
    Recording,
    RecordingState,
)
from apps.calls import signaling
from apps.calls.models import Call, CallLegState, CallParticipant, CallState, CallTopology
from apps.calls.sfu import JanusError
from apps.core import outbound
from apps.core.api import rfc3339
from apps.events import schemas
from apps.events.services import NewEvent, publish_events

logger = logging.getLogger(__name__)

ROUND_SECONDS = 1.0
ALIVE_SECONDS = 5
END_MEDIA_LOST = 503
FILE_CACHE_SECONDS = 300
PLAY_FAILED_DOWNLOAD = (400, 8536, "Action failed, file could not be downloaded.")
PLAY_FAILED_FORMAT = (400, 8535, "Action failed, file format is invalid.")
PLAY_FAILED_MEDIA = (500, 8500, "Action failed, the media server refused to play.")
RECOGNIZE_MAX_TONES = (200, 8531, "Action completed, max digits received.")
RECOGNIZE_STOP_TONE = (200, 8514, "Action completed as stop tone was detected.")
RECOGNIZE_INTER_TONE = (200, 8532, "Action completed, interdigit silence timeout reached.")
RECOGNIZE_SILENCE = (400, 8510, "Action failed, initial silence timeout reached.")
RECOGNIZE_PROMPT_FAILED = (
    500,
    8511,
    "Action failed, encountered failure while trying to play the prompt.",
)
RECOGNIZE_SPEECH_MATCHED = (200, 8545, "Action completed, speech option matched.")
RECOGNIZE_TONE_MATCHED = (200, 8533, "Action completed, DTMF option matched.")
RECOGNIZE_NOT_MATCHED = (400, 8547, "Action failed, speech option not matched.")
RECOGNIZE_WRONG_TONE = (400, 8534, "Action failed, incorrect tone detected.")
RECOGNIZE_NO_AUDIO = (500, 8500, "Action failed, the participant's audio could not be reached.")
# Free speech: the ACS SDKs' reason codes have no subcode of their own for speech recognized
# (MediaEventReasonCode: CompletedSuccessfully 0; RecognizeSpeechNotRecognized 8563).
RECOGNIZE_SPEECH_RECOGNIZED = (200, 0, "Action completed successfully.")
RECOGNIZE_SPEECH_NOT_RECOGNIZED = (400, 8563, "Action failed, speech could not be recognized.")


class PlayFailure(Exception):
    def __init__(self, result: tuple[int, int, str], index: int = 0) -> None:
        super().__init__(result[2])
        self.result = result
        self.index = index


@dataclass
class CallMedia:
    """One bridged call on this process: its room, the legs in it, its running operation."""

    call_id: str
    room: AudioBridgeRoom
    legs: dict[str, str] = field(default_factory=dict)  # raw id -> socket channel name
    opened: bool = False
    runner: asyncio.Task[None] | None = None
    current: asyncio.Task[None] | None = None
    tones: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    playing: dict[str, asyncio.Event] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # raw id -> its hold music's file id
    recording_id: str = ""
    recording_segment: Path | None = None
    recording_unmixed: bool = False  # the segment is each leg's own .mjr, not the mix
    streams: dict[str, streaming.MediaStream] = field(default_factory=dict)  # by subscription


class MediaProcess:
    def __init__(self, janus_url: str) -> None:
        self.janus_url = janus_url
        self.calls: dict[str, CallMedia] = {}
        self.files: dict[str, tuple[Path, float]] = {}  # file URL -> (prompt, fetched at)
        self.layer = get_channel_layer()
        self.stopping = asyncio.Event()
        self.background: set[asyncio.Task[None]] = set()  # stream starts and stops

    # --- the loops ---------------------------------------------------------------------------
    async def run(self) -> None:
        await database_sync_to_async(recover)()
        tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._rounds()),
            asyncio.create_task(self._alive()),
        ]
        try:
            await self.stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            for media in list(self.calls.values()):
                await self._close(media)

    async def _alive(self) -> None:
        while True:
            await database_sync_to_async(cache.set)(services.MEDIA_ALIVE_KEY, 1, ALIVE_SECONDS)
            await asyncio.sleep(1)

    async def _listen(self) -> None:
        assert self.layer is not None
        while True:
            message = await self.layer.receive(settings.MEDIA_CHANNEL)
            try:
                await self.handle(message)
            except Exception:
                logger.exception("media message %s failed", message.get("type"))

    async def _rounds(self) -> None:
        """What the database says needs doing, in case a message was lost."""
        while True:
            await asyncio.sleep(ROUND_SECONDS)
            try:
                work = await database_sync_to_async(_due_work)()
                for call_id in work["operations"]:
                    await self._start_runner(call_id)
                for recording_id in work["recordings"]:
                    await self._apply_recording(recording_id)
                for call_id in work["ended"]:
                    await self._end(call_id)
                for call_id in await database_sync_to_async(services.streaming_due)():
                    await self._apply_streaming(call_id)
                await database_sync_to_async(_ring_timeouts)()
            except Exception:
                logger.exception("media round failed")

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        call_id = str(message.get("call", ""))
        if kind == "signal":
            await self._signal(message)
        elif kind == "leave":
            media = self.calls.get(call_id)
            if media is not None and media.legs.pop(str(message["rawId"]), None) is not None:
                with contextlib.suppress(Exception):
                    await media.room.leave(str(message["rawId"]))
                await self._legs_changed(media)
        elif kind == "end":
            await self._end(call_id)
        elif kind == "dtmf":
            await self._dtmf(call_id, str(message["rawId"]), str(message["tone"]))
        elif kind == "operations":
            await self._start_runner(call_id)
        elif kind == "cancel":
            media = self.calls.get(call_id)
            if media is not None and media.current is not None:
                media.current.cancel()
        elif kind == "mute":
            media = self.calls.get(call_id)
            if media is not None and str(message["rawId"]) in media.legs:
                await media.room.mute(str(message["rawId"]), bool(message["muted"]))
        elif kind == "hold":
            await self._hold(message)
        elif kind == "recording":
            await self._apply_recording(str(message["recording"]))
        elif kind == "streaming":
            await self._apply_streaming(call_id)

    # --- legs ----------------------------------------------------------------------------------
    async def _media(self, call_id: str) -> CallMedia:
        media = self.calls.get(call_id)
        if media is None:
            holder: dict[str, CallMedia] = {}

            async def on_event(event: dict[str, Any]) -> None:
                await self._on_event(holder["media"], event)

            room = AudioBridgeRoom(self.janus_url, call_id, on_event)
            media = self.calls[call_id] = holder["media"] = CallMedia(call_id, room)
        if not media.opened:
            await media.room.open(record_dir=settings.RECORDINGS_DIR)
            media.opened = True
        return media

    async def _signal(self, message: dict[str, Any]) -> None:
        call_id, raw_id, channel = (
            str(message["call"]),
            str(message["rawId"]),
            str(message["channel"]),
        )
        data = message["data"]
        try:
            media = await self._media(call_id)
            if "candidate" in data:
                await media.room.trickle(raw_id, data.get("candidate"))
                return
            if data.get("type") != "offer":
                return
            answer = await media.room.join(raw_id, data)
        except Exception as error:
            logger.warning("the bridge refused %s in call %s: %s", raw_id, call_id, error)
            await self._to_socket(message, {"type": "bye"})
            await database_sync_to_async(_leg_lost)(call_id, raw_id)
            return
        media.legs[raw_id] = channel
        await self._to_socket(message, answer)
        await database_sync_to_async(services.media_joined)(call_id, raw_id)
        await self._start_runner(call_id)
        await self._legs_changed(media, rejoined=raw_id)
        await self._record_leg(media, raw_id)  # an unmixed recording takes in a new leg
        await self._apply_streaming(call_id)  # a stream wanted from the answer starts now

    async def _to_socket(self, message: dict[str, Any], data: dict[str, Any]) -> None:
        assert self.layer is not None
        frame = {
            "type": "call",
            "event": "signal",
            "callId": message["call"],
            "from": signaling.MEDIA_PEER,
            "data": data,
            "toChannel": message["channel"],
        }
        await self.layer.group_send(
            identity_group(message["identity"]), {"type": "realtime.event", "payload": frame}
        )

    async def _on_event(self, media: CallMedia, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "playStopped":
            done = media.playing.get(str(event.get("fileId")))
            if done is not None:
                done.set()
        elif kind == "participantLeft":
            raw_id = str(event.get("display", ""))
            media.held.pop(raw_id, None)
            if media.legs.pop(raw_id, None) is not None:
                await database_sync_to_async(_leg_lost)(media.call_id, raw_id)
                await self._legs_changed(media)
        elif kind == "connectionLost":
            media.opened = False
            for done in media.playing.values():
                done.set()
            await database_sync_to_async(_media_failed)(media.call_id)

    async def _end(self, call_id: str) -> None:
        media = self.calls.pop(call_id, None)
        if media is not None:
            await self._close(media)

    async def _close(self, media: CallMedia) -> None:
        for task in (media.current, media.runner):
            if task is not None:
                task.cancel()
        for subscription_id in list(media.streams):
            stream = media.streams.pop(subscription_id)
            await stream.stop()
            await database_sync_to_async(services.media_streaming_ended)(
                subscription_id, callback=False
            )
        if media.recording_segment is not None:
            with contextlib.suppress(Exception):
                if media.recording_unmixed:
                    await self._stop_unmixed(media)
                else:
                    await media.room.stop_recording()
            media.recording_segment = None
            await database_sync_to_async(_finish_recording_if_stopped)(media.recording_id)
        with contextlib.suppress(Exception):
            await media.room.close()

    # --- DTMF ----------------------------------------------------------------------------------
    async def _dtmf(self, call_id: str, raw_id: str, tone: str) -> None:
        media = self.calls.get(call_id)
        if media is not None:
            media.tones.put_nowait((raw_id, tone))
        await database_sync_to_async(_continuous_tone)(call_id, raw_id, tone)

    # --- operations ---------------------------------------------------------------------------
    async def _start_runner(self, call_id: str) -> None:
        media = self.calls.get(call_id)
        if media is None or not media.opened or not media.legs:
            return  # operations wait for the first leg's media
        if media.runner is None or media.runner.done():
            media.runner = asyncio.create_task(self._run_operations(media))

    async def _run_operations(self, media: CallMedia) -> None:
        while True:
            operation = await database_sync_to_async(_claim_operation)(media.call_id)
            if operation is None:
                return
            media.current = asyncio.create_task(self._execute(media, operation))
            try:
                await media.current
            except asyncio.CancelledError:
                if media.current is not None and not media.current.cancelled():
                    raise  # the runner itself was cancelled
                await database_sync_to_async(_finish)(operation, OperationState.CANCELED)
            except Exception:
                logger.exception("media operation %s failed", operation.pk)
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=(500, 9999, "Unknown internal error.")
                )
            finally:
                media.current = None

    async def _execute(self, media: CallMedia, operation: MediaOperation) -> None:
        if operation.kind == OperationKind.PLAY:
            await self._play_operation(media, operation)
        elif operation.kind == OperationKind.RECOGNIZE:
            await self._recognize(media, operation)
        elif operation.kind == OperationKind.SEND_DTMF:
            path = await asyncio.to_thread(audio.dtmf_file, operation.request["tones"])
            async with self._set_aside(media, operation.request.get("to")) as to:
                await self._play(media, path, to)
            await database_sync_to_async(_finish)(operation, OperationState.COMPLETED)

    async def _play_operation(self, media: CallMedia, operation: MediaOperation) -> None:
        try:
            paths = [await self._prompt(source) for source in operation.request["sources"]]
        except PlayFailure as failure:
            await database_sync_to_async(_finish)(
                operation,
                OperationState.FAILED,
                result=failure.result,
                data={"failedPlaySourceIndex": failure.index},
            )
            return
        async with self._set_aside(media, operation.request.get("to")) as to:
            await database_sync_to_async(_emit)(operation, "PlayStarted")
            while True:
                for path in paths:
                    await self._play(media, path, to)
                if not operation.request.get("loop"):
                    break
        await database_sync_to_async(_finish)(operation, OperationState.COMPLETED)

    @contextlib.asynccontextmanager
    async def _set_aside(
        self, media: CallMedia, targets: list[str] | None
    ) -> AsyncIterator[list[str] | None]:
        """For a play to some participants only: set each of them aside (still in the
        conversation; apps/automation/sideroom.py) for the while, and yield those to play to
        (None: the whole room). Targets that left are skipped; held ones are aside already."""
        if targets is None or set(targets) >= set(media.legs):
            yield None
            return
        present = [raw_id for raw_id in targets if raw_id in media.legs]
        moved: list[str] = []
        try:
            for raw_id in present:
                if raw_id not in media.held:
                    await media.room.set_aside(raw_id, linked=True)
                    moved.append(raw_id)
            yield present
        finally:
            for raw_id in moved:
                if raw_id not in media.held:  # held meanwhile: it stays aside
                    with contextlib.suppress(Exception):
                        await media.room.bring_back(raw_id)

    async def _play(self, media: CallMedia, path: Path, to: list[str] | None = None) -> None:
        """Play one file to the room (or to the legs `to`, set aside) and wait for its end;
        stop it when cancelled."""
        targets: list[str | None] = list(to) if to is not None else [None]
        plays = {uuid.uuid4().hex: raw_id for raw_id in targets}
        waits = {file_id: asyncio.Event() for file_id in plays}
        media.playing.update(waits)
        try:
            for file_id, raw_id in plays.items():
                await media.room.play(path, file_id, to=raw_id)
            await asyncio.gather(*(done.wait() for done in waits.values()))
        except asyncio.CancelledError:
            for file_id in plays:
                with contextlib.suppress(Exception):
                    await media.room.stop_play(file_id)
            raise
        finally:
            for file_id in plays:
                media.playing.pop(file_id, None)

    async def _hold(self, message: dict[str, Any]) -> None:
        """Hold a leg (set apart, unlinked, with its music looping) or take it off hold."""
        media = self.calls.get(str(message["call"]))
        raw_id = str(message["rawId"])
        if media is None or raw_id not in media.legs:
            return
        if not message["on"]:
            if media.held.pop(raw_id, None) is not None:
                await media.room.bring_back(raw_id)
            return
        if raw_id in media.held:
            return
        try:
            music = message.get("music")
            path = await self._prompt(music) if music else None
            await media.room.bring_back(raw_id)  # from a targeted play, if one is running
            await media.room.set_aside(raw_id, linked=False)
            media.held[raw_id] = uuid.uuid4().hex
            if path is not None:
                await media.room.play(path, media.held[raw_id], loop=True, to=raw_id)
        except (PlayFailure, JanusError) as error:
            logger.info("holding %s in call %s failed: %s", raw_id, media.call_id, error)
            result = error.result if isinstance(error, PlayFailure) else PLAY_FAILED_MEDIA
            await database_sync_to_async(_hold_failed)(message, result)

    async def _prompt(self, source: dict[str, Any], index: int = 0) -> Path:
        """The Ogg Opus file a play source sounds as (speech made offline, files fetched
        through the safe outbound module and converted; both cached)."""
        try:
            if "text" in source or "ssml" in source:
                text = source.get("text") or audio.ssml_text(source["ssml"])
                return await asyncio.to_thread(
                    audio.speech_file,
                    text,
                    voice=source.get("voice", ""),
                    locale=source.get("locale", ""),
                )
            url = source["file"]
            cached = self.files.get(url)
            if (
                cached is not None
                and time.monotonic() - cached[1] < FILE_CACHE_SECONDS
                and cached[0].exists()
            ):
                return cached[0]
            answer = await outbound.request_async(
                "GET",
                url,
                deadline=settings.MEDIA_FILE_FETCH_SECONDS,
                max_bytes=settings.MEDIA_FILE_MAX_BYTES,
            )
            if not answer.ok or not answer.body:
                raise PlayFailure(PLAY_FAILED_DOWNLOAD, index)
            path = await asyncio.to_thread(audio.prompt_file, answer.body)
            self.files[url] = (path, time.monotonic())
            return path
        except audio.AudioError as error:
            logger.info("a play source could not be used: %s", error)
            raise PlayFailure(PLAY_FAILED_FORMAT, index) from error

    async def _recognize(self, media: CallMedia, operation: MediaOperation) -> None:
        request = operation.request
        if request.get("inputType") in ("choices", "speech", "speechOrDtmf"):
            await self._recognize_choices(media, operation)
            return
        target = request["target"]
        while not media.tones.empty():  # keys pressed before the recognize do not count
            media.tones.get_nowait()
        prompt: asyncio.Task[None] | None = None
        if request["prompts"]:
            try:
                paths = [await self._prompt(source) for source in request["prompts"]]
            except PlayFailure:
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=RECOGNIZE_PROMPT_FAILED
                )
                return

            async def play_prompts() -> None:
                for path in paths:
                    await self._play(media, path)

            prompt = asyncio.create_task(play_prompts())
        tones: list[str] = []
        try:
            result = await self._collect(media, request, target, tones, prompt)
        finally:
            if prompt is not None and not prompt.done():
                prompt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prompt
        names = [services.TONE_NAMES[tone] for tone in tones]
        if result == RECOGNIZE_SILENCE:
            await database_sync_to_async(_finish)(operation, OperationState.FAILED, result=result)
            return
        data = {"recognitionType": "dtmf", "dtmfResult": {"tones": names}}
        await database_sync_to_async(_finish)(
            operation, OperationState.COMPLETED, result=result, data=data, tones=names
        )

    async def _collect(
        self,
        media: CallMedia,
        request: dict[str, Any],
        target: str,
        tones: list[str],
        prompt: asyncio.Task[None] | None,
        first: str | None = None,
    ) -> tuple[int, int, str]:
        """Wait for the target's keys under the ACS rules (`first`: a key already taken);
        returns the result."""
        while True:
            if tones:
                timeout: float = request["interToneSeconds"]
            elif prompt is not None and not prompt.done():
                timeout = 3600.0  # the initial silence counts from the prompt's end
            else:
                timeout = request["initialSilenceSeconds"]
            if first is not None:
                tone: str | None = first
                first = None
            else:
                tone = await self._next_tone(media, target, timeout, prompt if not tones else None)
            if tone is None:
                if prompt is not None and not prompt.done() and not tones:
                    continue
                return RECOGNIZE_INTER_TONE if tones else RECOGNIZE_SILENCE
            if tone == "":  # the prompt ended: the initial silence starts now
                prompt = None
                continue
            if prompt is not None and not prompt.done() and request["interruptPrompt"]:
                prompt.cancel()
            if tone in request["stopTones"]:
                return RECOGNIZE_STOP_TONE
            tones.append(tone)
            if len(tones) >= request["maxTones"]:
                return RECOGNIZE_MAX_TONES

    async def _next_tone(
        self,
        media: CallMedia,
        target: str,
        timeout: float,
        prompt: asyncio.Task[None] | None,
    ) -> str | None:
        """The target's next key; "" when the prompt ends first; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(media.tones.get())}
            if prompt is not None and not prompt.done():
                waiters.add(asyncio.ensure_future(asyncio.shield(prompt)))
            done, pending = await asyncio.wait(
                waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if not done:
                return None
            for waiter in done:
                value = (
                    waiter.result()
                    if not waiter.cancelled() and waiter.exception() is None
                    else None
                )
                if isinstance(value, tuple):
                    raw_id, tone = value
                    if raw_id == target:
                        return tone
                elif prompt is not None and prompt.done():
                    return ""

    # --- recognize by speech: choices (or a choice's tone), free speech (or keys) --------------
    async def _recognize_choices(self, media: CallMedia, operation: MediaOperation) -> None:
        """Listen to the target (apps/automation/speech.py) while the prompt plays, for one of
        the choices (a key picks the choice whose tone it is) or for free speech (speechOrDtmf:
        a first key turns it into a DTMF recognize). One utterance decides."""
        request = operation.request
        while not media.tones.empty():  # keys pressed before the recognize do not count
            media.tones.get_nowait()
        choices = None
        if request["inputType"] == "choices":
            choices = [
                speech.Choice(c["label"], c["phrases"], c["tone"]) for c in request["choices"]
            ]
        listener = speech.Listener(
            media.room,
            request["target"],
            choices,
            end_silence=request.get("endSilenceMs", 0) / 1000,
        )
        prompt: asyncio.Task[None] | None = None
        try:
            try:
                await listener.open()
            except JanusError as error:
                logger.warning("cannot listen to %s: %s", request["target"], error)
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=RECOGNIZE_NO_AUDIO
                )
                return
            try:
                prompt = await self._prompt_task(media, request["prompts"])
            except PlayFailure:
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=RECOGNIZE_PROMPT_FAILED
                )
                return
            result, data = await self._hear(media, request, listener, choices or [], prompt)
        finally:
            if prompt is not None and not prompt.done():
                prompt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prompt
            await listener.close()
        state = OperationState.COMPLETED if result[0] < 300 else OperationState.FAILED
        tones = data["dtmfResult"]["tones"] if data and "dtmfResult" in data else None
        await database_sync_to_async(_finish)(
            operation, state, result=result, data=data, tones=tones
        )

    async def _prompt_task(
        self, media: CallMedia, sources: list[dict[str, Any]]
    ) -> asyncio.Task[None] | None:
        """The prompts, playing in the background (None without prompts). Raises
        PlayFailure."""
        if not sources:
            return None
        paths = [await self._prompt(source) for source in sources]

        async def play_prompts() -> None:
            for path in paths:
                await self._play(media, path)

        return asyncio.create_task(play_prompts())

    async def _hear(
        self,
        media: CallMedia,
        request: dict[str, Any],
        listener: speech.Listener,
        choices: list[speech.Choice],
        prompt: asyncio.Task[None] | None,
    ) -> tuple[tuple[int, int, str], dict[str, Any] | None]:
        kind_of_input = request["inputType"]
        unheard = (
            RECOGNIZE_NOT_MATCHED if kind_of_input == "choices" else RECOGNIZE_SPEECH_NOT_RECOGNIZED
        )
        speaking = False
        while True:
            if speaking:
                timeout = speech.MAX_SPEECH_SECONDS + 5
            elif prompt is not None and not prompt.done():
                timeout = 3600.0  # the initial silence counts from the prompt's end
            else:
                timeout = float(request["initialSilenceSeconds"])
            kind, value = await self._next_input(
                media, request["target"], listener, prompt, timeout, keys=kind_of_input != "speech"
            )
            if kind == "timeout":
                return (unheard if speaking else RECOGNIZE_SILENCE), None
            if kind == "prompt":
                prompt = None
            elif kind == "speech":
                speaking = True
                if prompt is not None and not prompt.done() and request["interruptPrompt"]:
                    prompt.cancel()
            elif kind == "heard":
                if isinstance(value, speech.Said) and value.text:
                    said: dict[str, Any] = {"speech": value.text}
                    if value.confidence is not None:
                        said["confidence"] = value.confidence
                    return RECOGNIZE_SPEECH_RECOGNIZED, _speech_data(said)
                if not isinstance(value, speech.Heard):
                    return unheard, None
                heard = {
                    "label": value.label,
                    "recognizedPhrase": value.phrase,
                    "confidence": value.confidence,
                }
                return RECOGNIZE_SPEECH_MATCHED, _choice_data(heard)
            elif kind == "tone" and kind_of_input == "speechOrDtmf":
                # The first key makes it a DTMF recognize, collected by the DTMF rules.
                tones: list[str] = []
                result = await self._collect(
                    media, request, request["target"], tones, prompt, first=value
                )
                names = [services.TONE_NAMES[tone] for tone in tones]
                return result, {"recognitionType": "dtmf", "dtmfResult": {"tones": names}}
            elif kind == "tone":
                for choice in choices:
                    if choice.tone and choice.tone == value:
                        return RECOGNIZE_TONE_MATCHED, _choice_data({"label": choice.label})
                return RECOGNIZE_WRONG_TONE, None

    async def _next_input(
        self,
        media: CallMedia,
        target: str,
        listener: speech.Listener,
        prompt: asyncio.Task[None] | None,
        timeout: float,
        *,
        keys: bool = True,
    ) -> tuple[str, Any]:
        """The next of: ("tone", key) of the target (unless not `keys`), ("speech", None),
        ("heard", Heard | Said | None), ("prompt", None) when the prompt ends,
        ("timeout", None)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", None
            tone: asyncio.Future[tuple[str, str]] = (
                asyncio.ensure_future(media.tones.get())
                if keys
                else asyncio.get_running_loop().create_future()  # keys are not listened for
            )
            heard = asyncio.ensure_future(listener.events.get())
            waiters: set[asyncio.Future[Any]] = {tone, heard}
            if prompt is not None and not prompt.done():
                waiters.add(asyncio.ensure_future(asyncio.shield(prompt)))
            done, pending = await asyncio.wait(
                waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if heard in done:
                if tone in done:  # not lost: the next round takes it
                    media.tones.put_nowait(tone.result())
                kind, value = heard.result()
                return kind, value
            if tone in done:
                raw_id, key = tone.result()
                if raw_id == target:
                    return "tone", key
                continue
            if done and prompt is not None and prompt.done():
                return "prompt", None

    # --- media streaming ----------------------------------------------------------------------
    def _background(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _apply_streaming(self, call_id: str) -> None:
        """Start or stop the call's streams as their applications want (apps/automation/
        streaming.py), in the background: connecting to an application never holds this
        process's messages."""
        media = self.calls.get(call_id)
        if media is None:
            # Not held here (it ended, or a media process before this one held it): nothing
            # streams it, whatever the row says.
            for plan in await database_sync_to_async(services.media_streaming_plans)(call_id):
                if plan["active"] and not plan["wanted"]:
                    await database_sync_to_async(services.media_streaming_ended)(plan["id"])
            return
        if not media.opened:
            return  # the rounds look again
        plans = await database_sync_to_async(services.media_streaming_plans)(call_id)
        for plan in plans:
            subscription_id = plan["id"]
            stream = media.streams.get(subscription_id)
            if plan["wanted"] and stream is None:
                options = streaming.StreamOptions(
                    url=plan["url"],
                    subscription_id=subscription_id,
                    unmixed=plan["unmixed"],
                    rate=streaming.RATES[plan["format"]],
                    bidirectional=plan["bidirectional"],
                    headers=plan["headers"],
                )
                stream = streaming.MediaStream(
                    media.room, options, self._on_stream_failed(media, subscription_id)
                )
                media.streams[subscription_id] = stream
                self._background(self._start_stream(media, subscription_id, stream))
            elif not plan["wanted"] and stream is not None and stream.running:
                media.streams.pop(subscription_id)
                self._background(self._stop_stream(subscription_id, stream))
            elif not plan["wanted"] and stream is None and plan["active"]:
                # Streamed by a media process that is gone, or already stopped here.
                await database_sync_to_async(services.media_streaming_ended)(subscription_id)

    async def _start_stream(
        self, media: CallMedia, subscription_id: str, stream: streaming.MediaStream
    ) -> None:
        try:
            await stream.start()
        except streaming.StreamFailed as failure:
            if media.streams.get(subscription_id) is stream:
                del media.streams[subscription_id]
                await database_sync_to_async(services.media_streaming_ended)(
                    subscription_id, details=failure.details, message=str(failure)
                )
            return
        if media.streams.get(subscription_id) is not stream:  # the call ended meanwhile
            await stream.stop()
            return
        await database_sync_to_async(services.media_streaming_started)(subscription_id)
        await stream.follow(list(media.legs))
        await self._apply_streaming(media.call_id)  # it may have been stopped meanwhile

    def _on_stream_failed(self, media: CallMedia, subscription_id: str) -> streaming.OnFailed:
        async def failed(failure: streaming.StreamFailed) -> None:
            stream = media.streams.get(subscription_id)
            if stream is None:
                return
            del media.streams[subscription_id]
            await stream.stop()
            await database_sync_to_async(services.media_streaming_ended)(
                subscription_id, details=failure.details, message=str(failure)
            )

        return failed

    async def _stop_stream(self, subscription_id: str, stream: streaming.MediaStream) -> None:
        await stream.stop()
        await database_sync_to_async(services.media_streaming_ended)(subscription_id)

    async def _legs_changed(self, media: CallMedia, rejoined: str = "") -> None:
        """Streams follow the legs: one forward each (a replaced leg gets a new one)."""
        for stream in list(media.streams.values()):
            if stream.running:
                await stream.follow(list(media.legs), rejoined=rejoined)

    # --- recordings ---------------------------------------------------------------------------
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


# --- Database steps (sync; run through database_sync_to_async) --------------------------------
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
                "targetParticipant": services.identifier_model(raw_id),
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
            call, END_MEDIA_LOST, "The media server went away.", by=call.caller_raw_id
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


async def main() -> None:
    url = settings.MEDIA_JANUS_URL or settings.JANUS_URL
    if not url:
        raise SystemExit("Set SPOOL_MEDIA_JANUS_URL (or SPOOL_JANUS_URL) to Janus's WebSocket API.")
    process = MediaProcess(url)
    await process.run()
