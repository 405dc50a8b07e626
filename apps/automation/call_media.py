"""What the media process (apps/automation/media.py) keeps of one bridged call
(CallMedia), and the error a play source that cannot be played raises (PlayFailure)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from apps.automation import streaming
from apps.automation.bridge import AudioBridgeRoom
from apps.automation.room_bridge import RoomBridge
from apps.automation.sip import PhoneCall


class PlayFailure(Exception):
    def __init__(self, result: tuple[int, int, str], index: int = 0) -> None:
        super().__init__(result[2])
        self.result = result
        self.index = index


@dataclass
class CallMedia:
    """One bridged call on this process: its room, the legs in it, its running operation."""

    call_id: str
    room: AudioBridgeRoom
    server: str = ""  # the Janus the call is on (its room, bridge and phone legs)
    legs: dict[str, str] = field(default_factory=dict)  # raw id -> socket channel name
    opened: bool = False
    runner: asyncio.Task[None] | None = None
    current: asyncio.Task[None] | None = None
    tones: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    playing: dict[str, asyncio.Event] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # raw id -> its hold music's file id
    recording_id: str = ""
    recording_segment: Path | None = None
    recording_unmixed: bool = False  # the segment is each leg's own .mjr, not the mix
    streams: dict[str, streaming.MediaStream] = field(default_factory=dict)  # by subscription
    phones: dict[str, PhoneCall] = field(default_factory=dict)  # phone legs, by raw id
    # Answered phones whose audio stopped: the task that gives each up unless it comes back.
    silences: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    early: set[str] = field(default_factory=set)  # legs kept out of the mix during early media
    in_sfu: bool = False  # a group call's: its browsers are in the VideoRoom, bridged here
    bridge: RoomBridge | None = None  # that bridge, once open
