"""apps.automation.sip against a real Janus (its SIP plugin and AudioBridge) and sipp playing a trunk's
far end on loopback: a phone leg in a call's room, audio both ways, and a busy number."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip import PhoneCall, Trunk
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    has_tone,
    janus_url,
    joined,
    tools,
    until,
)
from tests.automation.tones import require_tool

SCENARIOS = Path(__file__).parent / "sipp"
PHONE = "4:+15550001111"


@pytest.fixture
def far_end(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Starts sipp on 127.0.0.1 running a scenario of tests/pstn/sipp (echoing the audio it
    receives, with `echo`); returns its SIP port. Stopped (by PID) after the test."""
    require_tool("sipp")
    processes: list[subprocess.Popen[bytes]] = []

    def start(scenario: str = "uas_echo.xml", *, echo: bool = True) -> int:
        for _ in range(5):  # a port free a moment ago may be taken by the time sipp binds it
            port, media_port = free_udp_port(), free_udp_port()
            command = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1"]
            command += ["-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port)]
            command += ["-m", "1", "-nostdin"] + (["-rtp_echo"] if echo else [])
            command += ["-trace_msg", "-message_file", str(tmp_path / f"sipp-{port}.log")]
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path
            )
            processes.append(process)
            deadline = time.monotonic() + 10
            # An INVITE sent before sipp listens is lost; a sipp that could not bind exits.
            while process.poll() is None and not udp_bound(port):
                assert time.monotonic() < deadline, "sipp did not start"
                time.sleep(0.02)
            time.sleep(0.1)
            if process.poll() is None:
                return port
        raise AssertionError("sipp could not bind its ports")

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def udp_bound(port: int) -> bool:
    """Whether a UDP socket on this machine is bound to `port` (Linux's /proc/net/udp)."""
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(f":{port:04X}") for line in lines)


class PhoneEvents(Events):
    """Events of a phone call; on "answered", the room takes the answer."""

    def __init__(self, room: AudioBridgeRoom) -> None:
        super().__init__()
        self.room = room

    async def __call__(self, event: dict[str, Any]) -> None:
        await super().__call__(event)
        if event["kind"] == "answered":
            await self.room.complete_leg(PHONE, event["answer"])


@pytest.mark.timeout(40)
async def test_a_phone_leg_joins_the_room_and_audio_flows_both_ways(
    janus_url: str,  # noqa: F811
    far_end: Callable[..., int],
) -> None:
    # given a call's room with alice (440 Hz) in it, and a trunk whose far end echoes
    trunk = Trunk("127.0.0.1", far_end("uas_echo.xml"))
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)

        # when a phone on the trunk is called into it (the far end echoes what it hears)
        offer = await room.join_offering(PHONE)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial("+15550001111", "+15559990000", offer, trunk)
        await events.wait(kind="ringing", timeout=10)
        await events.wait(kind="answered", timeout=10)
        assert phone.sip_call_id

        # then alice hears her own tone back through the phone: the room reached the phone
        # and the phone reached the room
        await asyncio.sleep(1.0)
        start = len(alice.received)
        await until(lambda: len(alice.received) > start + PEER_RATE, 10, "audio from the phone")
        assert has_tone(alice.received[start:], PEER_RATE, 440)

        # when the call is hung up here, the far end gets its BYE and the call ends once
        await phone.hang_up()
        ended = await events.wait(kind="ended", timeout=10)
        assert ended["code"] in (200, 487) or ended["code"] < 300
        assert [e["kind"] for e in events.items].count("ended") == 1
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(30)
async def test_a_busy_number_ends_the_call_with_486(
    janus_url: str,  # noqa: F811
    far_end: Callable[..., int],
) -> None:
    trunk = Trunk("127.0.0.1", far_end("uas_busy.xml", echo=False))
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        offer = await room.join_offering(PHONE)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial("+15550001111", "+15559990000", offer, trunk)
        ended = await events.wait(kind="ended", timeout=10)
        assert ended["code"] == 486
        assert not events.of("answered")
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
