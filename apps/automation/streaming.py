"""Media streaming for voice bots (ACS `mediaStreamingOptions`, `:startMediaStreaming`): the
call's audio to the application's WebSocket as ACS sends it, and with `enableBidirectional` the
application's audio back into the call. It runs in the media process (apps/automation/media.py),
which owns the call's AudioBridge room; nothing here touches the database.

How audio flows:

    participant --(AudioBridge rtp_forward, Opus, one per participant: its solo group)-->
    ForwardSink (a UDP socket here; decoded with PyAV, resampled to 16 or 24 kHz PCM16)
    --(a 20 ms ticker: one AudioData per participant, or their sum for "mixed")-->
    a bounded send queue --> the application's WebSocket (apps/core/outbound.py opened it)

    the application's AudioData (PCM16 at the stream's rate) --> RtpPlayer (resampled to
    8 kHz, A-law, 20 ms RTP packets paced in real time) --> a plain-RTP leg of the room

"mixed" is the sum of the participants' own forwards, not the room's mix: the room's mix would
carry the bot's own voice back to it (and prompts). So mixed, like unmixed, streams at most
four participants (AudioBridge forwards four legs apart at once: bridge.py).

Safety: the WebSocket URL is a tenant's and hostile (outbound.connect_websocket checks and pins
its address, with a deadline); a message from the application over MAX_MESSAGE_BYTES closes the
stream; a bot that reads slowly loses the oldest audio (the send queue is bounded, drops are
logged) and one that stops reading for STALL_SECONDS, or goes away, fails the stream
(MediaStreamingFailed). Audio the application sends is buffered up to MAX_PLAYBACK_SECONDS;
beyond that the reader stops reading (TCP pushes back on the bot). Nothing here ever waits on
the application while holding the media process.
"""

from __future__ import annotations

import array
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import struct
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import av
from av import AudioFrame
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from apps.calls.sfu import JanusError
from apps.core import outbound

logger = logging.getLogger(__name__)

RATES = {"pcm16KMono": 16000, "pcm24KMono": 24000}
FRAME_SECONDS = 0.02
RTP_HOST = "127.0.0.1"  # Janus runs beside the media process (docker/compose.yml: host network)
OPUS_PT = 111
PCMA_PT = 8
CONNECT_SECONDS = 10.0
MAX_MESSAGE_BYTES = 1024 * 1024  # one message from the application
SEND_QUEUE_MESSAGES = 250  # 5 s of one participant's audio, 1.25 s of four
STALL_SECONDS = 10.0  # a send that takes this long: the application stopped reading
# The kernel's send buffer (Linux doubles it): about 2 s of 24 kHz audio, so a bot that stops
# reading holds up send() (and its audio is dropped here, oldest first) within seconds.
SEND_BUFFER_BYTES = 64 * 1024
MAX_PLAYBACK_SECONDS = 60.0  # the application's audio buffered ahead of playing
LIVE_FRAMES = 3  # a forward's audio kept ahead of the ticker: more is late, and dropped
SILENT_PEAK = 64  # a frame whose samples all stay below this is silence
DROP_LOG_SECONDS = 5.0


class StreamFailed(Exception):
    """The stream could not start, or stopped by itself. `details` is the ACS
    MediaStreamingStatusDetails value; str() is what the application is told."""

    def __init__(self, details: str, message: str) -> None:
        super().__init__(message)
        self.details = details


class Room(Protocol):
    """What streaming and speech use of apps.automation.bridge.AudioBridgeRoom."""

    async def forward(
        self, host: str, port: int, *, display: str | None = None, codec: str = "pcma"
    ) -> str: ...

    async def stop_forward(self, forward_id: str) -> None: ...

    async def join_rtp(
        self, display: str, host: str, port: int, codec: str = "pcma", *, muted: bool = False
    ) -> tuple[str, int]: ...

    async def leave(self, display: str) -> None: ...


# --- PCM helpers -------------------------------------------------------------------------------
def _samples(pcm: bytes) -> array.array[int]:
    values = array.array("h")
    values.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _pcm(values: array.array[int]) -> bytes:
    if sys.byteorder == "big":
        values = array.array("h", values)
        values.byteswap()
    return values.tobytes()


def is_silent(pcm: bytes) -> bool:
    values = _samples(pcm)
    return not values or max(max(values), -min(values)) < SILENT_PEAK


def mix(frames: list[bytes]) -> bytes:
    """The sum of equal-length PCM16 frames, clipped."""
    if len(frames) == 1:
        return frames[0]
    total = [sum(column) for column in zip(*(_samples(f) for f in frames), strict=True)]
    return _pcm(array.array("h", (max(-32768, min(32767, value)) for value in total)))


def _alaw_code(sample: int) -> int:
    # ITU-T G.711 A-law of a 16-bit sample (as the reference g711.c).
    value = sample >> 3
    mask = 0xD5 if value >= 0 else 0x55
    if value < 0:
        value = -value - 1
    for segment, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        if value <= end:
            shift = 1 if segment < 2 else segment
            return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask
    return 0x7F ^ mask


_ALAW = bytes(_alaw_code(index << 3) for index in range(-4096, 4096))  # by (sample >> 3) + 4096


def alaw_encode(pcm: bytes) -> bytes:
    return bytes(_ALAW[(sample >> 3) + 4096] for sample in _samples(pcm))


def rtp_payload(packet: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet; None if it is not one."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:  # a header extension
        if len(packet) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack("!H", packet[offset + 2 : offset + 4])[0]
    end = len(packet)
    if packet[0] & 0x20 and end > offset:  # padding
        end -= packet[-1]
    if end < offset:
        return None
    return packet[1] & 0x7F, packet[offset:end]


class Resampler:
    """PCM16 mono from one rate to another (libswresample through PyAV), in any chunk sizes."""

    def __init__(self, source_rate: int, rate: int) -> None:
        self.source_rate = source_rate
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, pcm: bytes) -> bytes:
        count = len(pcm) // 2
        if count == 0:
            return b""
        if self.source_rate == self.rate:
            return pcm[: count * 2]
        frame = AudioFrame(format="s16", layout="mono", samples=count)
        plane = frame.planes[0]
        plane.update(pcm[: count * 2].ljust(plane.buffer_size, b"\0"))
        frame.sample_rate = self.source_rate
        return b"".join(_frame_pcm(out) for out in self._resampler.resample(frame))


def _frame_pcm(frame: AudioFrame) -> bytes:
    return bytes(frame.planes[0])[: frame.samples * 2]


# --- Receiving a participant's audio -------------------------------------------------------------
class ForwardSink(asyncio.DatagramProtocol):
    """A UDP socket that receives one Opus rtp_forward of the room and keeps its audio as PCM16
    mono at `rate`, at most `max_seconds` of it (older audio is dropped)."""

    def __init__(self, rate: int, max_seconds: float) -> None:
        self.rate = rate
        self.buffer = bytearray()
        self.max_bytes = int(max_seconds * rate) * 2
        self.packets = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._decoder = av.CodecContext.create("opus", "r")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        found = rtp_payload(data)
        if found is None or found[0] != OPUS_PT or not found[1]:
            return
        try:
            for frame in self._decoder.decode(av.Packet(found[1])):
                for out in self._resampler.resample(cast(AudioFrame, frame)):
                    self.buffer += _frame_pcm(out)
        except (av.FFmpegError, ValueError) as error:
            logger.debug("an undecodable forward packet: %s", error)
            return
        self.packets += 1
        if len(self.buffer) > self.max_bytes:
            del self.buffer[: len(self.buffer) - self.max_bytes]

    def take(self, size: int) -> bytes | None:
        """The oldest `size` bytes, or None if fewer have come."""
        if len(self.buffer) < size:
            return None
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        return chunk

    def take_all(self) -> bytes:
        chunk = bytes(self.buffer)
        self.buffer.clear()
        return chunk

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Forward:
    display: str
    id: str
    sink: ForwardSink


async def open_forward(
    room: Room, display: str, *, rate: int = 16000, max_seconds: float = 2.0
) -> Forward:
    """Forward one participant's audio (apart from everyone else's) to a new ForwardSink.
    Raises JanusError (also when four legs are forwarded apart already)."""
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(
        lambda: ForwardSink(rate, max_seconds), local_addr=(RTP_HOST, 0)
    )
    port = int(transport.get_extra_info("sockname")[1])
    try:
        forward_id = await room.forward(RTP_HOST, port, display=display, codec="opus")
    except BaseException:
        transport.close()
        raise
    return Forward(display, forward_id, sink)


async def close_forward(room: Room, forward: Forward) -> None:
    forward.sink.close()
    with contextlib.suppress(JanusError):  # the room may be gone with the call
        await room.stop_forward(forward.id)


# --- Playing the application's audio ------------------------------------------------------------
class RtpPlayer(asyncio.DatagramProtocol):
    """A plain-RTP leg of the room that plays PCM16 (at `rate`) into the call: resampled to
    8 kHz, A-law, 20 ms packets paced in real time (AudioBridge takes no other). It sends only
    while it has audio; what the room sends back to it is dropped."""

    START_FRAMES = 3  # buffered before a talk spurt starts: rides out a bot's uneven pace
    HANGOVER_FRAMES = 10  # silence sent after the audio runs out, before falling quiet

    def __init__(self, rate: int, max_seconds: float = MAX_PLAYBACK_SECONDS) -> None:
        self.rate = rate
        self.buffer = bytearray()  # PCM16 at 8 kHz
        self.max_bytes = int(max_seconds * 8000) * 2
        self.sent = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._resampler = Resampler(rate, 8000)
        self._janus: tuple[str, int] | None = None
        self._display = ""
        self._room: Room | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_add = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        pass  # the room's mix, sent to every leg: the application has it from the stream

    @property
    def full(self) -> bool:
        return len(self.buffer) >= self.max_bytes

    def add(self, pcm: bytes) -> None:
        """Queue PCM16 at the player's rate; past MAX_PLAYBACK_SECONDS it is dropped."""
        room = self.max_bytes - len(self.buffer)
        converted = self._resampler.convert(pcm)
        if len(converted) > room:
            logger.info("dropped %d bytes of a bot's audio: its buffer is full", len(converted))
            converted = converted[: max(0, room) // 2 * 2]
        self.buffer += converted
        self._last_add = time.monotonic()

    def clear(self) -> None:
        self.buffer.clear()

    async def open(self, room: Room, display: str) -> None:
        """Join the room as `display`. Raises JanusError."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(RTP_HOST, 0))
        assert self.transport is not None
        port = int(self.transport.get_extra_info("sockname")[1])
        try:
            self._janus = await room.join_rtp(display, RTP_HOST, port, "pcma")
        except BaseException:
            self.transport.close()
            raise
        self._room, self._display = room, display
        self._task = asyncio.create_task(self._pace())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.transport is not None:
            self.transport.close()
        if self._room is not None:
            with contextlib.suppress(JanusError):
                await self._room.leave(self._display)
            self._room = None

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        ssrc, sequence = random.getrandbits(32), random.getrandbits(16)
        started = due = loop.time()
        talking, spurt, quiet, frame = False, False, 0, 320  # 20 ms at 8 kHz
        while True:
            due += FRAME_SECONDS
            delay = due - loop.time()
            if delay < -0.2:  # the loop was held up: start again from now
                due = loop.time()
            else:
                await asyncio.sleep(max(0.0, delay))
            if not talking:
                waited = time.monotonic() - self._last_add > 0.04
                if len(self.buffer) >= self.START_FRAMES * frame or (self.buffer and waited):
                    talking, spurt, quiet = True, True, 0
                else:
                    continue
            if self.buffer:
                chunk = bytes(self.buffer[:frame]).ljust(frame, b"\0")
                del self.buffer[:frame]
                quiet = 0
            else:
                quiet += 1
                if quiet > self.HANGOVER_FRAMES:
                    talking = False
                    continue
                chunk = bytes(frame)
            # The timestamp follows the clock, also across quiet spells (RFC 3550).
            stamp = int((loop.time() - started) * 8000) & 0xFFFFFFFF
            marker = 0x80 if spurt else 0  # the first packet of a talk spurt
            spurt = False
            header = struct.pack("!BBHII", 0x80, marker | PCMA_PT, sequence, stamp, ssrc)
            sequence = (sequence + 1) & 0xFFFF
            if self.transport is not None and self._janus is not None:
                self.transport.sendto(header + alaw_encode(chunk), self._janus)
                self.sent += 1


# --- The stream ------------------------------------------------------------------------------
@dataclass
class StreamOptions:
    url: str
    subscription_id: str
    unmixed: bool = False
    rate: int = 16000
    bidirectional: bool = False
    headers: dict[str, str] = field(default_factory=dict)


OnFailed = Callable[[StreamFailed], Coroutine[Any, Any, None]]


class MediaStream:
    """One connection's media streaming: start() opens the WebSocket (and the player), follow()
    keeps one forward per participant, stop() ends it all. A failure after start() (the
    application went away or stopped reading) is reported once through `on_failed`, after
    which the caller stops the stream."""

    def __init__(self, room: Room, options: StreamOptions, on_failed: OnFailed) -> None:
        self.room = room
        self.options = options
        self.on_failed = on_failed
        self.forwards: dict[str, Forward] = {}  # by participant raw id
        self.player: RtpPlayer | None = None
        self.sent = 0
        self.dropped = 0
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue(SEND_QUEUE_MESSAGES)
        self._tasks: list[asyncio.Task[None]] = []
        self._failed = False
        self._closed = False
        self._started = False
        self._following = asyncio.Lock()
        self._dropped_logged = 0.0
        self._frame_bytes = int(options.rate * FRAME_SECONDS) * 2

    @property
    def running(self) -> bool:
        """Started, and not stopped."""
        return self._started and not self._closed

    @property
    def player_display(self) -> str:
        return f"spool-stream-{self.options.subscription_id}"

    async def start(self) -> None:
        """Connect and send AudioMetadata. Raises StreamFailed."""
        try:
            self._ws = await outbound.connect_websocket(
                self.options.url,
                deadline=CONNECT_SECONDS,
                max_size=MAX_MESSAGE_BYTES,
                headers=self.options.headers,
                send_buffer=SEND_BUFFER_BYTES,
            )
        except outbound.WebSocketRefused as refused:
            raise StreamFailed(
                "initialWebSocketConnectionFailed", f"Could not connect the WebSocket: {refused}."
            ) from None
        if self._closed:  # stopped while connecting
            await self._release()
            raise StreamFailed("subscriptionStopped", "The stream was stopped.")
        metadata = {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": self.options.subscription_id,
                "encoding": "PCM",
                "sampleRate": self.options.rate,
                "channels": 1,
                "length": self._frame_bytes,
            },
        }
        try:
            async with asyncio.timeout(STALL_SECONDS):  # (not wait_for: apps/calls/sfu.py)
                await self._ws.send(json.dumps(metadata))
            if self.options.bidirectional:
                self.player = RtpPlayer(self.options.rate)
                await self.player.open(self.room, self.player_display)
        except (ConnectionClosed, TimeoutError, OSError, JanusError) as error:
            await self._release()
            raise StreamFailed(
                "streamConnectionUnsuccessful", f"The stream could not start: {error}"
            ) from None
        self._tasks = [
            asyncio.create_task(self._tick()),
            asyncio.create_task(self._send()),
            asyncio.create_task(self._read()),
        ]
        self._started = True

    async def follow(self, raw_ids: Iterable[str], *, rejoined: str = "") -> None:
        """Forward exactly these participants (`rejoined`: one whose leg was replaced, whose
        old forward carries nothing any more)."""
        async with self._following:
            wanted = set(raw_ids)
            for raw_id in [r for r in self.forwards if r not in wanted or r == rejoined]:
                await close_forward(self.room, self.forwards.pop(raw_id))
            for raw_id in sorted(wanted - set(self.forwards)):
                if self._closed:
                    return
                try:
                    forward = await open_forward(
                        self.room,
                        raw_id,
                        rate=self.options.rate,
                        max_seconds=LIVE_FRAMES * FRAME_SECONDS * 4,
                    )
                except JanusError as error:
                    logger.warning("cannot stream %s's audio: %s", raw_id, error)
                    continue
                if self._closed:
                    await close_forward(self.room, forward)
                    return
                self.forwards[raw_id] = forward

    async def stop(self) -> None:
        """End the stream: forwards, player and WebSocket. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._release()

    async def _release(self) -> None:
        for forward in list(self.forwards.values()):
            await close_forward(self.room, forward)
        self.forwards.clear()
        if self.player is not None:
            await self.player.close()
        if self._ws is not None:
            # The closing handshake waits for the application: never hold the caller on it.
            ws, self._ws = self._ws, None
            asyncio.get_running_loop().create_task(_close_socket(ws))

    def _fail(self, details: str, message: str) -> None:
        if self._failed or self._closed:
            return
        self._failed = True
        logger.info("media stream %s failed: %s", self.options.subscription_id, message)
        asyncio.get_running_loop().create_task(self.on_failed(StreamFailed(details, message)))

    # --- to the application --------------------------------------------------------------------
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        silence = bytes(self._frame_bytes)
        while True:
            due += FRAME_SECONDS
            delay = due - loop.time()
            if delay < -0.2:
                due = loop.time()
            else:
                await asyncio.sleep(max(0.0, delay))
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            frames: dict[str, bytes | None] = {}
            for raw_id, forward in self.forwards.items():
                live = LIVE_FRAMES * self._frame_bytes
                if len(forward.sink.buffer) > live:  # late audio is of no use to a bot
                    del forward.sink.buffer[: len(forward.sink.buffer) - live]
                frames[raw_id] = forward.sink.take(self._frame_bytes)
            if self.options.unmixed:
                for raw_id, pcm in frames.items():
                    self._push(_audio_data(pcm or silence, stamp, raw_id))
            else:
                heard = [pcm for pcm in frames.values() if pcm is not None]
                self._push(_audio_data(mix(heard) if heard else silence, stamp, None))

    def _push(self, message: str) -> None:
        if self._queue.full():  # the application reads slower than real time: drop the oldest
            self._queue.get_nowait()
            self.dropped += 1
            now = time.monotonic()
            if now - self._dropped_logged > DROP_LOG_SECONDS:
                self._dropped_logged = now
                logger.info(
                    "media stream %s: the application is slow, %d messages dropped so far",
                    self.options.subscription_id,
                    self.dropped,
                )
        self._queue.put_nowait(message)

    async def _send(self) -> None:
        assert self._ws is not None
        ws = self._ws
        while not self._closed:
            message = await self._queue.get()
            try:
                # Not wait_for: on Python 3.11 it can swallow a cancel that races the send's
                # end, and this loop would then wait on an empty queue while stop() waits on it.
                async with asyncio.timeout(STALL_SECONDS):
                    await ws.send(message)
            except TimeoutError:
                self._fail(
                    "streamConnectionInterrupted",
                    f"The WebSocket server read nothing for {STALL_SECONDS:.0f} seconds.",
                )
                return
            except ConnectionClosed as closed:
                self._fail("streamConnectionInterrupted", _closed_message(closed))
                return
            self.sent += 1

    # --- from the application -------------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        ws = self._ws
        try:
            async for message in ws:
                if self.player is None or not isinstance(message, str):
                    continue  # not bidirectional: read only to keep the connection alive
                self._from_application(message)
                while self.player.full:  # push back on a bot that sends faster than it plays
                    await asyncio.sleep(FRAME_SECONDS * 5)
        except ConnectionClosed as closed:
            self._fail("streamConnectionInterrupted", _closed_message(closed))
            return
        self._fail("streamConnectionInterrupted", "The WebSocket server closed the connection.")

    def _from_application(self, text: str) -> None:
        assert self.player is not None
        try:
            message = json.loads(text)
        except ValueError:
            logger.debug("media stream %s: a message that is not JSON", self.options.url)
            return
        if not isinstance(message, dict):
            return
        # ACS's own shape (camelCase) and the outbound SDK models' (PascalCase).
        kind = message.get("kind", message.get("Kind"))
        if kind == "StopAudio":
            self.player.clear()
            return
        if kind != "AudioData":
            return
        body = message.get("audioData", message.get("AudioData"))
        data = body.get("data", body.get("Data")) if isinstance(body, dict) else None
        if not isinstance(data, str):
            return
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            logger.debug("media stream %s: audio that is not base64", self.options.url)
            return
        self.player.add(pcm)


def _audio_data(pcm: bytes, stamp: str, raw_id: str | None) -> str:
    body: dict[str, Any] = {
        "data": base64.b64encode(pcm).decode("ascii"),
        "timestamp": stamp,
        "silent": is_silent(pcm),
    }
    if raw_id is not None:
        body["participantRawID"] = raw_id
    return json.dumps({"kind": "AudioData", "audioData": body})


def _closed_message(closed: ConnectionClosed) -> str:
    frame = closed.rcvd or closed.sent  # sent: Spool closed it (1009: a message too big)
    if frame is None:
        return "The WebSocket connection was lost (code 1006)."
    reason = f": {frame.reason[:100]}" if frame.reason else ""
    return f"The WebSocket connection closed (code {frame.code}{reason})."


async def _close_socket(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await ws.close()
