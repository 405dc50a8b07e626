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

With several Janus servers (SPOOL_JANUS_URLS), each call's room is on the server it was placed
on (apps/calls/janus_placement.py), placed here when its room first opens unless a group call's
first browser placed it already; this process checks every server's health each
SPOOL_JANUS_HEALTH_SECONDS, and ends the calls of a server that went away.

MediaProcess is spread over a few modules: recognize operations in recognizing.py and
recordings in recorder.py (mixins it inherits), what it keeps of a call in call_media.py, and
the sync database steps it runs in media_steps.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from apps.accounts.services import identity_group
from apps.automation import audio, services, streaming
from apps.automation.answering import Answering
from apps.automation.bridge import AudioBridgeRoom
from apps.automation.call_media import CallMedia, PlayFailure
from apps.automation.media_steps import (
    _chose_mute,
    _claim_operation,
    _continuous_tone,
    _due_work,
    _emit,
    _finish,
    _finish_recording_if_stopped,
    _hold_failed,
    _is_sfu_call,
    _leg_lost,
    _media_failed,
    _ring_timeouts,
    _still_ringing,
    recover,
)
from apps.automation.models import MediaOperation, OperationKind, OperationState
from apps.automation.phoning import Phoning
from apps.automation.recognizing import Recognizing
from apps.automation.recorder import Recorder
from apps.automation.room_bridge import RoomBridge
from apps.calls import janus_placement, signaling
from apps.calls.sfu import JanusError
from apps.core import outbound
from apps.metrics import engines

logger = logging.getLogger(__name__)

ROUND_SECONDS = 1.0
ALIVE_SECONDS = 5
FILE_CACHE_SECONDS = 300
PLAY_FAILED_DOWNLOAD = (400, 8536, "Action failed, file could not be downloaded.")
PLAY_FAILED_FORMAT = (400, 8535, "Action failed, file format is invalid.")
PLAY_FAILED_MEDIA = (500, 8500, "Action failed, the media server refused to play.")


def _report_death(task: asyncio.Task[None]) -> None:
    """Each loop of the media process runs until it stops: one that ended on an error is a bug
    the operator must see in the log (not only when the process exits)."""
    if not task.cancelled() and (error := task.exception()) is not None:
        name = getattr(task.get_coro(), "__qualname__", task.get_name())
        logger.error("the media process loop %s stopped", name, exc_info=error)


class MediaProcess(Recognizing, Recorder, Phoning, Answering):
    def __init__(self, janus_url: str = "") -> None:
        # One Janus for every call (tests); empty: each call on the server it is placed on.
        self.janus_url = janus_url
        self.calls: dict[str, CallMedia] = {}
        self.incoming = {}
        self.early_answers = {}
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
            asyncio.create_task(self._run_line()),
            asyncio.create_task(self._run_dtmf_log()),
            asyncio.create_task(self._janus_health()),
            asyncio.create_task(self._engine_health()),
        ]
        for task in tasks:
            task.add_done_callback(_report_death)
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

    async def _janus_health(self) -> None:
        """Check every configured Janus server; the calls of one that is down end (each round,
        so a call placed there before anyone noticed ends too)."""
        while True:
            try:
                for url in await janus_placement.check_all():
                    await database_sync_to_async(signaling.end_janus_calls)(url)
            except Exception:
                logger.exception("the Janus health check failed")
            await asyncio.sleep(settings.JANUS_HEALTH_SECONDS)

    async def _engine_health(self) -> None:
        """Kamailio's and rtpengine's answers, for the metrics (apps/metrics/engines.py); the
        first after a round's wait (serve starts them beside this process)."""
        while True:
            await asyncio.sleep(settings.JANUS_HEALTH_SECONDS)
            try:
                await asyncio.to_thread(engines.check)
            except Exception:
                logger.exception("the SIP engines' health check failed")

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
                await self._sweep_incoming()
            except Exception:
                logger.exception("media round failed")

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        call_id = str(message.get("call", ""))
        if kind == "signal":
            await self._signal(message)
        elif kind == "leave":
            raw_id, media = str(message["rawId"]), self.calls.get(call_id)
            if media is not None:
                phone = raw_id in media.phones
                if phone:  # its SIP call too: BYE, or CANCEL while it rings
                    await self._hang_up_phone(media, raw_id)
                if media.legs.pop(raw_id, None) is not None or phone:
                    with contextlib.suppress(Exception):
                        await media.room.leave(raw_id)
                    await self._legs_changed(media)
        elif kind == "end":
            await self._refuse_unanswered(call_id)
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
            raw_id = str(message["rawId"])
            if media is not None and raw_id in media.legs and raw_id not in media.early:
                await media.room.mute(raw_id, bool(message["muted"]))
        elif kind == "hold":
            await self._hold(message)
        elif kind == "recording":
            await self._apply_recording(str(message["recording"]))
        elif kind == "streaming":
            await self._apply_streaming(call_id)
        elif kind == "dial":
            await self._dial(message)
        elif kind == "answer_phone":
            await self._answer_phone(message)

    # --- legs ----------------------------------------------------------------------------------
    async def _media(self, call_id: str) -> CallMedia:
        media = self.calls.get(call_id)
        if media is None:
            holder: dict[str, CallMedia] = {}

            async def on_event(event: dict[str, Any]) -> None:
                await self._on_event(holder["media"], event)

            # A group call's browsers stay in its VideoRoom (the SFU): its AudioBridge room is
            # bridged to it, so they and the call's phones hear each other.
            in_sfu = await database_sync_to_async(_is_sfu_call)(call_id)
            server = self.janus_url or await database_sync_to_async(janus_placement.place)(call_id)
            room = AudioBridgeRoom(server, call_id, on_event, browsers=in_sfu)
            media = self.calls[call_id] = holder["media"] = CallMedia(call_id, room, server=server)
            media.in_sfu = in_sfu
        if not media.opened:
            await media.room.open(record_dir=settings.RECORDINGS_DIR)
            media.opened = True
            if media.in_sfu:
                await self._bridge_to_sfu(media)
        return media

    async def _bridge_to_sfu(self, media: CallMedia) -> None:
        async def on_event(event: dict[str, Any]) -> None:
            logger.warning("the bridge to call %s's SFU room broke: %s", media.call_id, event)

        media.bridge = RoomBridge(
            media.server, videoroom=media.call_id, audiobridge=media.call_id, on_event=on_event
        )
        try:
            await media.bridge.open()
        except JanusError:
            media.bridge = None
            await media.room.close()
            media.opened = False
            raise

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
            early = any(getattr(phone, "early_media", False) for phone in media.phones.values())
            if early and await database_sync_to_async(_still_ringing)(call_id):
                # Early media: a client calling a phone hears its network before it answers
                # (ringback, an announcement), and is kept out of the mix until it does.
                await media.room.mute(raw_id, True)
                media.early.add(raw_id)
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
        elif kind == "mediaReceiving":
            self._phone_media(media, str(event.get("display", "")), bool(event.get("receiving")))
        elif kind == "connectionLost":
            media.opened = False
            for done in media.playing.values():
                done.set()
            # Janus itself gone: every call on it ends; else this call's room alone went.
            if not self.janus_url and await janus_placement.confirm_lost(media.server):
                await database_sync_to_async(signaling.end_janus_calls)(media.server)
            await database_sync_to_async(_media_failed)(media.call_id)

    async def _end(self, call_id: str) -> None:
        media = self.calls.pop(call_id, None)
        if media is not None:
            await self._close(media)

    async def _close(self, media: CallMedia) -> None:
        for task in (media.current, media.runner, *media.silences.values()):
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
            await self._hang_up_phones(media)
        if media.bridge is not None:
            with contextlib.suppress(Exception):
                await media.bridge.close()
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
            tones = operation.request["tones"]
            # Phones get SIP INFO (apps/automation/phoning.py); the others in-band tones.
            targets = await self._send_dtmf_to_phones(media, tones, operation.request.get("to"))
            if targets != []:
                path = await asyncio.to_thread(audio.dtmf_file, tones)
                async with self._set_aside(media, targets) as to:
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

    async def _end_early_media(self, media: CallMedia) -> None:
        """The call connected: legs kept out of the mix during early media are heard now, but
        for those that muted themselves meanwhile."""
        for raw_id in list(media.early):
            media.early.discard(raw_id)
            muted = await database_sync_to_async(_chose_mute)(media.call_id, raw_id)
            with contextlib.suppress(JanusError, KeyError):  # (the leg may have gone)
                await media.room.mute(raw_id, muted)

    async def _legs_changed(self, media: CallMedia, rejoined: str = "") -> None:
        """Streams follow the legs: one forward each (a replaced leg gets a new one)."""
        for stream in list(media.streams.values()):
            if stream.running:
                await stream.follow(list(media.legs), rejoined=rejoined)


async def main() -> None:
    if not janus_placement.servers(janus_placement.MEDIA):
        raise SystemExit(
            "Set SPOOL_JANUS_URLS (or SPOOL_MEDIA_JANUS_URL, SPOOL_JANUS_URL) to Janus's "
            "WebSocket API."
        )
    process = MediaProcess()
    await process.run()
