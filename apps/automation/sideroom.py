"""A leg's side room: where one participant hears what the rest of the call does not (a prompt
played to it alone, hold music). AudioBridgeRoom.set_aside() and bring_back() drive it.

AudioBridge plays a file to a whole room, and a participant hears exactly one room's mix. So
the leg moves (`changeroom`: same PeerConnection, no renegotiation) into a room of its own.
When it stays in the conversation (`linked`), two plain-RTP "link" participants, one in each
room, carry the conversation across through this process:

    main room                          this process                         side room
    link (the leg's group) ---- main mix minus link ---> relayed ---> link (group "link")
    link <--- relayed <---- rtp_forward of group "leg" (the leg's voice, no prompt) ---- leg

The link in the main room hears the main mix minus itself (everybody but the leg) and speaks
with the leg's voice; the side room's forward of group "leg" carries that voice without the
prompts, which play in group "link". The link takes the leg's forwarding group in the main
room, so recognizers, media streams and recordings keep hearing the leg. An unlinked side room
(hold) has no links: its leg hears only what plays there, and nobody hears it.

Packets are relayed as they are (Opus, payload type 111): no decoding here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from apps.calls.sfu import JanusError

if TYPE_CHECKING:
    from apps.calls.sfu import _Session

logger = logging.getLogger(__name__)

RELAY_HOST = "127.0.0.1"  # Janus runs beside the media process (as apps/automation/streaming.py)
GROUP_LEG = "leg"
GROUP_LINK = "link"
LINK_PT = 111  # Opus


class _Relay(asyncio.DatagramProtocol):
    """One UDP socket of this process, bound to loopback. What it receives goes out through
    `out` to that relay's Janus peer; a relay with a peer of its own takes packets from that
    peer only (the link's socket in Janus)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.out: _Relay | None = None
        self.peer: tuple[str, int] | None = None  # where Janus takes this socket's packets

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        out = self.out
        if out is None or (self.peer is not None and tuple(addr[:2]) != self.peer):
            return
        if out.transport is not None and out.peer is not None:
            out.transport.sendto(data, out.peer)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _same(relay: _Relay) -> _Relay:
    return relay


@dataclass
class SideRoom:
    """One leg's side room, and its links when `linked`."""

    room: str
    linked: bool
    link_handles: list[int] = field(default_factory=list)  # main-room link, side-room link
    main_link_id: str = ""
    relays: list[_Relay] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        session: _Session,
        control: int,
        main_room: str,
        main_group: str,
        *,
        linked: bool,
        sampling_rate: int,
    ) -> SideRoom:
        """Create the side room (and its links). Raises JanusError; leaves nothing behind."""
        side = cls(f"{main_room}~{uuid.uuid4().hex[:12]}", linked)
        try:
            await session.message(
                control,
                {
                    "request": "create",
                    "room": side.room,
                    "permanent": False,
                    "is_private": True,
                    "sampling_rate": sampling_rate,
                    "allow_rtp_participants": True,
                    "audiolevel_event": False,
                    "groups": [GROUP_LEG, GROUP_LINK],
                },
            )
            if linked:
                await side._link(session, control, main_room, main_group)
        except BaseException:
            await side.close(session, control)
            raise
        return side

    async def _link(self, session: _Session, control: int, main_room: str, main_group: str) -> None:
        loop = asyncio.get_running_loop()
        main, side, voice = _Relay(), _Relay(), _Relay()
        self.relays = [main, side, voice]
        for relay in self.relays:
            await loop.create_datagram_endpoint(
                functools.partial(_same, relay), local_addr=(RELAY_HOST, 0)
            )
        main.out, voice.out = side, main  # the conversation in; the leg's voice out
        self.main_link_id = f"spool-link-{uuid.uuid4().hex[:12]}"
        main.peer = await self._join_link(session, main_room, main_group, main.port)
        side.peer = await self._join_link(session, self.room, GROUP_LINK, side.port)
        await session.message(
            control,
            {
                "request": "rtp_forward",
                "room": self.room,
                "group": GROUP_LEG,
                "host": RELAY_HOST,
                "port": voice.port,
                "codec": "opus",
                "ptype": LINK_PT,
            },
        )

    async def _join_link(
        self, session: _Session, room: str, group: str, port: int
    ) -> tuple[str, int]:
        handle = await session.attach()
        self.link_handles.append(handle)
        link_id = self.main_link_id if room != self.room else f"spool-link-{uuid.uuid4().hex[:12]}"
        data, _ = await session.message(
            handle,
            {
                "request": "join",
                "room": room,
                "id": link_id,
                "display": link_id,
                "group": group,
                "codec": "opus",
                "rtp": {"ip": RELAY_HOST, "port": port, "payload_type": LINK_PT},
            },
        )
        rtp = data.get("rtp") or {}
        if "ip" not in rtp or "port" not in rtp:
            raise JanusError(-1, f"Janus gave no RTP address for a link: {data}")
        return str(rtp["ip"]), int(rtp["port"])

    async def regroup(self, session: _Session, group: str) -> None:
        """The leg's forwarding group in the main room changed: its link follows."""
        if self.linked and self.link_handles:
            await session.message(self.link_handles[0], {"request": "configure", "group": group})

    async def mute(self, session: _Session, muted: bool) -> None:
        """Keep the leg's voice out of the main mix (its link's), or let it back in."""
        if self.linked and self.link_handles:
            await session.message(self.link_handles[0], {"request": "configure", "muted": muted})

    async def close(self, session: _Session, control: int) -> None:
        """Drop the links and destroy the side room; failures are logged, not raised."""
        for relay in self.relays:
            relay.close()
        for handle in self.link_handles:
            with contextlib.suppress(JanusError):
                await session.message(handle, {"request": "leave"})
            with contextlib.suppress(JanusError):
                await session.detach(handle)
        self.link_handles.clear()
        try:
            await session.message(control, {"request": "destroy", "room": self.room})
        except JanusError as error:
            logger.info("destroying side room %s: %s", self.room, error)
