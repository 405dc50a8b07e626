"""Group calls through a real Janus VideoRoom: apps.calls.sfu.JanusLeg with aiortc peers.

Janus (Debian `janus`) runs with docker/janus/ on a free port (tests/janus.py). Each participant
is a JanusLeg plus aiortc peers: one that publishes, one per remote feed that receives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from apps.calls.agent import ToneTrack, offer_loopback
from apps.calls.sfu import JanusError, JanusLeg, destroy_room
from tests.janus import BarsTrack, require_janus, run_janus


@pytest.fixture
def janus_url() -> Iterator[str]:
    require_janus()
    with run_janus() as janus:
        yield janus.url


def description(jsep: dict[str, Any]) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"])


class Participant:
    """A JanusLeg with aiortc peers; counts the frames it receives per (feed, kind)."""

    def __init__(self, url: str, room: str, name: str) -> None:
        offer_loopback()
        self.name = name
        self.leg = JanusLeg(url, room, name, self.on_event)
        self.frames: Counter[tuple[str, str]] = Counter()
        self.removed: list[str] = []
        self.peers: dict[str, RTCPeerConnection] = {}

    async def publish(self, *tracks: MediaStreamTrack) -> None:
        peer = self.peers["publish"] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for track in tracks:
            peer.addTrack(track)
        await peer.setLocalDescription(await peer.createOffer())
        local = peer.localDescription
        answer = await self.leg.publish({"type": local.type, "sdp": local.sdp})
        await peer.setRemoteDescription(description(answer))

    async def on_event(self, event: dict[str, Any]) -> None:
        feed = event["feed"]
        if event["kind"] == "feedRemoved":
            self.removed.append(feed)
            if feed in self.peers:
                await self.peers.pop(feed).close()
            return
        peer = self.peers[feed] = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            asyncio.ensure_future(self._count(feed, track))

        await peer.setRemoteDescription(description(event["jsep"]))
        await peer.setLocalDescription(await peer.createAnswer())
        local = peer.localDescription
        await self.leg.answer_feed(feed, {"type": local.type, "sdp": local.sdp})

    async def _count(self, feed: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:  # the peer closed
                return
            self.frames[(feed, track.kind)] += 1

    async def close(self) -> None:
        await self.leg.close()
        for peer in self.peers.values():
            await peer.close()


async def until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(30)
async def test_three_participants_hear_each_other_through_janus(janus_url: str) -> None:
    # given three participants of one room (two creating it at once); C only receives
    room = str(uuid.uuid4())
    a, b, c = (Participant(janus_url, room, name) for name in ("A", "B", "C"))
    try:
        await asyncio.gather(a.leg.open(), b.leg.open())

        # when A publishes a tone before C joins, and B a tone and video after
        await a.publish(ToneTrack(440))
        await c.leg.open()
        await b.publish(ToneTrack(660), BarsTrack())

        # then C receives audio from both, A receives B's audio and video, B receives A's audio
        def flowing() -> bool:
            return (
                min(c.frames[("A", "audio")], c.frames[("B", "audio")], a.frames[("B", "audio")])
                > 10
                and a.frames[("B", "video")] > 5
                and b.frames[("A", "audio")] > 10
            )

        await until(flowing, 10, "media from every publisher")
        assert ("C", "audio") not in a.frames and ("C", "audio") not in b.frames

        # and when B leaves, A and C see B's feed go
        await b.close()
        await until(lambda: "B" in a.removed and "B" in c.removed, 5, "feedRemoved for B")
        assert a.removed == ["B"] and c.removed == ["B"]
    finally:
        for participant in (a, b, c):
            await participant.close()
        await destroy_room(janus_url, room)


@pytest.mark.timeout(30)
async def test_janus_refusals_raise_janus_error(janus_url: str) -> None:
    # given a participant in a room
    room = str(uuid.uuid4())
    leg = JanusLeg(janus_url, room, "A", lambda event: asyncio.sleep(0))
    await leg.open()
    try:
        # when it publishes an offer that is not SDP, then Janus' refusal is raised
        with pytest.raises(JanusError) as refused:
            await leg.publish({"type": "offer", "sdp": "not sdp"})
        assert refused.value.code > 0 and refused.value.reason

        # and answering a feed that does not exist is refused too
        with pytest.raises(JanusError) as unknown:
            await leg.answer_feed("nobody", {"type": "answer", "sdp": "v=0"})
        assert unknown.value.code == 428
    finally:
        await leg.close()
        await leg.close()  # idempotent
    # and destroying the room twice is fine
    await destroy_room(janus_url, room)
    await destroy_room(janus_url, room)


@pytest.mark.timeout(30)
async def test_an_unreachable_janus_raises_janus_error() -> None:
    # given nothing listening on the port
    from tests.janus import free_port

    leg = JanusLeg(f"ws://127.0.0.1:{free_port()}", "room", "A", lambda event: asyncio.sleep(0))

    # then opening the leg raises, with code 0 (no answer from Janus)
    with pytest.raises(JanusError) as refused:
        await leg.open()
    assert refused.value.code == 0


@pytest.mark.timeout(30)
async def test_a_leg_hears_when_janus_goes_away() -> None:
    # given a leg in a room of a Janus of its own
    require_janus()
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    with run_janus() as janus:
        leg = JanusLeg(janus.url, str(uuid.uuid4()), "A", on_event)
        await leg.open()

        # when Janus stops
        os.kill(janus.pid, signal.SIGTERM)
        await until(lambda: bool(events), 10, "an event")

    # then the leg reports it, and its requests fail clearly
    assert events == [{"kind": "disconnected"}]
    with pytest.raises(JanusError) as refused:
        await leg.publish({"type": "offer", "sdp": "v=0"})
    assert refused.value.code == 0
    await leg.close()


@pytest.mark.timeout(30)
async def test_a_janus_with_an_api_secret_takes_only_requests_that_carry_it(
    settings: Any,
) -> None:
    require_janus()
    with run_janus(api_secret="s3cret") as janus:
        # without the secret Janus refuses (403, unauthorized)
        settings.JANUS_API_SECRET = ""
        refused_leg = JanusLeg(janus.url, "room-s", "A", lambda event: asyncio.sleep(0))
        with pytest.raises(JanusError) as refused:
            await refused_leg.open()
        assert refused.value.code == 403

        # with SPOOL_JANUS_API_SECRET set, the leg joins
        settings.JANUS_API_SECRET = "s3cret"
        leg = JanusLeg(janus.url, "room-s", "A", lambda event: asyncio.sleep(0))
        await leg.open()
        assert leg.id
        await leg.close()
