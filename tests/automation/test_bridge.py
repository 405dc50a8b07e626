"""apps.automation.bridge against a real Janus AudioBridge, with aiortc and plain-RTP legs.

Janus (Debian `janus`) runs once for the module with docker/janus/ on a free port
(tests/janus.py); prompts are made by apps.automation.audio (ffmpeg). Janus offers candidates
on this machine's own address only, which aiortc reaches (as in tests/calls/test_sfu_janus.py).
"""

from __future__ import annotations

import array
import asyncio
import math
import os
import random
import signal
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from apps.automation import audio
from apps.automation.bridge import AudioBridgeRoom, room_exists
from apps.calls.agent import ToneTrack, offer_loopback
from apps.calls.sfu import JanusError
from tests.automation.tones import (
    alaw_decode,
    alaw_encode,
    channel_count,
    channel_of,
    pcm_samples,
    read_wav,
    require_tool,
    rms,
    tone_energy,
)
from tests.janus import require_janus, run_janus

PEER_RATE = 48000  # what aiortc's Opus decoder gives


@pytest.fixture(scope="module")
def janus_url() -> Iterator[str]:
    require_janus()
    with run_janus() as janus:
        yield janus.url


@pytest.fixture(autouse=True)
def tools() -> None:
    require_tool("ffmpeg")


class Events:
    """on_event for a room: keeps every event; a leg's media stopping and starting apart (in
    `media`), as its timing is the network's."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.media: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        (self.media if event["kind"] == "mediaReceiving" else self.items).append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.items if event["kind"] == kind]

    async def wait(self, timeout: float = 5, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.items:
                if {key: event.get(key) for key in fields} == fields:
                    return event
            return None

        await until(lambda: found() is not None, timeout, f"an event {fields}")
        event = found()
        assert event is not None
        return event


class Peer:
    """An aiortc WebRTC leg: sends a tone (or nothing) and keeps what it receives, mono."""

    def __init__(self, frequency: float | None = 440.0) -> None:
        offer_loopback()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = array.array("h")
        if frequency:
            self.pc.addTrack(ToneTrack(frequency))
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", lambda track: asyncio.ensure_future(self._keep(track)))

    async def offer(self) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"type": "offer", "sdp": self.pc.localDescription.sdp}

    async def answer(self, jsep: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))

    async def _keep(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the peer closed
                return
            assert isinstance(frame, AudioFrame)
            channels = len(frame.layout.channels)
            data = bytes(frame.planes[0])[: frame.samples * channels * 2]
            self.received.extend(pcm_samples(data)[::channels])


class RtpLeg(asyncio.DatagramProtocol):
    """A plain-RTP G.711 A-law leg or forward sink: sends a tone, keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) > 12 and data[1] & 0x7F == 8:
            offset = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10:  # a header extension
                offset += 4 + 4 * struct.unpack("!H", data[offset + 2 : offset + 4])[0]
            self.received.extend(alaw_decode(data[offset:]))

    async def send_tone(self, to: tuple[str, int], frequency: float, seconds: float) -> None:
        """20 ms packets of 160 samples, paced in real time (AudioBridge takes no other)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        start, ssrc, sequence = loop.time(), random.getrandbits(32), random.getrandbits(16)
        for packet in range(int(seconds * 50)):
            samples = [
                int(8000 * math.sin(2 * math.pi * frequency * (packet * 160 + i) / 8000))
                for i in range(160)
            ]
            header = struct.pack(
                "!BBHII", 0x80, 8, (sequence + packet) & 0xFFFF, packet * 160, ssrc
            )
            self.transport.sendto(header + alaw_encode(samples), to)
            await asyncio.sleep(max(0.0, start + (packet + 1) * 0.02 - loop.time()))


async def rtp_socket() -> tuple[RtpLeg, int]:
    loop = asyncio.get_running_loop()
    transport, leg = await loop.create_datagram_endpoint(RtpLeg, local_addr=("127.0.0.1", 0))
    return leg, int(transport.get_extra_info("sockname")[1])


async def until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def has_tone(samples: Any, rate: int, frequency: float, *, at_least: float = 800) -> bool:
    return tone_energy(samples, rate, frequency) > at_least


async def hears(peer: Peer, frequency: float, timeout: float, *, rate: int = PEER_RATE) -> None:
    """Wait until the last half second `peer` heard holds `frequency`. (A fixed pause and then
    one look missed audio that a loaded machine took longer to connect.) It looks every quarter
    second: the filter runs on the event loop that receives the audio."""

    def heard() -> bool:
        recent = peer.received[-rate // 2 :]
        return len(recent) == rate // 2 and has_tone(recent, rate, frequency)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not heard():
        assert loop.time() < deadline, f"{frequency} Hz never heard"
        await asyncio.sleep(0.25)


async def joined(room: AudioBridgeRoom, display: str, peer: Peer) -> None:
    await peer.answer(await room.join(display, await peer.offer()))
    await until(lambda: len(peer.received) > PEER_RATE // 5, 5, f"{display}'s media")


@pytest.mark.timeout(20)
async def test_a_prompt_plays_to_the_room_and_the_mix_is_recorded(
    janus_url: str, tmp_path: Path
) -> None:
    # given a room with a WebRTC leg sending 440 Hz, recorded
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    peer = Peer(440)
    await room.open(record_dir=tmp_path)
    try:
        await joined(room, "8:acs:alice", peer)
        wav = await room.start_recording(Path("call-0"))
        assert wav == tmp_path / "call-0.wav" and room.recording == wav

        # when a 1 kHz prompt plays
        beep = await asyncio.to_thread(audio.tone_file, 1000, 1.5)
        await room.play(beep, "beep")
        await events.wait(kind="playStarted", fileId="beep")
        heard_from = len(peer.received)
        await events.wait(kind="playStopped", fileId="beep", timeout=6)
        heard = peer.received[heard_from:]
        assert await room.stop_recording() == wav

        # then the events came in order, once each, and the leg heard the prompt (not itself)
        assert [e["kind"] for e in events.items] == ["playStarted", "playStopped"]
        assert len(heard) > PEER_RATE  # about 1.5 s
        assert has_tone(heard, PEER_RATE, 1000)
        assert not has_tone(heard, PEER_RATE, 440, at_least=200)

        # and the recording (closed, complete) holds both the leg and the prompt
        samples, rate = read_wav(wav)
        assert rate == 16000 and len(samples) > 1.5 * rate
        assert has_tone(samples, rate, 440) and has_tone(samples, rate, 1000)
        assert not has_tone(samples, rate, 700, at_least=200)
        assert not wav.with_name("call-0.wav.part").exists()
    finally:
        await room.close()
        await peer.pc.close()


@pytest.mark.timeout(20)
async def test_stop_play_ends_a_prompt_at_once_with_one_play_stopped(janus_url: str) -> None:
    # given a room playing a 20 s prompt
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    await room.open()
    try:
        long = await asyncio.to_thread(audio.tone_file, 600, 20)
        await room.play(long, "long")
        await events.wait(kind="playStarted", fileId="long")

        # when it is stopped
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await room.stop_play("long")
        await events.wait(kind="playStopped", fileId="long", timeout=2)

        # then it stopped promptly, and stopping it again is fine
        assert loop.time() - stopped_at < 0.5
        await room.stop_play("long")

        # and a prompt stopped before the mixer started it (or looping) gets one playStopped too
        await room.play(long, "early")
        await room.stop_play("early")
        await room.play(long, "looped", loop=True)
        await events.wait(kind="playStarted", fileId="looped")
        await room.stop_play("looped")
        await events.wait(kind="playStopped", fileId="looped")
        await asyncio.sleep(0.3)  # nothing more comes
        stops = [e["fileId"] for e in events.of("playStopped")]
        assert sorted(stops) == ["early", "long", "looped"]
    finally:
        await room.close()


@pytest.mark.timeout(20)
async def test_a_leg_that_hangs_up_is_reported_but_one_we_remove_is_not(janus_url: str) -> None:
    # given two WebRTC legs in a room
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    alice, bob = Peer(440), Peer(660)
    await room.open()
    try:
        await joined(room, "8:acs:alice", alice)
        await joined(room, "8:acs:bob", bob)
        assert sorted(room.participants) == ["8:acs:alice", "8:acs:bob"]

        # when we take Alice out, and Bob's peer closes
        await room.leave("8:acs:alice")
        await room.leave("8:acs:alice")  # unknown now: fine
        await bob.pc.close()

        # then only Bob is reported gone
        event = await events.wait(kind="participantLeft", timeout=8)
        assert event["display"] == "8:acs:bob" and event["reason"]
        await asyncio.sleep(0.3)
        assert [e["display"] for e in events.of("participantLeft")] == ["8:acs:bob"]
        assert room.participants == []
    finally:
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(20)
async def test_plain_rtp_leg_forwards_of_the_mix_and_of_one_leg_and_mute(janus_url: str) -> None:
    # given a room with a WebRTC leg sending 660 Hz and a plain-RTP leg sending 440 Hz
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    peer = Peer(660)
    phone, phone_port = await rtp_socket()
    mix, mix_port = await rtp_socket()
    solo, solo_port = await rtp_socket()
    await room.open()
    sending: asyncio.Task[None] | None = None
    try:
        await joined(room, "8:acs:web", peer)
        janus_rtp = await room.join_rtp("4:+15550001111", "127.0.0.1", phone_port)
        sending = asyncio.create_task(phone.send_tone(janus_rtp, 440, 6))

        # when the mix and the phone alone are forwarded
        whole = await room.forward("127.0.0.1", mix_port)
        apart = await room.forward("127.0.0.1", solo_port, display="4:+15550001111")
        assert whole != apart
        await until(lambda: len(solo.received) > 8000 and len(mix.received) > 8000, 5, "RTP")

        # then the mix carries both legs, the phone's forward only the phone, and the phone
        # hears the web leg
        assert has_tone(mix.received, 8000, 440) and has_tone(mix.received, 8000, 660)
        assert has_tone(solo.received, 8000, 440)
        assert not has_tone(solo.received, 8000, 660, at_least=200)
        assert has_tone(phone.received, 8000, 660)
        assert not has_tone(phone.received, 8000, 440, at_least=200)

        # and when the web leg is muted, the mix no longer has it
        await room.mute("8:acs:web", True)
        await asyncio.sleep(0.3)
        muted_from = len(mix.received)
        await until(lambda: len(mix.received) > muted_from + 8000, 5, "more RTP")
        later = mix.received[muted_from:]
        assert has_tone(later, 8000, 440) and not has_tone(later, 8000, 660, at_least=200)

        # and stopping the forwards stops the packets
        await room.stop_forward(apart)
        await room.stop_forward(whole)
        await room.stop_forward(whole)  # unknown now: fine
        await asyncio.sleep(0.2)
        count = len(mix.received)
        await asyncio.sleep(0.3)
        assert len(mix.received) == count
        with pytest.raises(JanusError) as unknown:
            await room.mute("nobody", True)
        assert unknown.value.code == 492
    finally:
        if sending is not None:
            sending.cancel()
        await room.close()
        await peer.pc.close()
        for leg in (phone, mix, solo):
            assert leg.transport is not None
            leg.transport.close()


@pytest.mark.timeout(30)
async def test_each_leg_is_recorded_apart_and_lined_up_on_its_own_channel(
    janus_url: str, tmp_path: Path
) -> None:
    # given a room with a WebRTC leg sending 440 Hz, its own audio recorded
    require_tool("janus-pp-rec")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    peer = Peer(440)
    phone, phone_port = await rtp_socket()
    await room.open(record_dir=tmp_path)
    sending: asyncio.Task[None] | None = None
    try:
        await joined(room, "8:acs:web", peer)
        start = time.time_ns() // 1000
        web = await room.start_leg_recording("8:acs:web", Path("rec-0-0"))
        assert web == tmp_path / "rec-0-0-audio.mjr"
        assert room.leg_recordings == {"8:acs:web": web}
        await asyncio.sleep(1.0)

        # when a plain-RTP leg sending 1 kHz joins a second later and is recorded too
        janus_rtp = await room.join_rtp("4:+15550001111", "127.0.0.1", phone_port)
        sending = asyncio.create_task(phone.send_tone(janus_rtp, 1000, 4))
        rtp = await room.start_leg_recording("4:+15550001111", tmp_path / "rec-0-1")
        await asyncio.sleep(1.2)
        # and the web leg is muted for a while
        muted_at = (time.time_ns() // 1000 - start) / 1e6
        await room.mute("8:acs:web", True)
        await asyncio.sleep(0.8)
        await room.mute("8:acs:web", False)
        unmuted_at = (time.time_ns() // 1000 - start) / 1e6
        await asyncio.sleep(0.8)
        assert await room.stop_leg_recording("8:acs:web") == web
        assert await room.stop_leg_recording("4:+15550001111") == rtp
        end = time.time_ns() // 1000
        assert await room.stop_leg_recording("8:acs:web") is None  # not recorded now
        assert room.leg_recordings == {}

        # and the two files are lined up into one two-channel WAV
        out = tmp_path / "rec.wav"
        tracks = [audio.Track(0, web), audio.Track(1, rtp)]
        await asyncio.to_thread(
            audio.join_unmixed_recording, [audio.Stretch(start, end, tracks)], out, 2
        )
    finally:
        if sending is not None:
            sending.cancel()
        await room.close()
        await peer.pc.close()
        assert phone.transport is not None
        phone.transport.close()

    # then each channel holds its own leg only, in time with the recording's clock
    rate = 16000
    first, second = channel_of(out, 0, rate), channel_of(out, 1, rate)
    seconds = (end - start) / 1e6
    assert channel_count(out) == 2
    assert abs(len(first) / rate - seconds) < 0.05 and len(second) == len(first)

    def part(samples: Any, begin: float, until: float) -> Any:
        return samples[int(begin * rate) : int(until * rate)]

    web_alone = part(first, 0.1, 0.9)
    assert has_tone(web_alone, rate, 440) and not has_tone(web_alone, rate, 1000, at_least=200)
    assert rms(part(second, 0.0, 0.9)) < 100  # the phone was not there yet
    both = (1.4, muted_at - 0.1)
    assert has_tone(part(first, *both), rate, 440)
    assert not has_tone(part(first, *both), rate, 1000, at_least=200)
    assert has_tone(part(second, *both), rate, 1000)
    assert not has_tone(part(second, *both), rate, 440, at_least=200)
    # and the web leg's channel is silent while it was muted, and has it again after
    assert rms(part(first, muted_at + 0.15, unmuted_at - 0.1)) < 100
    assert has_tone(part(first, unmuted_at + 0.2, seconds - 0.1), rate, 440)


@pytest.mark.timeout(20)
async def test_refusals_raise_and_close_destroys_the_room(janus_url: str, tmp_path: Path) -> None:
    # given an open room
    events = Events()
    room_id = str(uuid.uuid4())
    room = AudioBridgeRoom(janus_url, room_id, events)
    await room.open()
    await room.open()  # open already: nothing happens
    try:
        # when Janus is given what it cannot use, then it refuses
        with pytest.raises(JanusError) as bad_sdp:
            await room.join("8:acs:x", {"type": "offer", "sdp": "not sdp"})
        assert bad_sdp.value.code > 0 and bad_sdp.value.reason
        with pytest.raises(JanusError):
            await room.play(tmp_path / "missing.opus", "missing")
        assert room.participants == []

        # and a second driver of the same room (a restarted process) opens it as it is
        other = AudioBridgeRoom(janus_url, room_id, Events())
        await other.open()
        await other.close()
        # which destroyed it: the first driver is told
        await events.wait(kind="connectionLost", reason="room destroyed")
        with pytest.raises(JanusError):
            await room.play(tmp_path / "missing.opus", "again")
        await room.open()  # starts over with a new room
        assert await room_exists(janus_url, room_id)
    finally:
        await room.close()
        await room.close()  # idempotent

    # then the room is gone and the driver refuses requests
    assert not await room_exists(janus_url, room_id)
    with pytest.raises(JanusError):
        await room.stop_play("anything")


@pytest.mark.timeout(30)
async def test_janus_going_away_is_reported_as_connection_lost() -> None:
    # given a room on a Janus of its own
    require_janus()
    with run_janus() as janus:
        events = Events()
        room = AudioBridgeRoom(janus.url, str(uuid.uuid4()), events)
        await room.open()

        # when Janus dies
        os.kill(janus.pid, signal.SIGKILL)

        # then the room says so, and close() does not raise
        await events.wait(kind="connectionLost", timeout=5)
        await room.close()


def test_an_offer_names_g711_by_its_static_payload_type() -> None:
    from apps.automation.bridge import static_payload_type

    offer = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.2\r\n"
        "a=rtpmap:111 PCMA/8000\r\na=sendrecv\r\n"
    )
    assert static_payload_type(offer, "pcma") == offer.replace("111", "8")
    assert static_payload_type(offer.replace("PCMA", "PCMU"), "pcmu").count(" 0") == 1
    assert static_payload_type(offer, "opus") == offer
    already = offer.replace("111", "8")
    assert static_payload_type(already, "pcma") == already
