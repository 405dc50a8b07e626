"""One Janus AudioBridge room (the media of one automated call), driven over Janus's WebSocket
API: legs join it (WebRTC or plain RTP), prompts play into its mix, the mix is recorded to WAV
and forwarded over RTP to listeners.

    async def on_event(event):  # {"kind": "playStopped", "fileId": "..."}, ...
        ...
    room = AudioBridgeRoom("ws://127.0.0.1:8188", call_id, on_event)
    await room.open()
    answer = await room.join(raw_id, offer)           # a WebRTC leg; trickle() its candidates
    await room.play(speech_path, file_id)             # playStarted, then playStopped
    wav = await room.start_recording(folder / "rec-0") ; await room.stop_recording()
    await room.close()

The room holds one Janus session: a control handle that creates the room and joins it as a
silent participant (AudioBridge sends announcement and leave events to participants only), and
one handle per leg. Room and participant ids are strings (docker/janus/ sets string_ids).

Events, one at a time and in order (the callback may call this room's methods):
- {"kind": "playStarted", "fileId"} and {"kind": "playStopped", "fileId"}: a prompt began and
  ended, finished or stopped; every play() that succeeded gets exactly one playStopped (unless
  connectionLost comes first).
- {"kind": "participantLeft", "display", "reason"}: a leg went without leave() being called
  (its peer hung up, its DTLS or ICE failed, Janus dropped it).
- {"kind": "mediaReceiving", "display", "receiving"}: a leg's audio stopped reaching Janus
  (False, after Janus's `no_media_timer`, 1 s) or came back (True): Janus core's `media` event.
- {"kind": "connectionLost", "reason"}: Janus, the session or the room is gone; open() again
  starts over with a new room.

Every request has a deadline; refusals and timeouts raise JanusError (apps/calls/sfu.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.automation.sideroom import GROUP_LEG, GROUP_LINK, SideRoom
from apps.calls.sfu import CONNECTION_LOST, TIMEOUT, JanusError, OnEvent, _Session

logger = logging.getLogger(__name__)

PLUGIN = "janus.plugin.audiobridge"
KEEPALIVE_SECONDS = 25.0  # Janus drops a silent session after session_timeout (60 s)
SAMPLING_RATE = 16000  # the mix and its recordings: wideband, as ACS records and streams
# AudioBridge error codes (plugins/janus_audiobridge.c).
NO_SUCH_ROOM = 485
ROOM_EXISTS = 486
ID_EXISTS = 490
NO_SUCH_USER = 492
INVALID_SDP = 493
NO_SUCH_GROUP = 494
# Forwarding groups. Every leg and prompt is in "all"; a leg whose audio is forwarded apart
# (to a recognizer, to media streaming) moves to a "solo" group of its own. AudioBridge allows
# five groups, so four legs can be forwarded apart at once (ACS streams at most four unmixed).
GROUP_ALL = "all"
SOLO_GROUPS = ("solo1", "solo2", "solo3", "solo4")
# A room bridged to a VideoRoom (apps/automation/room_bridge.py) holds the browsers' voices in a
# group of their own, so that what goes back to the VideoRoom ("all") carries none of them: that
# group takes the place of the last solo group.
GROUP_BROWSERS = "browsers"
RTP_CODECS = {"pcma": 8, "pcmu": 0, "opus": 111}  # codec -> RTP payload type
# Janus writes the mix to "<file>.part" and renames it on close (record_tmp_ext in
# docker/janus/janus.plugin.audiobridge.jcfg): the final name means a complete file.
RECORDING_TMP_EXT = ".part"
MAX_PATH = 254  # Janus builds recording paths in 255-byte buffers


class _BridgeSession(_Session):
    """sfu.py's session, attaching AudioBridge handles instead of VideoRoom ones."""

    async def attach(self) -> int:
        reply = await self.janus("attach", plugin=PLUGIN)
        return int(reply["data"]["id"])


@dataclass
class _Leg:
    display: str  # the participant's raw id
    id: str  # its AudioBridge participant id
    handle: int
    group: str = GROUP_ALL
    muted: bool = False
    side: SideRoom | None = None  # in a side room of its own (apps/automation/sideroom.py)
    recording: Path | None = None  # the .mjr its own audio goes to (start_leg_recording)


class AudioBridgeRoom:
    """One AudioBridge room and the legs Spool put in it (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        room: str,
        on_event: OnEvent,
        *,
        timeout: float = TIMEOUT,
        sampling_rate: int = SAMPLING_RATE,
        browsers: bool = False,
    ) -> None:
        self.url = url
        self.room = room
        self.on_event = on_event
        self.timeout = timeout
        self.sampling_rate = sampling_rate
        # With browsers (a RoomBridge), three legs can be forwarded apart at once, not four.
        self._solo_groups: tuple[str, ...] = SOLO_GROUPS[:-1] if browsers else SOLO_GROUPS
        self._groups = [GROUP_ALL, *([GROUP_BROWSERS] if browsers else []), *self._solo_groups]
        self._session: _BridgeSession | None = None
        self._control: int | None = None
        self._lost = False
        self._record_dir: Path | None = None
        self._legs: dict[str, _Leg] = {}  # by display
        self._playing: dict[str, bool] = {}  # file id -> started
        self._play_rooms: dict[str, str] = {}  # file id -> the room it plays in
        self._forwards: dict[str, str | None] = {}  # stream id -> its group (None: the mix)
        self._recording: Path | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._dispatch_task: asyncio.Task[None] | None = None

    @property
    def participants(self) -> list[str]:
        return list(self._legs)

    @property
    def recording(self) -> Path | None:
        """The WAV being recorded, if any."""
        return self._recording

    async def open(self, *, record_dir: Path | None = None) -> None:
        """Connect, create the room (an existing one is used as it is) and join it as its
        controller. Does nothing if open; after connectionLost it starts over. Relative
        recording paths are taken as under `record_dir`. Raises JanusError."""
        if self._session is not None and not self._lost:
            return
        await self._teardown()  # what is left of a lost connection
        self._record_dir = record_dir
        session = self._session = _BridgeSession(self.url, self.timeout)
        try:
            await session.create()
            self._keepalive_task = asyncio.create_task(self._keepalive(session))
            control = self._control = await session.attach()
            create = {
                "request": "create",
                "room": self.room,
                "permanent": False,
                "is_private": True,
                "sampling_rate": self.sampling_rate,
                "allow_rtp_participants": True,
                "audiolevel_event": False,
                "groups": self._groups,
            }
            if record_dir is not None:
                create["record_dir"] = str(record_dir)
            try:
                await session.message(control, create)
            except JanusError as error:
                if error.code != ROOM_EXISTS:  # left by a process that died: use it
                    raise
            # Unique: a process that still holds the room keeps its own controller.
            controller = f"spool-control-{uuid.uuid4().hex[:12]}"
            await session.message(
                control,
                {
                    "request": "join",
                    "room": self.room,
                    "id": controller,
                    "display": controller,
                    "group": GROUP_ALL,
                    "muted": True,
                },
            )
        except BaseException:
            await self._teardown()
            raise
        # Events that came meanwhile were queued: from here on they go to on_event, in order.
        self._dispatch_task = asyncio.create_task(self._dispatch(session))

    async def join(
        self, display: str, offer: dict[str, Any], *, muted: bool = False, codec: str = "opus"
    ) -> dict[str, Any]:
        """Add a WebRTC leg from its SDP offer ({"type", "sdp"}); returns Janus's answer (its
        candidates inside). A leg already here under `display` is replaced. Raises
        JanusError."""
        body: dict[str, Any] = {"muted": muted}
        if codec != "opus":
            body["codec"] = codec
        _, jsep = await self._join(display, body, offer)
        if jsep is None:
            raise JanusError(INVALID_SDP, "Janus did not answer the offer")
        return {"type": jsep["type"], "sdp": jsep["sdp"]}

    async def join_rtp(
        self, display: str, host: str, port: int, codec: str = "pcma", *, muted: bool = False
    ) -> tuple[str, int]:
        """Add a plain-RTP leg (G.711, 20 ms packets) that receives the mix at host:port;
        returns where Janus takes its RTP. Janus sends only once it has received a packet, and
        only takes packets from host:port. Raises JanusError, ValueError for another codec."""
        if codec not in ("pcma", "pcmu"):
            raise ValueError(f"plain-RTP legs are pcma or pcmu, not {codec!r}")
        body = {"muted": muted, "codec": codec, "rtp": {"ip": host, "port": port}}
        data, _ = await self._join(display, body, None)
        rtp = data.get("rtp") or {}
        if "ip" not in rtp or "port" not in rtp:
            raise JanusError(-1, f"Janus gave no RTP address: {data}")
        return str(rtp["ip"]), int(rtp["port"])

    async def join_offering(self, display: str, codec: str = "pcma") -> dict[str, Any]:
        """Add a leg that Janus offers ({"type": "offer", "sdp"}): for a gateway that needs an
        offer to call out (a phone leg: apps/automation/sip.py). complete_leg() takes the answer.
        Raises JanusError."""
        _, jsep = await self._join(display, {"codec": codec, "generate_offer": True}, None)
        if jsep is None:
            raise JanusError(INVALID_SDP, "Janus made no offer")
        return {"type": jsep["type"], "sdp": static_payload_type(jsep["sdp"], codec)}

    async def complete_leg(self, display: str, answer: dict[str, Any]) -> None:
        """The answer to a join_offering() leg's offer. Raises JanusError."""
        leg = self._leg(display)
        await self._live().message(leg.handle, {"request": "configure"}, answer)

    async def trickle(self, display: str, candidate: dict[str, Any] | None) -> None:
        """Pass one of a WebRTC leg's ICE candidates ({"candidate", "sdpMid",
        "sdpMLineIndex"}); None when it has no more. Candidates of unknown legs are dropped."""
        leg = self._legs.get(display)
        if leg is None:
            return
        await self._live().janus(
            "trickle", handle_id=leg.handle, candidate=candidate or {"completed": True}
        )

    async def leave(self, display: str) -> None:
        """Take a leg out of the room (no participantLeft follows). Unknown legs are fine."""
        leg = self._legs.pop(display, None)
        if leg is None or self._session is None:
            return
        await self._close_side(leg)
        with contextlib.suppress(JanusError):  # it may be gone already
            await self._session.message(leg.handle, {"request": "leave"})
        with contextlib.suppress(JanusError):
            await self._session.detach(leg.handle)

    async def mute(self, display: str, muted: bool) -> None:
        """Keep a leg's audio out of the mix (it still hears the room), or let it back in."""
        leg = self._leg(display)
        leg.muted = muted
        if leg.side is not None:  # heard through its link, if at all
            await leg.side.mute(self._live(), muted)
            return
        await self._request({"request": "mute" if muted else "unmute", "id": leg.id})

    async def play(
        self, path: Path, file_id: str, *, loop: bool = False, to: str | None = None
    ) -> None:
        """Play an Ogg Opus file (mono, 20 ms frames: apps/automation/audio.py makes them)
        into the mix, for everyone, or `to` one leg set aside; `file_id` names it in events
        and stop_play(). Raises JanusError if Janus cannot read the file, the id is playing
        already or the leg is not set aside."""
        session = self._live()
        assert self._control is not None
        room, group = self.room, GROUP_ALL
        if to is not None:
            side = self._leg(to).side
            if side is None:
                raise JanusError(NO_SUCH_USER, f"{to} is not set aside")
            room, group = side.room, GROUP_LINK
        if file_id in self._playing:
            raise JanusError(ID_EXISTS, f"{file_id!r} is playing already")
        self._playing[file_id] = False  # before the request: its events may come first
        self._play_rooms[file_id] = room
        try:
            await session.message(
                self._control,
                {
                    "request": "play_file",
                    "room": room,
                    "file_id": file_id,
                    "filename": str(Path(path).absolute()),
                    "loop": loop,
                    "group": group,
                },
            )
        except BaseException:
            self._playing.pop(file_id, None)
            self._play_rooms.pop(file_id, None)
            raise

    async def stop_play(self, file_id: str) -> None:
        """Stop a prompt; playStopped follows (once) unless it had ended. Raises JanusError."""
        session = self._live()
        if file_id not in self._playing:
            return  # ended already
        assert self._control is not None
        room = self._play_rooms.get(file_id, self.room)
        await session.message(
            self._control, {"request": "stop_file", "room": room, "file_id": file_id}
        )
        # Janus says "announcement-stopped" only for a file its mixer had started; anything it
        # did say came before its answer. This marker, queued behind it, ends the others.
        session.events.put_nowait({"spool": "stopped", "file_id": file_id})

    async def start_recording(self, path_without_ext: Path) -> Path:
        """Record the mix (mono 16-bit PCM at the room's rate) to `path_without_ext` + ".wav",
        which Janus must be able to write; returns that path once Janus has opened it. A
        recording in progress is stopped first. Raises JanusError."""
        target = Path(path_without_ext)
        if not target.is_absolute():
            target = (self._record_dir or Path.cwd()) / target
        wav = target.with_name(target.name + ".wav")
        if len(str(wav).encode()) + len(RECORDING_TMP_EXT) > MAX_PATH:
            raise ValueError(f"the recording path is too long for Janus: {wav}")
        if self._recording is not None:
            await self.stop_recording()
        await self._request(
            {
                "request": "enable_recording",
                "record": True,
                "record_dir": str(wav.parent),
                "record_file": wav.name,
            }
        )
        self._recording = wav
        # The mixer opens the file on its next 20 ms tick: stopping before then would leave
        # no file at all, and starting anew before the last one closed would append to it.
        await self._until(lambda: _partial(wav).exists() or wav.exists(), f"{wav} to open")
        return wav

    async def stop_recording(self) -> Path | None:
        """Stop recording; returns the WAV once Janus has closed it (None if there was no
        recording). Raises JanusError, also if the file does not appear in time."""
        wav = self._recording
        if wav is None:
            return None
        await self._request({"request": "enable_recording", "record": False})
        self._recording = None
        await self._until(lambda: wav.exists() and not _partial(wav).exists(), f"{wav} to close")
        return wav

    @property
    def leg_recordings(self) -> dict[str, Path]:
        """The legs whose own audio is being recorded, and to which .mjr file."""
        return {leg.display: leg.recording for leg in self._legs.values() if leg.recording}

    async def start_leg_recording(self, display: str, path_without_ext: Path) -> Path:
        """Record one leg's own audio, as it arrives (before the mix, in its codec: Opus or
        G.711), to `path_without_ext` + "-audio.mjr", a Janus recording that janus-pp-rec
        converts; returns that path. The file holds only packets the mix took (none while the
        leg is muted; the RTP timestamps keep the gaps). It closes with stop_leg_recording(),
        or when the leg leaves. Raises JanusError (also for an unknown leg)."""
        leg = self._leg(display)
        target = Path(path_without_ext)
        if not target.is_absolute():
            target = (self._record_dir or Path.cwd()) / target
        mjr = target.with_name(target.name + "-audio.mjr")
        if len(str(mjr).encode()) > MAX_PATH:
            raise ValueError(f"the recording path is too long for Janus: {mjr}")
        if leg.recording is not None:
            await self.stop_leg_recording(display)
        await self._live().message(
            leg.handle, {"request": "configure", "record": True, "filename": str(target)}
        )
        leg.recording = mjr
        return mjr

    async def stop_leg_recording(self, display: str) -> Path | None:
        """Stop recording a leg's audio; returns its .mjr, closed once Janus has answered (None
        if the leg was not recorded or is gone: Janus closed its file when it left). Raises
        JanusError."""
        leg = self._legs.get(display)
        if leg is None or leg.recording is None:
            return None
        mjr, leg.recording = leg.recording, None
        await self._live().message(leg.handle, {"request": "configure", "record": False})
        return mjr

    async def forward(
        self, host: str, port: int, *, display: str | None = None, codec: str = "pcma"
    ) -> str:
        """Send the mix (prompts included), or only one leg's audio, as RTP to host:port
        (pcma/pcmu: 8 kHz, 20 ms; opus: payload type 111); returns the forward's id for
        stop_forward(). At most four legs are forwarded apart at once (three with browsers).
        Raises JanusError."""
        if codec not in RTP_CODECS:
            raise ValueError(f"forwards are {', '.join(RTP_CODECS)}, not {codec!r}")
        self._live()
        group: str | None = None
        if display is not None:
            leg = self._leg(display)
            if leg.group == GROUP_ALL:
                taken = {other.group for other in self._legs.values()}
                taken |= {g for g in self._forwards.values() if g}
                free = [g for g in self._solo_groups if g not in taken]
                if not free:
                    apart = len(self._solo_groups)
                    raise JanusError(NO_SUCH_GROUP, f"{apart} legs are forwarded apart already")
                leg.group = free[0]  # taken now: a concurrent forward() picks another
                try:
                    await self._regroup(leg)
                except BaseException:
                    leg.group = GROUP_ALL
                    raise
            group = leg.group
        body: dict[str, Any] = {
            "request": "rtp_forward",
            "host": host,
            "port": port,
            "codec": codec,
            "ptype": RTP_CODECS[codec],
        }
        if group is not None:
            body["group"] = group
        data = await self._request(body)
        stream = str(data["stream_id"])
        self._forwards[stream] = group
        return stream

    async def stop_forward(self, forward_id: str) -> None:
        """Stop a forward; an unknown one is fine. Raises JanusError."""
        if forward_id not in self._forwards:
            return
        group = self._forwards.pop(forward_id)
        await self._request({"request": "stop_rtp_forward", "stream_id": int(forward_id)})
        if group is None or group in self._forwards.values():
            return
        for leg in self._legs.values():  # back in with everyone: its solo group is free
            if leg.group == group and self._session is not None:
                leg.group = GROUP_ALL
                with contextlib.suppress(JanusError):
                    await self._regroup(leg)

    async def set_aside(self, display: str, *, linked: bool) -> None:
        """Move a leg into a side room of its own, where play(..., to=display) reaches it
        alone. Linked, it still hears the call and the call hears it; unlinked (hold), it hears
        only its side room and nobody hears it. A leg set aside already stays as it is.
        Raises JanusError (the leg stays in the call's room)."""
        session = self._live()
        assert self._control is not None
        leg = self._leg(display)
        if leg.side is not None:
            return
        side = await SideRoom.open(
            session,
            self._control,
            self.room,
            leg.group,
            linked=linked,
            sampling_rate=self.sampling_rate,
        )
        try:
            await self._change_room(leg, side.room, GROUP_LEG)
        except BaseException:
            await side.close(session, self._control)
            raise
        leg.side = side
        if leg.muted:
            await side.mute(session, True)

    async def bring_back(self, display: str) -> None:
        """Bring a leg set aside back into the call's room; what played to it alone stops.
        Unknown legs, and legs not set aside, are fine. Raises JanusError."""
        leg = self._legs.get(display)
        if leg is None or leg.side is None:
            return
        await self._change_room(leg, self.room, leg.group)
        await self._close_side(leg)

    async def close(self) -> None:
        """Stop the recording, destroy the room (dropping every leg) and end the session.
        Failures are logged, not raised; calling it again does nothing."""
        if self._session is None:
            return
        if self._recording is not None:
            try:
                await self.stop_recording()
            except JanusError as error:
                logger.warning("stopping the recording of room %s: %s", self.room, error)
        for leg in list(self._legs.values()):
            await self._close_side(leg)
        if self._control is not None and not self._lost:
            try:
                await self._session.message(
                    self._control, {"request": "destroy", "room": self.room}
                )
            except JanusError as error:
                if error.code != NO_SUCH_ROOM:
                    logger.warning("destroying AudioBridge room %s: %s", self.room, error)
        await self._teardown()

    # --- internals ---------------------------------------------------------------------------
    def _live(self) -> _BridgeSession:
        if self._session is None or self._control is None or self._lost:
            raise JanusError(CONNECTION_LOST, f"AudioBridge room {self.room} is not open")
        return self._session

    def _leg(self, display: str) -> _Leg:
        leg = self._legs.get(display)
        if leg is None:
            raise JanusError(NO_SUCH_USER, f"{display} is not in room {self.room}")
        return leg

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A request of the room's own (create/destroy aside) on the control handle."""
        session = self._live()
        assert self._control is not None
        data, _ = await session.message(self._control, {**body, "room": self.room})
        return data

    async def _join(
        self, display: str, fields: dict[str, Any], offer: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        session = self._live()
        if display in self._legs:  # a new offer from the same participant: a new leg
            await self.leave(display)
        handle = await session.attach()
        leg = self._legs[display] = _Leg(display, uuid.uuid4().hex, handle)
        body = {
            "request": "join",
            "room": self.room,
            "id": leg.id,
            "display": display,
            "group": GROUP_ALL,
            **fields,
        }
        try:
            return await session.message(handle, body, offer)
        except BaseException:
            if self._legs.get(display) is leg:
                del self._legs[display]
            with contextlib.suppress(JanusError):
                await session.detach(handle)
            raise

    async def _change_room(self, leg: _Leg, room: str, group: str) -> None:
        # A new id in each room, taken before asking: the "leaving" of the old one (which may
        # come before the answer) then matches no leg.
        old_id, leg.id = leg.id, uuid.uuid4().hex
        try:
            await self._live().message(
                leg.handle,
                {
                    "request": "changeroom",
                    "room": room,
                    "id": leg.id,
                    "display": leg.display,
                    "group": group,
                    "muted": leg.muted and room == self.room,
                },
            )
        except BaseException:
            leg.id = old_id
            raise

    async def _close_side(self, leg: _Leg) -> None:
        side, leg.side = leg.side, None
        if side is None:
            return
        for file_id, room in list(self._play_rooms.items()):
            if room == side.room:  # it went with its room: Janus will not say so
                await self._played(file_id)
        if self._session is not None and self._control is not None and not self._lost:
            await side.close(self._session, self._control)
        else:
            for relay in side.relays:
                relay.close()

    async def _regroup(self, leg: _Leg) -> None:
        """Put a leg's voice in its forwarding group: the leg itself, or its link while it is
        set aside (a held leg has no voice in the call)."""
        if leg.side is not None:
            await leg.side.regroup(self._live(), leg.group)
        else:
            await self._live().message(leg.handle, {"request": "configure", "group": leg.group})

    def _heard_from(self, sender: Any, data: dict[str, Any]) -> bool:
        """Whose copy of a room event counts: the controller's for the call's room (legs'
        handles get copies too), a set-aside leg's for its side room."""
        if sender == self._control:
            return True
        for leg in self._legs.values():
            if leg.side is not None and leg.handle == sender:
                return str(data.get("room")) == leg.side.room
        return False

    async def _until(self, condition: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not condition():
            if loop.time() > deadline:
                raise JanusError(CONNECTION_LOST, f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def _keepalive(self, session: _BridgeSession) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await session.janus("keepalive")
            except JanusError as error:
                logger.warning("Janus keepalive for room %s failed: %s", self.room, error)
                if session.connection.lost:
                    return  # _dispatch has told the caller

    async def _dispatch(self, session: _BridgeSession) -> None:
        while True:
            message = await session.events.get()
            if self._session is not session:
                return  # closed, or open() started over
            if message is None or message.get("janus") == "timeout":
                self._lost = True
                reason = "connection to Janus lost" if message is None else "session timed out"
                await self._emit({"kind": "connectionLost", "reason": reason})
                return
            try:
                await self._handle(message)
            except JanusError as error:
                logger.warning("Janus event %s in room %s: %s", message, self.room, error)

    async def _handle(self, message: dict[str, Any]) -> None:
        if "spool" in message:  # our marker behind a stop_file answer
            await self._played(str(message["file_id"]))
            return
        kind, sender = message.get("janus"), message.get("sender")
        if kind in ("hangup", "detached"):  # a leg's PeerConnection (or handle) is gone
            for leg in list(self._legs.values()):
                if leg.handle == sender:
                    await self._gone(leg, str(message.get("reason") or kind))
            return
        if kind == "media" and message.get("type") == "audio":
            for leg in list(self._legs.values()):
                if leg.handle == sender:
                    receiving = bool(message.get("receiving"))
                    await self._emit(
                        {"kind": "mediaReceiving", "display": leg.display, "receiving": receiving}
                    )
            return
        data = message.get("plugindata", {}).get("data", {})
        if kind != "event" or not self._heard_from(sender, data):
            return
        event = data.get("audiobridge")
        if event == "announcement-started":
            file_id = str(data.get("file_id"))
            if self._playing.get(file_id) is False:  # a late start of a stopped file: no
                self._playing[file_id] = True
                await self._emit({"kind": "playStarted", "fileId": file_id})
        elif event == "announcement-stopped":
            await self._played(str(data.get("file_id")))
        elif event == "event" and ("leaving" in data or "kicked" in data):
            gone = str(data.get("leaving") or data.get("kicked"))
            for leg in list(self._legs.values()):
                if leg.id == gone:
                    await self._gone(leg, "leaving" if "leaving" in data else "kicked")
        elif event == "destroyed" and str(data.get("room")) == self.room:  # only in close()
            self._lost = True
            await self._emit({"kind": "connectionLost", "reason": "room destroyed"})

    async def _played(self, file_id: str) -> None:
        self._play_rooms.pop(file_id, None)
        if self._playing.pop(file_id, None) is not None:
            await self._emit({"kind": "playStopped", "fileId": file_id})

    async def _gone(self, leg: _Leg, reason: str) -> None:
        if self._legs.get(leg.display) is not leg:
            return  # left through leave(), or told already
        del self._legs[leg.display]
        await self._close_side(leg)
        if self._session is not None:
            with contextlib.suppress(JanusError):  # detached already, after "detached"
                await self._session.detach(leg.handle)
        await self._emit({"kind": "participantLeft", "display": leg.display, "reason": reason})

    async def _emit(self, event: dict[str, Any]) -> None:
        try:
            await self.on_event(event)
        except Exception:  # the caller's bug must not stop the events that follow
            logger.exception("on_event failed for %s", event.get("kind"))

    async def _teardown(self) -> None:
        session, self._session, self._control = self._session, None, None
        self._lost = False
        for leg in self._legs.values():
            if leg.side is not None:  # its room went with the session
                for relay in leg.side.relays:
                    relay.close()
        self._legs.clear()
        self._playing.clear()
        self._play_rooms.clear()
        self._forwards.clear()
        self._recording = None
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        dispatch, self._dispatch_task = self._dispatch_task, None
        if dispatch is not None and dispatch is not asyncio.current_task():
            # Let an on_event call in progress finish (cancelling it midway could leave the
            # caller's state half-changed); the dispatcher stops before the next event.
            if session is not None:
                session.events.put_nowait(None)
            await asyncio.wait([dispatch], timeout=self.timeout)
            dispatch.cancel()
        if session is not None:
            await session.destroy()


def _partial(wav: Path) -> Path:
    return wav.with_name(wav.name + RECORDING_TMP_EXT)


async def destroy_room(url: str, room: str, *, timeout: float = TIMEOUT) -> None:
    """Destroy an AudioBridge room (rooms outlive the session that made them: one left by a
    process that died stays until Janus restarts). A room that is not there is fine."""
    session = _BridgeSession(url, timeout)
    try:
        await session.create()
        handle = await session.attach()
        await session.message(handle, {"request": "destroy", "room": room})
    except JanusError as error:
        if error.code != NO_SUCH_ROOM:
            raise
    finally:
        await session.destroy()


async def room_exists(url: str, room: str, *, timeout: float = TIMEOUT) -> bool:
    session = _BridgeSession(url, timeout)
    try:
        await session.create()
        handle = await session.attach()
        data, _ = await session.message(handle, {"request": "exists", "room": room})
        return bool(data.get("exists"))
    finally:
        await session.destroy()


def static_payload_type(sdp: str, codec: str) -> str:
    """AudioBridge's offer names G.711 as payload type 111 (`a=rtpmap:111 PCMA/8000`) but its
    packets carry G.711's static type (8 or 0): a far end that keeps to the SDP (a browser
    behind Janus's SIP plugin) drops them. The offer is made to say what is sent."""
    static = RTP_CODECS.get(codec)
    offered = re.search(r"^a=rtpmap:(\d+) PCM[AU]/8000", sdp, re.MULTILINE)
    if codec not in ("pcma", "pcmu") or offered is None or int(offered.group(1)) == static:
        return sdp
    dynamic, lines = offered.group(1), []
    for line in sdp.split("\n"):
        if line.startswith("m=audio "):
            words = line.rstrip("\r").split(" ")
            end = "\r" if line.endswith("\r") else ""
            line = (
                " ".join(words[:3] + [str(static) if w == dynamic else w for w in words[3:]]) + end
            )
        else:
            line = re.sub(rf"^a=(rtpmap|fmtp|rtcp-fb):{dynamic}\b", rf"a=\1:{static}", line)
        lines.append(line)
    return "\n".join(lines)
