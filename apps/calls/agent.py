"""A Python call agent: places or answers 1:1 calls and joins group calls (mesh or through
Janus) with the same socket and signaling as a browser, sends audio (a tone, or a file through
aiortc's MediaPlayer) and counts or records what it receives. Tests and bench/calls.py use it;
server-side features (automation, recording, PSTN) build on it.

    agent = CallAgent("ws://127.0.0.1:8000/ws/", token)
    await agent.connect()
    call_id = await agent.call(other_raw_id)      # or: await agent.answer()
    await agent.wait_state("Connected")           # or: await agent.join(group_id=...)
    ...; await agent.hang_up(); await agent.close()

Media is WebRTC (aiortc). ICE uses no public STUN server, and with `loopback=True` offers
127.0.0.1 (aioice leaves loopback out by default), so two agents on one machine connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import math
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aioice.ice
import websockets
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
logger = logging.getLogger(__name__)
CLOSE_SECONDS = 5.0  # for a peer connection or a recorder to close


class ToneTrack(MediaStreamTrack):
    """A sine tone as 20 ms mono frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.samples = 0
        self.started: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        due = self.started + self.samples / SAMPLE_RATE
        await asyncio.sleep(max(0.0, due - loop.time()))
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        values = bytearray()
        for i in range(FRAME_SAMPLES):
            sample = int(8000 * math.sin(step * (self.samples + i)))
            values += sample.to_bytes(2, "little", signed=True)
        frame.planes[0].update(bytes(values))
        frame.pts, frame.sample_rate = self.samples, SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.samples += FRAME_SAMPLES
        return frame


def offer_loopback() -> None:
    """Let aioice offer 127.0.0.1 as a host candidate (agents and browsers on one machine)."""
    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4, use_ipv6)
        return ["127.0.0.1", *addresses] if use_ipv4 else addresses

    if getattr(aioice.ice.get_host_addresses, "__name__", "") != "with_loopback":
        aioice.ice.get_host_addresses = with_loopback


class CallAgent:
    def __init__(
        self,
        socket_url: str,
        token: str,
        *,
        audio: Callable[[], MediaStreamTrack] = ToneTrack,
        ice_servers: list[RTCIceServer] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        loopback: bool = True,
        record_dir: Path | None = None,
    ) -> None:
        self.socket_url = f"{socket_url}?access_token={token}"
        self.audio_source = audio  # a new track for each call (a ToneTrack paces from its start)
        self.ice_servers = ice_servers or []  # never a public STUN server by default
        self.ssl_context = ssl_context
        self.record_dir = record_dir  # received audio to <call id>-<peer>.wav files there
        self.recordings: list[Path] = []
        self.frames_received = 0
        self.frames_from: dict[str, int] = {}  # by peer key: a raw id, or "sfu:<raw id>"
        self.state = "None"
        self.end_reason: dict[str, Any] | None = None
        self.call_id: str | None = None
        self.topology = ""
        self.role = ""
        self.participants: set[str] = set()  # the others in the call
        self.is_caller = False  # of a 1:1 call: the caller offers once the callee answers
        self.raw_id = ""
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._peers: dict[str, RTCPeerConnection] = {}
        self._recorders: dict[str, MediaRecorder] = {}
        self._closing: set[asyncio.Future[None]] = set()  # peers closing off the reader
        self._audio: MediaStreamTrack | None = None
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._states: asyncio.Queue[str] = asyncio.Queue()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        if loopback:
            offer_loopback()

    async def connect(self) -> None:
        self._socket = await websockets.connect(self.socket_url, ssl=self.ssl_context)
        hello = json.loads(await self._socket.recv())
        if hello.get("type") != "hello":
            raise RuntimeError(f"the socket was refused: {hello}")
        self.raw_id = hello["identity"]
        self._reader = asyncio.ensure_future(self._read())

    async def call(self, raw_id: str, *, video: bool = False, caller_id: str = "") -> str:
        """Ring `raw_id` (an identity, or `4:+E.164` with `caller_id`, one of the resource's
        numbers); returns the call id. The offer goes out once the callee answers."""
        await self._new_call()
        self.participants, self.is_caller = {raw_id}, True
        invite: dict[str, Any] = {"type": "call.invite", "to": raw_id, "video": video}
        if caller_id:
            invite["alternateCallerId"] = caller_id
        await self._send(invite)
        await self._reply("call.invited")  # the reader took its call id
        return str(self.call_id)

    async def answer(self, timeout: float = 10) -> str:
        """Wait for an incoming call and accept it on this socket."""
        incoming = await asyncio.wait_for(self._incoming.get(), timeout)
        await self._new_call()
        self.call_id = incoming["callId"]
        caller = incoming["caller"]
        self.participants = {caller.get("communicationUserId") or caller.get("rawId", "")}
        await self._send({"type": "call.accept", "callId": self.call_id})
        await self._reply("call.accepted")
        return str(self.call_id)

    async def join(self, *, group_id: str | None = None, room_id: str | None = None) -> str:
        """Join a group call (by group id or room) and send media to it: to each participant
        in a mesh, to Janus in an SFU call (unless this agent's role is Consumer)."""
        await self._new_call()
        target = {"groupId": group_id} if group_id else {"roomId": room_id}
        await self._send({"type": "call.join", **target})
        await self._reply("call.joined")  # the reader took the call's id, shape and roster
        if self.topology == "sfu":
            if self.role != "Consumer":
                await self._offer("sfu", send_only=True)
        else:
            for raw_id in self.participants:
                await self._offer(raw_id)
        return str(self.call_id)

    async def add_participant(self, raw_id: str, *, caller_id: str) -> dict[str, Any]:
        """Dial a phone (`4:+E.164`) into this group call or room, shown as `caller_id` (one of
        the resource's numbers); returns its roster entry. It joins when it answers (a
        `participantsUpdated`); its audio comes in the `sfu:phones` feed."""
        await self._send(
            {
                "type": "call.addParticipant",
                "callId": self.call_id,
                "participant": {"rawId": raw_id},
                "alternateCallerId": caller_id,
            }
        )
        reply = await self._reply("call.participantAdded")
        return dict(reply["participant"])

    async def wait_state(self, wanted: str, timeout: float = 10) -> None:
        while self.state != wanted:
            await asyncio.wait_for(self._states.get(), timeout)

    async def send_dtmf(self, tone: str) -> None:
        """Press a key in the call (carried on signaling, as the ACS calling client does)."""
        await self._send({"type": "call.sendDtmf", "callId": self.call_id, "tone": tone})
        await self._reply("call.dtmfSent")

    async def hang_up(self) -> None:
        await self._send({"type": "call.hangup", "callId": self.call_id})

    async def close(self) -> None:
        await self._close_peers()
        await self._closed()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()

    # --- internals ---------------------------------------------------------------------------
    async def _new_call(self) -> None:
        await self._close_peers()
        await self._closed()
        self.call_id, self.state, self.end_reason, self.topology, self.role = (
            None,
            "None",
            None,
            "",
            "",
        )
        self.frames_received, self.frames_from, self.participants = 0, {}, set()
        self.is_caller = False
        self._audio = None

    async def _close_peers(self) -> None:
        await asyncio.gather(*(self._close_peer(key) for key in list(self._peers)))

    def _close_later(self, *keys: str) -> None:
        """Close these peers off the socket's reader, which must go on meanwhile (a hang-up's
        reply may come after the frame that ended the call); _closed() waits for them."""
        for key in keys:
            peer, recorder = self._peers.pop(key, None), self._recorders.pop(key, None)
            if peer is not None or recorder is not None:  # gone now: later frames make anew
                task = asyncio.ensure_future(self._close(peer, recorder))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _closed(self) -> None:
        """Peers being closed are closed now (their recordings finished)."""
        if self._closing:
            await asyncio.gather(*self._closing)

    async def _close_peer(self, key: str) -> None:
        await self._close(self._peers.pop(key, None), self._recorders.pop(key, None))

    async def _close(self, peer: RTCPeerConnection | None, recorder: MediaRecorder | None) -> None:
        # Bounded: aiortc's close can hang on a peer whose far end went first.
        if peer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await peer.close()
        if recorder is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await recorder.stop()  # finishes the file

    def _peer(self, key: str, *, sends: bool = True) -> RTCPeerConnection:
        peer = self._peers.get(key)
        if peer is not None:
            return peer
        peer = self._peers[key] = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        if sends and self.role != "Consumer":
            if self._audio is None:
                self._audio = self.audio_source()
            peer.addTrack(self._audio)
        else:
            peer.addTransceiver("audio", direction="recvonly")

        @peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind != "audio":
                return
            if self.record_dir is not None:
                # The recorder and the counter each read the track: a relay copies it for both.
                relay = MediaRelay()
                asyncio.ensure_future(self._record(key, relay.subscribe(track)))
                track = relay.subscribe(track)
            asyncio.ensure_future(self._count(key, track))

        return peer

    async def _offer(self, key: str, *, send_only: bool = False) -> None:
        peer = self._peer(key)
        if send_only:
            for transceiver in peer.getTransceivers():
                transceiver.direction = "sendonly"
        await peer.setLocalDescription(await peer.createOffer())
        await self._signal(key, peer.localDescription)

    async def _record(self, key: str, track: MediaStreamTrack) -> None:
        assert self.record_dir is not None
        path = self.record_dir / f"{self.call_id}-{key.replace(':', '_')}.wav"
        recorder = self._recorders[key] = MediaRecorder(str(path))
        recorder.addTrack(track)
        await recorder.start()
        self.recordings.append(path)

    async def _count(self, key: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:  # the track ended with the call
                return
            self.frames_received += 1
            self.frames_from[key] = self.frames_from.get(key, 0) + 1

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._socket.send(json.dumps(frame))

    async def _reply(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        while True:
            reply = await asyncio.wait_for(self._replies.get(), timeout)
            if reply["type"] == "error":
                raise RuntimeError(f"{reply['code']}: {reply['message']}")
            if reply["type"] == kind:
                return reply

    async def _read(self) -> None:
        async for text in self._socket:
            frame = json.loads(text)
            if frame.get("type") != "call":
                self._take_call(frame)
                await self._replies.put(frame)
                continue
            try:
                await self._on_call_frame(frame)
            except Exception:  # one frame's failure (a peer closing meanwhile) stops no other
                logger.exception("call frame %s failed", frame.get("event"))

    def _take_call(self, reply: dict[str, Any]) -> None:
        """The call a reply starts becomes this agent's here, in the reader: the call's frames
        may follow the reply at once (Janus's offers of the feeds already in a group call come
        right after `call.joined`), before the command's caller resumes, and would otherwise
        be dropped as another call's."""
        if reply["type"] == "call.invited":
            self.call_id = reply["callId"]
        elif reply["type"] == "call.joined":
            self.call_id, self.topology, self.role = (
                reply["callId"],
                reply["topology"],
                reply["role"],
            )
            self.participants = {p["rawId"] for p in reply["participants"]}
            self.state = "Connected"

    async def _on_call_frame(self, frame: dict[str, Any]) -> None:
        event = frame.get("event")
        if event == "incomingCall":
            await self._incoming.put(frame)
        elif frame.get("callId") != self.call_id:
            return
        elif event == "stateChanged":
            await self._on_state(frame)
        elif event == "signal":
            await self._on_signal(frame.get("from") or next(iter(self.participants)), frame)
        elif event == "participantsUpdated":
            await self._on_participants(frame)

    async def _on_state(self, frame: dict[str, Any]) -> None:
        self.state = frame["state"]
        if self.state == "Disconnected":
            self.end_reason = frame.get("callEndReason")
            self._close_later(*self._peers)
        elif self.state in ("Connected", "EarlyMedia") and frame.get("topology") == "bridge":
            # The call's media goes through the media bridge: one peer, "media" (from early
            # media on: a phone's network plays ringback or an announcement before it answers).
            self.topology = "bridge"
            if "media" not in self._peers:
                await self._offer("media")
        elif self.state == "Connected" and not self._peers and self.is_caller:
            # The caller makes the offer once the callee has answered.
            await self._offer(next(iter(self.participants)))
        await self._states.put(self.state)

    async def _on_participants(self, frame: dict[str, Any]) -> None:
        self.participants |= {p["rawId"] for p in frame["added"]}
        for raw_id in frame["removed"]:
            self.participants.discard(raw_id)
            self._close_later(raw_id, f"sfu:{raw_id}")

    async def _on_signal(self, key: str, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if data.get("type") == "bye":
            self._close_later(key)
            return
        if "candidate" in data:
            peer = self._peers.get(key)
            candidate = data["candidate"]
            if peer is not None and candidate and candidate.get("candidate"):
                ice = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
                ice.sdpMid, ice.sdpMLineIndex = (
                    candidate.get("sdpMid"),
                    candidate.get("sdpMLineIndex"),
                )
                await peer.addIceCandidate(ice)
            return
        # A Janus feed is received only; a mesh or 1:1 peer gets this agent's audio too.
        peer = self._peer(key, sends=not key.startswith("sfu:"))
        description = RTCSessionDescription(sdp=data["sdp"], type=data["type"])
        await peer.setRemoteDescription(description)
        if description.type == "offer":
            await peer.setLocalDescription(await peer.createAnswer())
            await self._signal(key, peer.localDescription)

    async def _signal(self, key: str, description: RTCSessionDescription) -> None:
        # aiortc gathers every candidate before it answers: no trickle needed.
        await self._send(
            {
                "type": "call.signal",
                "callId": self.call_id,
                "to": key,
                "data": {"type": description.type, "sdp": description.sdp},
            }
        )
