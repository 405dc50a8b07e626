"""apps.automation.room_bridge against a real Janus: browsers (aiortc peers behind JanusLegs, as
tests/calls/test_sfu_janus.py) publish tones in a VideoRoom, a phone (a plain-RTP leg, as
tests/automation/test_bridge.py) sends its own tone into an AudioBridge room, and the bridge
joins the two rooms.

Tones: browser A 600 Hz, browser B 900 Hz, the phone 440 Hz (G.711, 8 kHz).
"""

from __future__ import annotations

import array
import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from apps.automation import room_bridge
from apps.automation.bridge import NO_SUCH_GROUP, AudioBridgeRoom, _BridgeSession
from apps.automation.bridge import NO_SUCH_ROOM as AB_NO_SUCH_ROOM
from apps.automation.room_bridge import RoomBridge
from apps.calls.agent import ToneTrack, offer_loopback
from apps.calls.sfu import NO_SUCH_FEED, JanusError, JanusLeg, _Session, destroy_room
from apps.calls.sfu import NO_SUCH_ROOM as VR_NO_SUCH_ROOM
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    RtpLeg,
    has_tone,
    janus_url,
    rtp_socket,
    tools,
    until,
)
from tests.automation.tones import pcm_samples

A_TONE, B_TONE, PHONE_TONE = 600, 900, 440
PHONE = "4:+15550001111"


class Browser:
    """A JanusLeg that publishes a tone and keeps what it receives from each feed, mono."""

    def __init__(self, url: str, room: str, name: str, frequency: float) -> None:
        offer_loopback()
        self.name = name
        self.frequency = frequency
        self.leg = JanusLeg(url, room, name, self.on_event)
        self.received: dict[str, array.array[int]] = {}
        self.removed: list[str] = []
        self.peers: dict[str, RTCPeerConnection] = {}

    async def publish(self) -> dict[str, Any]:
        """Send the offer and return Janus's answer, not yet taken (see connect())."""
        peer = self.peers["publish"] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer.addTrack(ToneTrack(self.frequency))
        await peer.setLocalDescription(await peer.createOffer())
        local = peer.localDescription
        return await self.leg.publish({"type": local.type, "sdp": local.sdp})

    async def connect(self, answer: dict[str, Any]) -> None:
        await self.peers["publish"].setRemoteDescription(
            RTCSessionDescription(answer["sdp"], answer["type"])
        )

    async def on_event(self, event: dict[str, Any]) -> None:
        feed = event["feed"]
        if event["kind"] == "feedRemoved":
            self.removed.append(feed)
            if feed in self.peers:
                await self.peers.pop(feed).close()
            return
        peer = self.peers[feed] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        samples = self.received[feed] = array.array("h")
        peer.on("track", lambda track: asyncio.ensure_future(self._keep(track, samples)))
        await peer.setRemoteDescription(RTCSessionDescription(event["jsep"]["sdp"], "offer"))
        await peer.setLocalDescription(await peer.createAnswer())
        local = peer.localDescription
        await self.leg.answer_feed(feed, {"type": local.type, "sdp": local.sdp})

    def heard(self, feed: str) -> array.array[int]:
        return self.received.get(feed, array.array("h"))

    async def _keep(self, track: MediaStreamTrack, samples: array.array[int]) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the peer closed
                return
            assert isinstance(frame, AudioFrame)
            channels = len(frame.layout.channels)
            data = bytes(frame.planes[0])[: frame.samples * channels * 2]
            samples.extend(pcm_samples(data)[::channels])

    async def close(self) -> None:
        await self.leg.close()
        for peer in self.peers.values():
            await peer.close()


class Phone:
    """A plain-RTP phone leg of the AudioBridge room, sending its tone while it is on."""

    def __init__(self, rtp: RtpLeg) -> None:
        self.rtp = rtp
        self.sending: asyncio.Task[None] | None = None

    @property
    def received(self) -> list[int]:
        return self.rtp.received

    def close(self) -> None:
        if self.sending is not None:
            self.sending.cancel()
        assert self.rtp.transport is not None
        self.rtp.transport.close()


@pytest.fixture
async def call(janus_url: str) -> AsyncIterator[tuple[str, AudioBridgeRoom, Phone]]:  # noqa: F811
    """A call's AudioBridge room (with the browsers' group) holding a phone that sends 440 Hz;
    the call's VideoRoom has the same id."""
    call_id = str(uuid.uuid4())
    room = AudioBridgeRoom(janus_url, call_id, Events(), browsers=True)
    await room.open()
    rtp, port = await rtp_socket()
    phone = Phone(rtp)
    try:
        janus_rtp = await room.join_rtp(PHONE, "127.0.0.1", port)
        phone.sending = asyncio.create_task(rtp.send_tone(janus_rtp, PHONE_TONE, 30))
        yield call_id, room, phone
    finally:
        phone.close()
        await room.close()
        await destroy_room(janus_url, call_id)


async def janus_lists(url: str, call_id: str) -> dict[str, Any]:
    """What Janus holds for the call: VideoRoom participants, AudioBridge participants and
    AudioBridge forwarders (none of a room that is not there)."""
    videoroom, audiobridge = _Session(url, 5), _BridgeSession(url, 5)

    async def listed(session: _Session, request: str, key: str) -> list[dict[str, Any]]:
        handle = await session.attach()
        try:
            data, _ = await session.message(handle, {"request": request, "room": call_id})
        except JanusError as error:
            if error.code not in (VR_NO_SUCH_ROOM, AB_NO_SUCH_ROOM):
                raise
            return []
        return list(data[key])

    try:
        await videoroom.create()
        await audiobridge.create()
        return {
            "videoroom": await listed(videoroom, "listparticipants", "participants"),
            "audiobridge": await listed(audiobridge, "listparticipants", "participants"),
            "forwarders": await listed(audiobridge, "listforwarders", "rtp_forwarders"),
        }
    finally:
        await videoroom.destroy()
        await audiobridge.destroy()


def last(samples: Any, rate: int, seconds: float = 0.5) -> Any:
    return samples[-int(rate * seconds) :]


async def next_seconds(samples: Any, rate: int, seconds: float, timeout: float = 10) -> Any:
    """The next `seconds` of audio `samples` (a growing sequence) receives."""
    start = len(samples)
    await until(lambda: len(samples) >= start + rate * seconds, timeout, f"{seconds} s of audio")
    return samples[start : start + int(rate * seconds)]


@pytest.mark.timeout(60)
async def test_browsers_and_a_phone_hear_each_other_and_close_leaves_nothing(
    janus_url: str,  # noqa: F811
    call: tuple[str, AudioBridgeRoom, Phone],
) -> None:
    # given a call with a phone in its AudioBridge, browser A publishing in its VideoRoom
    call_id, _, phone = call
    a = Browser(janus_url, call_id, "8:acs:a", A_TONE)
    b = Browser(janus_url, call_id, "8:acs:b", B_TONE)
    bridge = RoomBridge(janus_url, videoroom=call_id, audiobridge=call_id)
    try:
        await a.leg.open()
        await a.connect(await a.publish())
        await asyncio.sleep(1)  # A's connection is up (it is announced once it is)

        # when the bridge opens, and then browser B publishes
        await bridge.open()
        await b.leg.open()
        await b.connect(await b.publish())

        # then both browsers are bridged, and both receive the phones' feed
        await until(lambda: len(bridge.feeds) == 2, 10, "both browsers bridged")
        assert sorted(bridge.feeds) == sorted([a.leg.id, b.leg.id])
        await until(
            lambda: (
                all(
                    has_tone(last(x.heard("phones"), PEER_RATE), PEER_RATE, PHONE_TONE)
                    for x in (a, b)
                )
                and has_tone(last(phone.received, 8000), 8000, A_TONE)
                and has_tone(last(phone.received, 8000), 8000, B_TONE)
            ),
            10,
            "the media through the bridge",
        )

        # and each browser hears the phone, but neither itself nor the other through it
        for browser in (a, b):
            heard = await next_seconds(browser.heard("phones"), PEER_RATE, 1.5)
            assert has_tone(heard, PEER_RATE, PHONE_TONE), browser.name
            assert not has_tone(heard, PEER_RATE, A_TONE, at_least=200), browser.name
            assert not has_tone(heard, PEER_RATE, B_TONE, at_least=200), browser.name
        # and the phone hears both browsers, not itself
        heard = await next_seconds(phone.received, 8000, 1.5)
        assert has_tone(heard, 8000, A_TONE) and has_tone(heard, 8000, B_TONE)
        assert not has_tone(heard, 8000, PHONE_TONE, at_least=200)
        # and A and B still hear each other directly, as before
        assert has_tone(a.heard("8:acs:b"), PEER_RATE, B_TONE)
        assert has_tone(b.heard("8:acs:a"), PEER_RATE, A_TONE)

        # and Janus holds the remote publisher, the bridge's seats and legs, and one forward
        lists = await janus_lists(janus_url, call_id)
        remote = [p for p in lists["videoroom"] if p.get("remote")]
        assert [p["display"] for p in remote] == ["phones"] and remote[0]["publisher"]
        assert len(lists["videoroom"]) == 4  # A, B, the phones, the bridge's seat
        assert len(lists["audiobridge"]) == 5  # the room's control, the phone, A, B, a seat
        assert [f["group"] for f in lists["forwarders"]] == ["all"]

        # when the bridge closes
        await bridge.close()
        await bridge.close()  # again: nothing more

        # then the browsers see the phones' feed go, and nothing of the bridge is left
        await until(lambda: "phones" in a.removed and "phones" in b.removed, 5, "feed removed")
        lists = await janus_lists(janus_url, call_id)
        assert sorted(p["display"] for p in lists["videoroom"]) == ["8:acs:a", "8:acs:b"]
        displays = sorted(p["display"] for p in lists["audiobridge"])
        assert len(displays) == 2 and PHONE in displays  # and the room's control
        assert not any(d.startswith("spool-room-bridge") for d in displays)
        assert lists["forwarders"] == []
        assert bridge.feeds == []
    finally:
        await bridge.close()
        await a.close()
        await b.close()


@pytest.mark.timeout(60)
async def test_a_publisher_added_before_its_connection_is_up_and_one_that_leaves(
    janus_url: str,  # noqa: F811
    call: tuple[str, AudioBridgeRoom, Phone],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a bridge over an empty VideoRoom (which it creates)
    call_id, _, phone = call
    b = Browser(janus_url, call_id, "8:acs:b", B_TONE)
    bridge = RoomBridge(janus_url, videoroom=call_id, audiobridge=call_id)
    try:
        await bridge.open()
        assert bridge.feeds == []

        # when B is added as soon as Janus has its offer, before its connection is up
        await b.leg.open()
        answer = await b.publish()
        assert b.leg.id is not None
        adding = asyncio.create_task(bridge.add_publisher(b.leg.id))
        await asyncio.sleep(0.3)
        assert not adding.done()  # it waits for B's connection
        await b.connect(answer)
        await asyncio.wait_for(adding, 10)

        # then B is bridged once, and the phone hears it
        assert bridge.feeds == [b.leg.id]
        await bridge.add_publisher(b.leg.id)  # bridged already: nothing more
        assert bridge.feeds == [b.leg.id]
        await until(lambda: has_tone(last(phone.received, 8000), 8000, B_TONE), 10, "B's tone")

        # and a publisher that never comes is given up after RETRY_SECONDS
        monkeypatch.setattr(room_bridge, "RETRY_SECONDS", 0.3)
        with pytest.raises(JanusError) as never:
            await bridge.add_publisher("nobody")
        assert never.value.code == NO_SUCH_FEED

        # when B leaves the call
        await b.close()

        # then its leg leaves the AudioBridge, and the phone no longer hears it
        await until(lambda: bridge.feeds == [], 5, "B unbridged")
        lists = await janus_lists(janus_url, call_id)
        assert "8:acs:b" not in {p["display"] for p in lists["audiobridge"]}
        await asyncio.sleep(0.3)
        heard = await next_seconds(phone.received, 8000, 1)
        assert not has_tone(heard, 8000, B_TONE, at_least=200)
        await bridge.remove_publisher(b.leg.id or "")  # unknown now: fine
    finally:
        await bridge.close()
        await b.close()
    lists = await janus_lists(janus_url, call_id)
    assert lists["videoroom"] == [] and lists["forwarders"] == []


@pytest.mark.timeout(60)
async def test_a_destroyed_audiobridge_is_reported_and_close_still_cleans_the_videoroom(
    janus_url: str,  # noqa: F811
) -> None:
    # given a bridge between a VideoRoom and an AudioBridge room without the browsers' group
    call_id = str(uuid.uuid4())
    plain = AudioBridgeRoom(janus_url, call_id, Events())
    await plain.open()
    try:
        # then it does not open, and leaves nothing behind
        with pytest.raises(JanusError) as refused:
            await RoomBridge(janus_url, videoroom=call_id, audiobridge=call_id).open()
        assert refused.value.code == NO_SUCH_GROUP
        lists = await janus_lists(janus_url, call_id)
        assert lists["videoroom"] == [] and lists["forwarders"] == []
    finally:
        await plain.close()

    # given a bridge over a room with the group
    events = Events()
    room = AudioBridgeRoom(janus_url, call_id, Events(), browsers=True)
    await room.open()
    bridge = RoomBridge(janus_url, videoroom=call_id, audiobridge=call_id, on_event=events)
    try:
        await bridge.open()

        # when the AudioBridge room goes first
        await room.close()

        # then the bridge reports it once, and its close() still removes the remote publisher
        await events.wait(kind="connectionLost")
        await bridge.close()
        assert len(events.of("connectionLost")) == 1
        with pytest.raises(JanusError):
            await bridge.add_publisher("anyone")
    finally:
        await bridge.close()
        await room.close()
    try:
        lists = await janus_lists(janus_url, call_id)
        assert lists["videoroom"] == [] and lists["audiobridge"] == []
    finally:
        await destroy_room(janus_url, call_id)
