"""A bridge between a Janus VideoRoom (the browsers of a group call or room, apps/calls/sfu.py)
and an AudioBridge room in the same Janus (its phones and bots, apps/automation/bridge.py), so
that they all hear each other while the browsers stay in the VideoRoom.

    bridge = RoomBridge("ws://127.0.0.1:8188", videoroom=call_id, audiobridge=call_id)
    await bridge.open()        # the AudioBridge room must be AudioBridgeRoom(..., browsers=True)
    ...                        # browsers come and go: the bridge follows them by itself
    await bridge.close()

Both directions are Janus to Janus; no media passes through this process:

    VideoRoom                                                  AudioBridge
    browser's audio -> subscriber handle == WebRTC ==> leg (group "browsers")   phones hear it
    remote publisher "phones" <== RTP, Opus, ssrc 1000 == rtp_forward of group "all"

- Each browser's audio comes in through a VideoRoom subscription whose offer joins the
  AudioBridge (a leg in group "browsers"); the AudioBridge's answer starts the subscription.
- The AudioBridge's group "all" (phones, bots, prompts; never browsers) is forwarded as Opus to a
  VideoRoom remote publisher (`add_remote_publisher`, bound to loopback), which browsers receive
  like any other feed, under `display`. Janus takes a remote publisher's packets by SSRC: 1000 +
  10 x the stream's m-line index, so 1000 for its single audio stream.
- The bridge joins the VideoRoom as a participant that never publishes: it hears of publishers
  as they start (`publishers`) and go (`unpublished`, `leaving`), and bridges each one's first
  audio stream. add_publisher() / remove_publisher() do the same on request.

A leg forwarded apart (AudioBridgeRoom.forward with a display: recognize, media streaming) moves
to a solo group, which is not "all": browsers do not hear it until it is back.

Events (`on_event`, optional): {"kind": "connectionLost", "reason"} when Janus, a session or one
of the two rooms is gone; the bridge then does nothing more, and close() is all that is left.
Every request has a deadline; refusals and timeouts raise JanusError (apps/calls/sfu.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from apps.automation.bridge import GROUP_ALL, GROUP_BROWSERS, RTP_CODECS, _BridgeSession
from apps.calls.sfu import (
    CONNECTION_LOST,
    NO_SUCH_FEED,
    TIMEOUT,
    JanusError,
    OnEvent,
    _create_room,
    _Session,
)

logger = logging.getLogger(__name__)

DISPLAY = "phones"  # the remote publisher's display: what browsers' rosters call it
LOOPBACK = "127.0.0.1"  # both rooms are in one Janus: the forward never leaves the machine
REMOTE_SSRC = 1000  # Janus's REMOTE_PUBLISHER_BASE_SSRC, for m-line 0
RETRY_SECONDS = 5.0  # how long add_publisher() waits for a publisher's connection
RETRY_STEP = 0.1
AB_CODECS = {"opus", "pcma", "pcmu"}  # what an AudioBridge leg can be


@dataclass(frozen=True)
class _Audio:
    mid: str  # the publisher's audio stream
    codec: str
    display: str


@dataclass
class _Bridged:
    audio: _Audio
    subscriber: int  # VideoRoom subscriber handle
    leg: int  # AudioBridge handle
    leg_id: str  # its AudioBridge participant id


class RoomBridge:
    """One VideoRoom and one AudioBridge room joined (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        videoroom: str,
        audiobridge: str,
        display: str = DISPLAY,
        on_event: OnEvent | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self.videoroom = videoroom
        self.audiobridge = audiobridge
        self.display = display
        self.on_event = on_event
        self.timeout = timeout
        self.remote_id: str | None = None  # the remote publisher's id in the VideoRoom
        self._vr = _Session(url, timeout)
        self._ab = _BridgeSession(url, timeout)
        self._vr_control: int | None = None  # also our (never publishing) VideoRoom seat
        self._ab_control: int | None = None
        self._forward: int | None = None  # the AudioBridge forward's stream id
        self._published: dict[str, _Audio | None] = {}  # feed id -> its audio, if any
        self._bridged: dict[str, _Bridged] = {}  # by feed id
        self._lock = asyncio.Lock()  # one change of subscriptions at a time
        self._keepalives: list[asyncio.Task[None]] = []
        self._dispatchers: list[asyncio.Task[None]] = []
        self._lost: str | None = None  # why the bridge stopped working, if it did
        self._reported = False
        self._closed = False

    @property
    def feeds(self) -> list[str]:
        """The VideoRoom publishers whose audio is in the AudioBridge now."""
        return list(self._bridged)

    async def open(self) -> None:
        """Connect, add the remote publisher and its forward, and bridge every publisher there
        is. Creates the VideoRoom if missing; the AudioBridge room must exist, with the
        browsers' group. Raises JanusError (everything made so far is undone)."""
        self._check_open()  # once: a closed bridge stays closed
        try:
            await self._vr.create()
            await self._ab.create()
            self._keepalives = [
                asyncio.create_task(self._vr.keep_alive(f"videoroom {self.videoroom}")),
                asyncio.create_task(self._ab.keep_alive(f"audiobridge {self.audiobridge}")),
            ]
            self._ab_control = await self._ab.attach()
            # A silent seat in the browsers' group: Janus refuses it (494) if the room has no
            # such group, and it brings the room's "destroyed" event.
            seat = f"spool-room-bridge-{uuid.uuid4().hex[:12]}"
            await self._ab.message(
                self._ab_control,
                {
                    "request": "join",
                    "room": self.audiobridge,
                    "id": seat,
                    "display": seat,
                    "group": GROUP_BROWSERS,
                    "muted": True,
                },
            )
            self._vr_control = await self._vr.attach()
            await _create_room(self._vr, self._vr_control, self.videoroom)
            remote, _ = await self._vr.message(
                self._vr_control,
                {
                    "request": "add_remote_publisher",
                    "room": self.videoroom,
                    "display": self.display,
                    "iface": LOOPBACK,
                    "streams": [{"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"}],
                },
            )
            self.remote_id = str(remote["id"])
            forward, _ = await self._ab.message(
                self._ab_control,
                {
                    "request": "rtp_forward",
                    "room": self.audiobridge,
                    "group": GROUP_ALL,
                    "codec": "opus",
                    "ptype": RTP_CODECS["opus"],
                    "ssrc": REMOTE_SSRC,
                    "host": LOOPBACK,
                    "port": int(remote["port"]),
                    "always_on": True,
                },
            )
            self._forward = int(forward["stream_id"])
            joined, _ = await self._vr.message(
                self._vr_control,
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": self.videoroom,
                    "display": f"spool-room-bridge-{uuid.uuid4().hex[:12]}",
                },
            )
            async with self._lock:
                for publisher in joined.get("publishers", []):
                    await self._announced(publisher)
        except BaseException:
            await self.close()
            raise
        # Events that came meanwhile were queued: from here on they are handled, in order.
        self._dispatchers = [
            asyncio.create_task(self._dispatch(self._vr, "videoroom")),
            asyncio.create_task(self._dispatch(self._ab, "audiobridge")),
        ]

    async def add_publisher(self, feed_id: str) -> None:
        """Bridge a VideoRoom publisher's audio (once: a bridged one stays as it is). One whose
        connection is not up yet is waited for, up to RETRY_SECONDS. Raises JanusError
        (NO_SUCH_FEED if it did not come up in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_SECONDS
        while True:
            async with self._lock:
                self._check_open()
                if feed_id in self._bridged:
                    return
                if feed_id in self._published:
                    audio = self._published[feed_id]
                    if audio is None:
                        return  # it publishes no audio
                    try:
                        await self._bridge(feed_id, audio)
                        return
                    except JanusError as error:
                        if error.code != NO_SUCH_FEED:  # it may be publishing anew
                            raise
            if loop.time() > deadline:
                raise JanusError(NO_SUCH_FEED, f"no publisher {feed_id} in {self.videoroom}")
            await asyncio.sleep(RETRY_STEP)

    async def remove_publisher(self, feed_id: str) -> None:
        """Stop bridging a VideoRoom publisher (until it is announced again). Unknown ones are
        fine."""
        async with self._lock:
            self._published.pop(feed_id, None)
            await self._unbridge(feed_id)

    async def close(self) -> None:
        """Stop the forward, remove the remote publisher and every subscription, and end both
        sessions. Failures are logged, not raised; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        for task in self._keepalives:
            task.cancel()
        for session in (self._vr, self._ab):
            session.events.put_nowait(None)  # wakes a dispatcher: it stops, as _closed says
        dispatchers = [task for task in self._dispatchers if task is not asyncio.current_task()]
        if dispatchers:
            # Let a change in progress finish (cancelling it midway could leave a handle made
            # and not recorded); the dispatchers stop before their next event.
            await asyncio.wait(dispatchers, timeout=self.timeout)
        for task in dispatchers:
            task.cancel()
        async with self._lock:  # after an add_publisher() in progress
            await self._remove_room_objects()
            for feed_id in list(self._bridged):
                await self._unbridge(feed_id)
            self._published.clear()
        for session in (self._vr, self._ab):
            await session.destroy()

    # --- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed or self._lost:
            raise JanusError(CONNECTION_LOST, f"the bridge of {self.videoroom} is closed")

    async def _remove_room_objects(self) -> None:
        """What outlives our sessions in Janus: the forward and the remote publisher."""
        if self._forward is not None and self._ab_control is not None:
            with contextlib.suppress(JanusError):  # the room may be gone
                await self._ab.message(
                    self._ab_control,
                    {
                        "request": "stop_rtp_forward",
                        "room": self.audiobridge,
                        "stream_id": self._forward,
                    },
                )
            self._forward = None
        if self.remote_id is not None and self._vr_control is not None:
            with contextlib.suppress(JanusError):
                await self._vr.message(
                    self._vr_control,
                    {
                        "request": "remove_remote_publisher",
                        "room": self.videoroom,
                        "id": self.remote_id,
                    },
                )
            self.remote_id = None

    async def _announced(self, publisher: dict[str, Any]) -> None:
        """A publisher started, or its streams changed (the lock is held)."""
        feed_id = str(publisher["id"])
        display = str(publisher.get("display") or feed_id)
        if feed_id == self.remote_id or display == self.display:
            return  # our own feed (or another bridge's): the phones must not hear themselves
        audio = next(
            (
                _Audio(str(stream["mid"]), str(stream.get("codec")), display)
                for stream in publisher.get("streams", [])
                if stream.get("type") == "audio" and not stream.get("disabled")
            ),
            None,
        )
        self._published[feed_id] = audio
        bridged = self._bridged.get(feed_id)
        if bridged is not None and bridged.audio == audio:
            return
        await self._unbridge(feed_id)
        if audio is None:
            return
        try:
            await self._bridge(feed_id, audio)
        except JanusError as error:  # gone meanwhile: its "unpublished" follows
            logger.warning("bridging %s of %s: %s", display, self.videoroom, error)

    async def _bridge(self, feed_id: str, audio: _Audio) -> None:
        """Subscribe the AudioBridge to one publisher's audio (the lock is held). Raises
        JanusError (nothing is left behind)."""
        if audio.codec not in AB_CODECS:
            logger.warning("%s of %s sends %s: not bridged", audio.display, self.videoroom, audio)
            return
        subscriber = await self._vr.attach()
        leg, leg_id = None, uuid.uuid4().hex
        try:
            _, offer = await self._vr.message(
                subscriber,
                {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self.videoroom,
                    "streams": [{"feed": feed_id, "mid": audio.mid}],
                },
            )
            if offer is None:
                raise JanusError(-1, f"Janus offered nothing for {feed_id}")
            leg = await self._ab.attach()
            _, answer = await self._ab.message(
                leg,
                {
                    "request": "join",
                    "room": self.audiobridge,
                    "id": leg_id,
                    "display": audio.display,
                    "group": GROUP_BROWSERS,
                    "codec": audio.codec,
                },
                offer,
            )
            if answer is None:
                raise JanusError(-1, f"the AudioBridge did not answer for {feed_id}")
            await self._vr.message(subscriber, {"request": "start"}, answer)
        except BaseException:
            with contextlib.suppress(JanusError):
                await self._vr.detach(subscriber)
            if leg is not None:
                with contextlib.suppress(JanusError):
                    await self._ab.detach(leg)
            raise
        self._bridged[feed_id] = _Bridged(audio, subscriber, leg, leg_id)

    async def _unbridge(self, feed_id: str) -> None:
        bridged = self._bridged.pop(feed_id, None)
        if bridged is None:
            return
        with contextlib.suppress(JanusError):  # gone already, with its room or session
            await self._ab.message(bridged.leg, {"request": "leave"})
        with contextlib.suppress(JanusError):
            await self._ab.detach(bridged.leg)
        with contextlib.suppress(JanusError):
            await self._vr.detach(bridged.subscriber)

    async def _dispatch(self, session: _Session, name: str) -> None:
        while not self._lost:
            message = await session.events.get()
            if self._closed or self._lost:
                return
            if message is None or message.get("janus") == "timeout":
                reason = "connection to Janus lost" if message is None else "session timed out"
                self._lost = f"{name}: {reason}"
            else:
                try:
                    async with self._lock:
                        await self._handle(message)
                except JanusError as error:
                    logger.warning("Janus event %s for %s: %s", message, self.videoroom, error)
        if self._closed or self._reported:
            return  # the other dispatcher tells it
        self._reported = True
        # Told outside the lock: the callback may close() the bridge.
        logger.warning("the bridge of %s stops: %s", self.videoroom, self._lost)
        if self.on_event is not None:
            try:
                await self.on_event({"kind": "connectionLost", "reason": self._lost})
            except Exception:  # the caller's bug must not stop the rest of the call
                logger.exception("on_event failed for connectionLost")

    async def _handle(self, message: dict[str, Any]) -> None:
        kind, sender = message.get("janus"), message.get("sender")
        if kind in ("hangup", "detached"):  # a Janus-to-Janus PeerConnection failed
            for feed_id, bridged in list(self._bridged.items()):
                if sender in (bridged.subscriber, bridged.leg):
                    logger.info("the bridge of %s lost %s", self.videoroom, bridged.audio)
                    await self._unbridge(feed_id)
            return
        data = message.get("plugindata", {}).get("data", {})
        if kind != "event" or sender not in (self._vr_control, self._ab_control):
            return
        if data.get("videoroom") == "destroyed" or data.get("audiobridge") == "destroyed":
            self._lost = f"room {data.get('room')} destroyed"
            return
        for publisher in data.get("publishers", []):
            await self._announced(publisher)
        for key in ("unpublished", "leaving"):
            feed_id = str(data.get(key, "ok"))
            if sender == self._vr_control and feed_id != "ok":  # "ok" answers our own request
                self._published.pop(feed_id, None)
                await self._unbridge(feed_id)
