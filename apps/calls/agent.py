"""A Python call agent: places or answers 1:1 calls through the same socket and signaling as a
browser, sends audio (a tone, or a file through aiortc's MediaPlayer) and counts or records
what it receives. Tests use it; server-side features (automation, recording, PSTN) build on it.

    agent = CallAgent("ws://127.0.0.1:8000/ws/", token)
    await agent.connect()
    call_id = await agent.call(other_raw_id)      # or: await agent.answer()
    await agent.wait_connected()
    ...; await agent.hang_up(); await agent.close()

Media is WebRTC (aiortc). ICE uses no public STUN server, and with `loopback=True` offers
127.0.0.1 (aioice leaves loopback out by default), so two agents on one machine connect.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import ssl
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
from av import AudioFrame

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms


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
        audio: MediaStreamTrack | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        loopback: bool = True,
    ) -> None:
        self.socket_url = f"{socket_url}?access_token={token}"
        self.audio = audio or ToneTrack()
        self.ice_servers = ice_servers or []  # never a public STUN server by default
        self.ssl_context = ssl_context
        self.frames_received = 0
        self.state = "None"
        self.end_reason: dict[str, Any] | None = None
        self.call_id: str | None = None
        self.raw_id = ""
        self._socket: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._peer: RTCPeerConnection | None = None
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

    async def call(self, raw_id: str, *, video: bool = False) -> str:
        """Ring `raw_id`; returns the call id. The offer goes out once the callee answers."""
        await self._send({"type": "call.invite", "to": raw_id, "video": video})
        reply = await self._reply("call.invited")
        self.call_id = reply["callId"]
        return str(self.call_id)

    async def answer(self, timeout: float = 10) -> str:
        """Wait for an incoming call and accept it on this socket."""
        incoming = await asyncio.wait_for(self._incoming.get(), timeout)
        self.call_id = incoming["callId"]
        self._peer = self._new_peer()
        await self._send({"type": "call.accept", "callId": self.call_id})
        await self._reply("call.accepted")
        return str(self.call_id)

    async def wait_state(self, wanted: str, timeout: float = 10) -> None:
        while self.state != wanted:
            await asyncio.wait_for(self._states.get(), timeout)

    async def hang_up(self) -> None:
        await self._send({"type": "call.hangup", "callId": self.call_id})

    async def close(self) -> None:
        if self._peer is not None:
            await self._peer.close()
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()

    # --- internals ---------------------------------------------------------------------------
    def _new_peer(self) -> RTCPeerConnection:
        peer = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        peer.addTrack(self.audio)

        @peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            asyncio.ensure_future(self._count(track))

        return peer

    async def _count(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except Exception:  # the track ended with the call
                return
            self.frames_received += 1

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
                await self._replies.put(frame)
                continue
            event = frame.get("event")
            if event == "incomingCall":
                await self._incoming.put(frame)
            elif event == "stateChanged" and frame.get("callId") == self.call_id:
                await self._on_state(frame)
            elif event == "signal" and frame.get("callId") == self.call_id:
                await self._on_signal(frame["data"])

    async def _on_state(self, frame: dict[str, Any]) -> None:
        self.state = frame["state"]
        if self.state == "Disconnected":
            self.end_reason = frame.get("callEndReason")
        elif self.state == "Connected" and self._peer is None:
            # The caller makes the offer once the callee has answered.
            self._peer = self._new_peer()
            await self._peer.setLocalDescription(await self._peer.createOffer())
            await self._signal(self._peer.localDescription)
        await self._states.put(self.state)

    async def _on_signal(self, data: dict[str, Any]) -> None:
        assert self._peer is not None
        description = RTCSessionDescription(sdp=data["sdp"], type=data["type"])
        await self._peer.setRemoteDescription(description)
        if description.type == "offer":
            await self._peer.setLocalDescription(await self._peer.createAnswer())
            await self._signal(self._peer.localDescription)

    async def _signal(self, description: RTCSessionDescription) -> None:
        # aiortc gathers every candidate before it answers: no trickle needed.
        await self._send(
            {
                "type": "call.signal",
                "callId": self.call_id,
                "data": {"type": description.type, "sdp": description.sdp},
            }
        )
