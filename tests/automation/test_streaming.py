"""Media streaming (apps/automation/streaming.py, apps/core/outbound.connect_websocket and the
API): the WebSocket to a tenant's URL attacked (internal addresses, rebinding names, other
schemes, redirects, huge messages, silence), the stream's audio path (Opus forwards in, AudioData
out every 20 ms, the bot's PCM back into the call as A-law RTP) with a fake room that sends and
receives real RTP, a slow or vanished bot, the API and callbacks through the media process, and
the whole path against a real Janus AudioBridge."""

from __future__ import annotations

import asyncio
import base64
import fractions
import ipaddress
import json
import math
import random
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import av
import pytest
from av import AudioFrame
from channels.db import database_sync_to_async
from websockets.asyncio.server import Server, ServerConnection, serve

from apps.automation import media, services, streaming
from apps.automation.bridge import AudioBridgeRoom
from apps.automation.models import MediaStreaming
from apps.core import outbound
from tests.automation.conftest import api, callbacks_of, types_of, wait_for_callback
from tests.automation.test_call_connections import C, ring_application
from tests.automation.test_media_process import FakeRoom, fake_media  # noqa: F401
from tests.automation.tones import alaw_decode, pcm_samples, tone_energy
from tests.conftest import AcsClient
from tests.events.conftest import Receiver

# --- A bot: the application's WebSocket server -------------------------------------------------


class Bot:
    """A WebSocket server on 127.0.0.1 playing the application. `mode`: "read" keeps what
    comes, "echo" also answers each AudioData with a 1 kHz tone, "deaf" never reads, "close"
    closes after the first message, "flood" sends one message over the stream's cap."""

    def __init__(self, mode: str = "read", host: str = "127.0.0.1") -> None:
        self.mode = mode
        self.host = host
        self.messages: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: Server | None = None
        self.url = ""
        self._phase = 0

    async def start(self) -> None:
        self.server = await serve(self._handle, self.host, 0, max_size=None, close_timeout=1)
        port = next(iter(self.server.sockets)).getsockname()[1]
        self.url = f"ws://{self.host}:{port}/stream"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        assert ws.request is not None
        self.headers = dict(ws.request.headers.raw_items())
        try:
            if self.mode == "close":  # once the stream has begun
                self.messages.append(json.loads(await ws.recv()))
                await ws.close()
                return
            if self.mode == "flood":
                self.messages.append(json.loads(await ws.recv()))
                await ws.send(json.dumps({"kind": "AudioData", "audioData": {"data": "A" * 2**21}}))
            if self.mode == "deaf":  # reads nothing: its buffers fill, then TCP's
                await ws.wait_closed()
                return
            async for text in ws:
                message = json.loads(text)
                self.messages.append(message)
                if self.mode == "echo" and message["kind"] == "AudioData":
                    await ws.send(self.tone_message(message))
        finally:
            self.closed.set()

    def tone_message(self, received: dict[str, Any]) -> str:
        # 20 ms of 1 kHz at the stream's rate, in ACS's outbound (PascalCase) shape.
        rate = self.messages[0]["audioMetadata"]["sampleRate"]
        count = rate // 50
        samples = [
            int(8000 * math.sin(2 * math.pi * 1000 * (self._phase + i) / rate))
            for i in range(count)
        ]
        self._phase += count
        data = struct.pack(f"<{count}h", *samples)
        return json.dumps(
            {"Kind": "AudioData", "AudioData": {"Data": base64.b64encode(data).decode()}}
        )

    def audio(self, raw_id: str | None = None) -> list[int]:
        samples: list[int] = []
        for message in self.messages:
            if message["kind"] == "AudioData":
                body = message["audioData"]
                if raw_id is None or body.get("participantRawID") == raw_id:
                    samples.extend(pcm_samples(base64.b64decode(body["data"])))
        return samples


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    b = Bot()
    await b.start()
    yield b
    await b.stop()


async def until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- A room that sends and receives real RTP --------------------------------------------------


def opus_packets(samples: list[int], rate: int) -> list[bytes]:
    """Mono PCM16 at `rate` as 20 ms Opus RTP packets (payload type 111), as Janus forwards."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000  # type: ignore[attr-defined]
    encoder.layout = "mono"  # type: ignore[attr-defined]
    encoder.format = "s16"  # type: ignore[attr-defined]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    frame = AudioFrame(format="s16", layout="mono", samples=len(samples))
    frame.planes[0].update(struct.pack(f"<{len(samples)}h", *samples))
    frame.sample_rate = rate
    pcm = b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame))
    packets, ssrc = [], random.getrandbits(32)
    for index in range(len(pcm) // 1920):
        chunk = AudioFrame(format="s16", layout="mono", samples=960)
        chunk.planes[0].update(pcm[index * 1920 : (index + 1) * 1920])
        chunk.sample_rate, chunk.pts = 48000, index * 960
        chunk.time_base = fractions.Fraction(1, 48000)
        for packet in encoder.encode(chunk):  # type: ignore[attr-defined]
            header = struct.pack("!BBHII", 0x80, 111, index & 0xFFFF, index * 960, ssrc)
            packets.append(header + bytes(packet))
    return packets


def sine(frequency: float, seconds: float, rate: int = 16000) -> list[int]:
    return [
        int(8000 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(int(seconds * rate))
    ]


class RtpRoom(FakeRoom):
    """The fake room of the media process's tests, plus forwards and plain-RTP legs over real
    UDP: `speak()` sends a participant's audio to its forward as Opus RTP, as Janus does, and
    what a plain-RTP leg sends (A-law) is kept in `heard`."""

    def __init__(
        self, url: str = "", room: str = "", on_event: Any = None, *, browsers: bool = False
    ) -> None:
        super().__init__(url, room, on_event)
        self.forwarded: dict[str, tuple[str | None, tuple[str, int]]] = {}
        self.heard: dict[str, list[int]] = {}
        self.left: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._receivers: list[asyncio.DatagramTransport] = []

    async def forward(
        self, host: str, port: int, *, display: str | None = None, codec: str = "pcma"
    ) -> str:
        assert codec == "opus"
        forward_id = str(len(self.forwarded) + 1)
        self.forwarded[forward_id] = (display, (host, port))
        return forward_id

    async def stop_forward(self, forward_id: str) -> None:
        self.forwarded.pop(forward_id, None)

    async def join_rtp(
        self, display: str, host: str, port: int, codec: str = "pcma", *, muted: bool = False
    ) -> tuple[str, int]:
        heard = self.heard.setdefault(display, [])

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                assert data[1] & 0x7F == 8 and len(data) == 12 + 160  # 20 ms A-law
                heard.extend(alaw_decode(data[12:]))

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Receiver, local_addr=("127.0.0.1", 0)
        )
        self._receivers.append(cast(asyncio.DatagramTransport, transport))
        return "127.0.0.1", int(transport.get_extra_info("sockname")[1])

    async def leave(self, display: str) -> None:
        self.left.append(display)

    async def speak(self, display: str, samples: list[int], rate: int = 16000) -> None:
        """Send `samples` as if Janus forwarded `display`'s audio, paced in real time."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, packet in enumerate(opus_packets(samples, rate)):
            for forwarded, address in list(self.forwarded.values()):
                if forwarded == display:
                    self._socket.sendto(packet, address)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.02 - loop.time()))

    async def close(self) -> None:
        for transport in self._receivers:
            transport.close()
        self._socket.close()


def options(url: str, **kwargs: Any) -> streaming.StreamOptions:
    return streaming.StreamOptions(url=url, subscription_id=str(uuid.uuid4()), **kwargs)


class Failures:
    def __init__(self) -> None:
        self.items: list[streaming.StreamFailed] = []

    async def __call__(self, failure: streaming.StreamFailed) -> None:
        self.items.append(failure)


# --- The WebSocket to a tenant's URL, attacked --------------------------------------------------


@pytest.fixture
def no_allowances(settings: Any) -> None:
    """As in production: no network is allowed beyond the public internet."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.fixture
def resolve_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DNS name an attacker controls, answering with a loopback address."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.2" if host == "bot.attacker.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_internal_addresses_are_refused_before_anything_is_sent(
    bot: Bot, no_allowances: None, resolve_to_loopback: None
) -> None:
    port = bot.url.split(":")[2].split("/")[0]
    for url in [
        bot.url,
        f"ws://localhost:{port}/",
        f"ws://bot.attacker.example:{port}/",  # a name that resolves to loopback
        f"wss://[::ffff:127.0.0.1]:{port}/",
        "ws://10.0.0.1/",
        "ws://169.254.169.254/latest/meta-data/",
        "wss://192.168.1.1/",
        "ws://[fd00::1]/",
    ]:
        with pytest.raises(outbound.WebSocketRefused) as refused:
            await outbound.connect_websocket(url, deadline=2)
        assert str(refused.value) == outbound.NOT_ALLOWED, url
    assert bot.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com/",
        "ftp://example.com/",
        "ws://user:pass@example.com/",
        "ws:///nohost",
        "ws://10.1.2.3/",
        "ws://169.254.169.254/",
        "",
        None,
    ],
)
def test_transport_urls_that_are_not_public_ws_are_refused_when_given(
    url: Any, no_allowances: None
) -> None:
    with pytest.raises(outbound.UnsafeUrl) as refused:
        outbound.check_url(url, target="transportUrl", schemes=outbound.WEBSOCKET_SCHEMES)
    assert refused.value.target == "transportUrl" and refused.value.status == 400


async def test_a_redirect_is_not_followed_and_a_silent_server_is_given_up() -> None:
    # given a server that answers the upgrade with a redirect inward, and one that says nothing
    hits: list[bytes] = []

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /secret\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    redirecting = await asyncio.start_server(redirect, "127.0.0.1", 0)
    quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = redirecting.sockets[0].getsockname()[1]
        with pytest.raises(outbound.WebSocketRefused) as refused:
            await outbound.connect_websocket(f"ws://127.0.0.1:{port}/", deadline=3)
        assert "302" in str(refused.value)
        assert len(hits) == 1  # /secret was never asked for

        # when a server never answers, the deadline ends the attempt
        port = quiet.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(outbound.WebSocketRefused) as refused:
            await outbound.connect_websocket(f"ws://127.0.0.1:{port}/", deadline=1)
        assert str(refused.value) == outbound.NO_WEBSOCKET
        assert loop.time() - started < 2
    finally:
        redirecting.close()
        quiet.close()


async def test_a_closed_port_is_said_as_a_silent_one() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(outbound.WebSocketRefused) as refused:
        await outbound.connect_websocket(f"ws://127.0.0.1:{port}/", deadline=2)
    assert str(refused.value) == outbound.NO_WEBSOCKET


async def test_the_connection_keeps_the_host_name_and_carries_the_headers(bot: Bot) -> None:
    ws = await outbound.connect_websocket(
        bot.url.replace("127.0.0.1", "localhost"), deadline=3, headers={"x-ms-call-id": "c1"}
    )
    await ws.close()
    await until(lambda: bot.connections == 1, 2, "the bot")
    headers = {key.lower(): value for key, value in bot.headers.items()}
    assert headers["host"].startswith("localhost:")
    assert headers["x-ms-call-id"] == "c1"
    assert headers["user-agent"] == outbound.USER_AGENT


# --- The stream's audio path, with a fake room over real UDP ------------------------------------


@pytest.mark.timeout(20)
async def test_unmixed_audio_reaches_the_bot_and_its_audio_plays_into_the_call(bot: Bot) -> None:
    # given a stream, unmixed and bidirectional, of a call with two participants
    bot.mode = "echo"
    room = RtpRoom()
    failures = Failures()
    stream = streaming.MediaStream(
        room, options(bot.url, unmixed=True, bidirectional=True, headers={"x-a": "1"}), failures
    )
    await stream.start()
    try:
        await stream.follow(["8:acs:alice", "8:acs:bob"])
        assert sorted(d for d, _ in room.forwarded.values()) == ["8:acs:alice", "8:acs:bob"]

        # when alice says 440 Hz and bob 660 Hz
        await asyncio.gather(
            room.speak("8:acs:alice", sine(440, 2)), room.speak("8:acs:bob", sine(660, 2))
        )
        await asyncio.sleep(0.2)

        # then the bot got the metadata first, then 20 ms PCM frames of each, apart
        first = bot.messages[0]
        assert first == {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": stream.options.subscription_id,
                "encoding": "PCM",
                "sampleRate": 16000,
                "channels": 1,
                "length": 640,
            },
        }
        data = [m["audioData"] for m in bot.messages[1:]]
        assert {len(base64.b64decode(d["data"])) for d in data} == {640}
        assert {d["participantRawID"] for d in data} == {"8:acs:alice", "8:acs:bob"}
        assert all(d["timestamp"].endswith("Z") for d in data)
        alice, bob = bot.audio("8:acs:alice"), bot.audio("8:acs:bob")
        assert tone_energy(alice, 16000, 440) > 2000 > 20 * tone_energy(alice, 16000, 660)
        assert tone_energy(bob, 16000, 660) > 2000 > 20 * tone_energy(bob, 16000, 440)
        assert any(d["silent"] for d in data) and not all(d["silent"] for d in data)
        assert bot.headers["x-a"] == "1"

        # and the bot's 1 kHz answer was played into the call, as 20 ms A-law packets
        heard = room.heard[stream.player_display]
        assert len(heard) > 8000
        assert tone_energy(heard, 8000, 1000) > 2000 > 20 * tone_energy(heard, 8000, 440)
        assert failures.items == []
    finally:
        await stream.stop()
        await room.close()
    # and stopping undoes it all
    assert room.forwarded == {} and room.left == [stream.player_display]
    await until(lambda: bot.closed.is_set(), 3, "the bot's socket to close")


@pytest.mark.timeout(20)
async def test_mixed_audio_is_the_sum_of_the_participants(bot: Bot) -> None:
    room = RtpRoom()
    stream = streaming.MediaStream(room, options(bot.url, rate=24000), Failures())
    await stream.start()
    try:
        await stream.follow(["8:acs:alice", "8:acs:bob"])
        await asyncio.gather(
            room.speak("8:acs:alice", sine(440, 1.5)), room.speak("8:acs:bob", sine(660, 1.5))
        )
        await asyncio.sleep(0.2)
    finally:
        await stream.stop()
        await room.close()
    assert bot.messages[0]["audioMetadata"]["sampleRate"] == 24000
    assert bot.messages[0]["audioMetadata"]["length"] == 960
    data = [m["audioData"] for m in bot.messages[1:]]
    assert all("participantRawID" not in d for d in data)
    assert {len(base64.b64decode(d["data"])) for d in data} == {960}
    mixed = bot.audio()
    assert tone_energy(mixed, 24000, 440) > 2000 and tone_energy(mixed, 24000, 660) > 2000


async def test_the_ticker_sends_every_20_ms(bot: Bot) -> None:
    room = RtpRoom()
    stream = streaming.MediaStream(room, options(bot.url), Failures())
    await stream.start()
    await asyncio.sleep(1.0)
    await stream.stop()
    await room.close()
    count = len(bot.messages) - 1  # silence, mixed, from nobody yet
    assert 40 <= count <= 55, count
    assert all(m["audioData"]["silent"] for m in bot.messages[1:])


async def test_a_bot_that_stops_reading_loses_old_audio_then_fails_the_stream(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a bot that never reads (the TCP buffers fill), and a short stall limit
    monkeypatch.setattr(streaming, "STALL_SECONDS", 1.5)
    monkeypatch.setattr(streaming, "SEND_QUEUE_MESSAGES", 20)
    bot.mode = "deaf"
    room = RtpRoom()
    failures = Failures()
    stream = streaming.MediaStream(room, options(bot.url, rate=24000), failures)
    await stream.start()
    try:
        # then the media process is never held, audio is dropped, and the stream fails
        loop = asyncio.get_running_loop()
        started = loop.time()
        await until(lambda: failures.items, 30, "the stream to fail")
        assert stream.dropped > 0
        assert failures.items[0].details == "streamConnectionInterrupted"
        assert "read nothing" in str(failures.items[0])
        assert loop.time() - started < 30
        assert stream._queue.qsize() <= streaming.SEND_QUEUE_MESSAGES
    finally:
        await stream.stop()
        await room.close()


@pytest.mark.parametrize("mode", ["close", "flood"])
async def test_a_bot_that_goes_away_or_sends_too_much_fails_the_stream(bot: Bot, mode: str) -> None:
    bot.mode = mode
    room = RtpRoom()
    failures = Failures()
    stream = streaming.MediaStream(room, options(bot.url, bidirectional=True), failures)
    await stream.start()
    try:
        await until(lambda: failures.items, 5, "the stream to fail")
    finally:
        await stream.stop()
        await room.close()
    assert failures.items[0].details == "streamConnectionInterrupted"
    if mode == "flood":
        assert "1009" in str(failures.items[0])  # message too big
    assert room.heard.get(stream.player_display, []) == []


async def test_a_bot_that_is_not_there_fails_the_start() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    stream = streaming.MediaStream(RtpRoom(), options(f"ws://127.0.0.1:{port}/"), Failures())
    with pytest.raises(streaming.StreamFailed) as failed:
        await stream.start()
    assert failed.value.details == "initialWebSocketConnectionFailed"


async def test_stop_audio_drops_what_the_bot_queued() -> None:
    player = streaming.RtpPlayer(16000)
    player.add(struct.pack("<16000h", *sine(1000, 1)))
    assert 15900 <= len(player.buffer) <= 16000  # 1 s at 8 kHz (the resampler keeps a few)
    player.clear()
    assert len(player.buffer) == 0
    # and audio beyond the buffer's cap is dropped, not kept
    small = streaming.RtpPlayer(16000, max_seconds=0.5)
    small.add(struct.pack("<16000h", *sine(1000, 1)))
    assert len(small.buffer) == 8000 and small.full


def test_alaw_encoding_matches_g711() -> None:
    from tests.automation.tones import alaw_encode

    samples = [-32768, -1000, -8, -1, 0, 1, 7, 8, 100, 1000, 4095, 32767, *range(-500, 500, 7)]
    assert streaming.alaw_encode(struct.pack(f"<{len(samples)}h", *samples)) == alaw_encode(samples)


# --- The API and the media process --------------------------------------------------------------

STREAMING = {"transportType": "websocket", "audioChannelType": "unmixed"}


async def answer_streaming(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    streaming_options: dict[str, Any],
) -> tuple[Any, Any, str, str]:
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    answer = await api(
        acs,
        "POST",
        f"{C}:answer",
        {
            "incomingCallContext": incoming["incomingCallContext"],
            "callbackUri": receiver.url,
            "mediaStreamingOptions": streaming_options,
        },
    )
    return caller, answer, incoming["serverCallId"], incoming["incomingCallContext"]


async def bridge_leg(process: media.MediaProcess, call_id: str, caller: Any) -> None:
    await process.handle(
        {
            "type": "signal",
            "call": call_id,
            "rawId": caller.raw_id,
            "identity": caller.raw_id.rsplit("_", 1)[-1],
            "channel": "test",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )


@pytest.fixture
def rtp_media(fake_media: media.MediaProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    monkeypatch.setattr(media, "AudioBridgeRoom", RtpRoom)
    yield fake_media


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_streaming_from_the_answer_through_stop_with_callbacks_in_order(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    rtp_media: media.MediaProcess,
    bot: Bot,
) -> None:
    # given an answer asking for unmixed streaming from the start
    caller, answer, call_id, _ = await answer_streaming(
        connect,
        resource,
        acs,
        receiver,
        {**STREAMING, "transportUrl": bot.url, "startMediaStreaming": True},
    )
    assert answer.status_code == 200, answer.content
    connection_id = answer.json()["callConnectionId"]
    subscription = answer.json()["mediaStreamingSubscription"]
    assert subscription["state"] == "inactive" and subscription["subscribedContentTypes"] == [
        "audio"
    ]

    # when the caller's media reaches the bridge
    await bridge_leg(rtp_media, call_id, caller)

    # then the stream starts after CallConnected, forwarding the caller's audio
    started = await wait_for_callback(receiver, "MediaStreamingStarted")
    assert started["data"]["mediaStreamingUpdate"] == {
        "contentType": "Audio",
        "mediaStreamingStatus": "mediaStreamingStarted",
        "mediaStreamingStatusDetails": "subscriptionStarted",
    }
    assert started["data"]["resultInformation"]["code"] == 200
    types = types_of(receiver)
    assert types.index("CallConnected") < types.index("MediaStreamingStarted")
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["mediaStreamingSubscription"] == {**subscription, "state": "active"}
    room = rtp_media.calls[call_id].room
    assert isinstance(room, RtpRoom)
    await until(lambda: [d for d, _ in room.forwarded.values()] == [caller.raw_id], 3, "a forward")
    await room.speak(caller.raw_id, sine(440, 0.6))
    await until(lambda: bot.audio(caller.raw_id), 3, "audio at the bot")
    assert bot.headers["x-ms-call-connection-id"] == connection_id
    assert bot.headers["Authorization"].startswith("Bearer ")

    # and starting again is refused; stopping stops it (with its own context)
    again = await api(acs, "POST", f"{C}/{connection_id}:startMediaStreaming", {})
    assert again.status_code == 400
    stop = await api(
        acs, "POST", f"{C}/{connection_id}:stopMediaStreaming", {"operationContext": "bye"}
    )
    assert stop.status_code == 202, stop.content
    await rtp_media.handle({"type": "streaming", "call": call_id})
    stopped = await wait_for_callback(receiver, "MediaStreamingStopped")
    assert stopped["data"]["operationContext"] == "bye"
    assert stopped["data"]["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] == (
        "subscriptionStopped"
    )
    await until(lambda: bot.closed.is_set(), 3, "the bot's socket to close")
    assert room.forwarded == {}
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["mediaStreamingSubscription"]["state"] == "inactive"

    # and it can start again mid-call
    start = await api(
        acs, "POST", f"{C}/{connection_id}:startMediaStreaming", {"operationContext": "again"}
    )
    assert start.status_code == 202
    await rtp_media.handle({"type": "streaming", "call": call_id})
    for _ in range(100):
        if types_of(receiver).count("MediaStreamingStarted") == 2:
            break
        await asyncio.sleep(0.05)
    assert types_of(receiver).count("MediaStreamingStarted") == 2
    assert bot.connections == 2

    # and when the call ends the stream ends with it, without a callback after CallDisconnected
    await api(acs, "POST", f"{C}/{connection_id}:terminate")
    await wait_for_callback(receiver, "CallDisconnected")
    await rtp_media.handle({"type": "end", "call": call_id})
    await until(lambda: bot.closed.is_set(), 3, "the bot's socket to close")
    await asyncio.sleep(0.3)
    assert types_of(receiver)[-1] == "CallDisconnected"
    row = await database_sync_to_async(MediaStreaming.objects.get)()
    assert row.state == "inactive" and not row.wanted


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(30)
async def test_a_stream_to_a_refused_address_or_a_vanishing_bot_fails_with_a_callback(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    rtp_media: media.MediaProcess,
    settings: Any,
    resolve_to_loopback: None,
) -> None:
    # given a bot on an internal address behind a name (only the callback receiver, on
    # 127.0.0.1, is allowed)
    bot = Bot(host="127.0.0.2")
    await bot.start()
    caller, answer, call_id, _ = await answer_streaming(
        connect,
        resource,
        acs,
        receiver,
        {**STREAMING, "transportUrl": bot.url.replace("127.0.0.2", "bot.attacker.example")},
    )
    connection_id = answer.json()["callConnectionId"]
    await bridge_leg(rtp_media, call_id, caller)
    await wait_for_callback(receiver, "CallConnected")
    settings.OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.1/32")]
    assert (
        await api(acs, "POST", f"{C}/{connection_id}:startMediaStreaming", {})
    ).status_code == 202
    await rtp_media.handle({"type": "streaming", "call": call_id})

    # then it fails, and the bot never hears of it
    failed = await wait_for_callback(receiver, "MediaStreamingFailed")
    update = failed["data"]["mediaStreamingUpdate"]
    assert update["mediaStreamingStatusDetails"] == "initialWebSocketConnectionFailed"
    assert failed["data"]["resultInformation"]["subCode"] == 8603
    assert "not allowed" in failed["data"]["resultInformation"]["message"]
    assert bot.connections == 0
    assert "MediaStreamingStarted" not in types_of(receiver)

    # when the bot is allowed, and then goes away mid-stream
    settings.OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    bot.mode = "close"
    assert (
        await api(acs, "POST", f"{C}/{connection_id}:startMediaStreaming", {})
    ).status_code == 202
    await rtp_media.handle({"type": "streaming", "call": call_id})
    await wait_for_callback(receiver, "MediaStreamingStarted")
    for _ in range(100):
        if types_of(receiver).count("MediaStreamingFailed") == 2:
            break
        await asyncio.sleep(0.05)
    last = [e for e in callbacks_of(receiver) if e["type"].endswith("MediaStreamingFailed")][-1]
    assert last["data"]["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] == (
        "streamConnectionInterrupted"
    )
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert got.json()["mediaStreamingSubscription"]["state"] == "inactive"
    assert rtp_media.calls[call_id].streams == {}
    await bot.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "streaming_options, target",
    [
        (
            {**STREAMING, "transportUrl": "https://bot.example/ws"},
            "mediaStreamingOptions.transportUrl",
        ),
        ({**STREAMING, "transportUrl": "ws://10.0.0.5/ws"}, "mediaStreamingOptions.transportUrl"),
        (
            {**STREAMING, "transportUrl": "wss://169.254.169.254/"},
            "mediaStreamingOptions.transportUrl",
        ),
        ({**STREAMING}, "mediaStreamingOptions.transportUrl"),
        (
            {**STREAMING, "transportUrl": "wss://bot.example/", "audioFormat": "pcm8KMono"},
            "mediaStreamingOptions",
        ),
        (
            {**STREAMING, "transportUrl": "wss://bot.example/", "audioChannelType": "stereo"},
            "mediaStreamingOptions",
        ),
        (
            {**STREAMING, "transportUrl": "wss://bot.example/", "transportType": "rtp"},
            "mediaStreamingOptions",
        ),
        (
            {**STREAMING, "transportUrl": "wss://bot.example/", "enableBidirectional": "yes"},
            "mediaStreamingOptions",
        ),
        ("wss://bot.example/", "mediaStreamingOptions"),
    ],
)
async def test_bad_streaming_options_are_refused_and_nothing_is_answered(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    streaming_options: Any,
    target: str,
) -> None:
    _, answer, _, _ = await answer_streaming(connect, resource, acs, receiver, streaming_options)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["target"] == target
    assert await database_sync_to_async(MediaStreaming.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
async def test_start_without_streaming_options_is_refused(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, media_alive: None
) -> None:
    from tests.automation.test_call_connections import answered_call

    _, connection_id, _ = await answered_call(connect, resource, acs, receiver)
    for action in ("startMediaStreaming", "stopMediaStreaming"):
        answer = await api(acs, "POST", f"{C}/{connection_id}:{action}", {})
        assert answer.status_code == 400
        assert "mediaStreamingOptions" in answer.json()["error"]["message"]
    got = await api(acs, "GET", f"{C}/{connection_id}")
    assert "mediaStreamingSubscription" not in got.json()


# --- With a real Janus AudioBridge ---------------------------------------------------------------


@pytest.mark.timeout(40)
async def test_a_stream_of_a_real_room_hears_a_phone_and_plays_the_bot_to_it(bot: Bot) -> None:
    from tests.automation.test_bridge import rtp_socket
    from tests.automation.tones import require_tool
    from tests.janus import require_janus, run_janus

    require_janus()
    require_tool("ffmpeg")
    bot.mode = "echo"
    with run_janus() as janus:

        async def on_event(event: dict[str, Any]) -> None:
            pass

        room = AudioBridgeRoom(janus.url, str(uuid.uuid4()), on_event)
        await room.open()
        phone, phone_port = await rtp_socket()
        stream = streaming.MediaStream(
            room, options(bot.url, unmixed=True, bidirectional=True), Failures()
        )
        try:
            # given a phone leg saying 440 Hz, streamed unmixed and both ways
            janus_rtp = await room.join_rtp("4:+15550001111", "127.0.0.1", phone_port)
            await stream.start()
            await stream.follow(["4:+15550001111"])
            await phone.send_tone(janus_rtp, 440, 3)

            # then the bot heard the phone, and the phone heard the bot's 1 kHz
            heard = bot.audio("4:+15550001111")
            assert len(heard) > 16000
            assert tone_energy(heard, 16000, 440) > 1000 > 20 * tone_energy(heard, 16000, 1000)
            back = phone.received[-8000:]
            assert tone_energy(back, 8000, 1000) > 1000 > 20 * tone_energy(back, 8000, 440)
        finally:
            await stream.stop()
            await room.close()


@pytest.mark.django_db(transaction=True)
async def test_a_stream_left_active_by_a_media_process_that_died_is_set_inactive(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    rtp_media: media.MediaProcess,
    bot: Bot,
) -> None:
    # given a stream a media process that is gone marked active, on a call that then ended
    caller, answer, call_id, _ = await answer_streaming(
        connect, resource, acs, receiver, {**STREAMING, "transportUrl": bot.url}
    )
    connection_id = answer.json()["callConnectionId"]
    await database_sync_to_async(MediaStreaming.objects.update)(state="active", wanted=True)
    await api(acs, "POST", f"{C}/{connection_id}:terminate")
    await wait_for_callback(receiver, "CallDisconnected")

    # when this media process (which does not hold the call) does its rounds
    due = await database_sync_to_async(services.streaming_due)()
    assert due == [call_id]
    await rtp_media._apply_streaming(call_id)

    # then the row is inactive, nothing follows CallDisconnected, and nothing is due any more
    row = await database_sync_to_async(MediaStreaming.objects.get)()
    assert row.state == "inactive" and not row.wanted
    assert types_of(receiver)[-1] == "CallDisconnected"
    assert await database_sync_to_async(services.streaming_due)() == []
    assert bot.connections == 0
