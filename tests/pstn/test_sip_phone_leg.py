"""apps.automation.sip against a real Janus (its SIP plugin and AudioBridge) and sipp playing a
trunk's far end on loopback: a phone leg in a call's room with audio both ways, a busy number,
early media (183 with SDP) that the room hears while the phone rings, DTMF both ways as SIP
INFO, and a trunk that vanishes mid-call. tests/pstn/test_phone_failover.py tries trunks in
turn."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip import PhoneCall, Trunk, trunk_ended
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    has_tone,
    hears,
    janus_url,
    joined,
    tools,
    until,
)
from tests.automation.tones import require_tool
from tests.pstn.rtp_pcap import write_tone

SCENARIOS = Path(__file__).parent / "sipp"
PHONE = "4:+15550001111"
RINGBACK = 425.0  # Hz, the far end's early media in uas_early_media.xml


class FarEnds:
    """Starts sipp on 127.0.0.1 running a scenario of tests/pstn/sipp (echoing the audio it
    receives, with `echo`) in `folder` (where its pcaps are); returns its SIP port. Every sipp
    is stopped (by PID) after the test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def __call__(self, scenario: str = "uas_echo.xml", *, echo: bool = True) -> int:
        require_tool("sipp")
        for _ in range(5):  # a port free a moment ago may be taken by the time sipp binds it
            port, media_port = free_udp_port(), free_udp_port()
            command = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1"]
            command += ["-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port)]
            command += ["-m", "1", "-nostdin"] + (["-rtp_echo"] if echo else [])
            command += ["-trace_msg", "-message_file", str(self.log(port))]
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
            )
            self.processes[port] = process
            deadline = time.monotonic() + 10
            # An INVITE sent before sipp listens is lost; a sipp that could not bind exits.
            while process.poll() is None and not udp_bound(port):
                assert time.monotonic() < deadline, "sipp did not start"
                time.sleep(0.02)
            time.sleep(0.1)
            if process.poll() is None:
                return port
        raise AssertionError("sipp could not bind its ports")

    def log(self, port: int) -> Path:
        """The SIP messages the sipp on `port` sent and received."""
        return self.folder / f"sipp-{port}.log"

    def kill(self, port: int) -> None:
        """The far end vanishes: no BYE, no RTP, and its ports closed."""
        self.processes[port].kill()
        self.processes[port].wait()

    def pause(self, port: int) -> None:
        """The far end falls silent without a word: no BYE, no RTP, and no ICMP refusal (its
        ports stay bound), as behind a broken link. stop() ends it."""
        os.kill(self.processes[port].pid, signal.SIGSTOP)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)  # in case a test paused it
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def far_end(tmp_path: Path) -> Iterator[FarEnds]:
    far_ends = FarEnds(tmp_path)
    yield far_ends
    far_ends.stop()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def udp_bound(port: int) -> bool:
    """Whether a UDP socket on this machine is bound to `port` (Linux's /proc/net/udp)."""
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(f":{port:04X}") for line in lines)


class PhoneEvents(Events):
    """Events of a phone call, each with the time it came; the room takes the phone's answer
    (from early media, or from the answer)."""

    def __init__(self, room: AudioBridgeRoom) -> None:
        super().__init__()
        self.room = room
        self.times: dict[str, float] = {}

    async def __call__(self, event: dict[str, Any]) -> None:
        await super().__call__(event)
        self.times.setdefault(event["kind"], time.monotonic())
        if event["kind"] in ("early_media", "answered") and "answer" in event:
            await self.room.complete_leg(PHONE, event["answer"])

    def kinds(self) -> list[str]:
        return [event["kind"] for event in self.items]


@pytest.mark.timeout(40)
async def test_a_phone_leg_joins_the_room_and_audio_flows_both_ways(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,
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
        await phone.dial("+15550001111", "+15559990000", offer, [trunk])
        trying = await events.wait(kind="trying", timeout=10)
        await events.wait(kind="ringing", timeout=10)
        await events.wait(kind="answered", timeout=10)
        assert trying["trunk"] == 0 and trying["sipCallId"] == phone.sip_call_id != ""

        # then alice hears her own tone back through the phone: the room reached the phone
        # and the phone reached the room
        await hears(alice, 440, timeout=10)

        # when the call is hung up here, the far end gets its BYE and the call ends once
        await phone.hang_up()
        ended = await events.wait(kind="ended", timeout=10)
        assert ended["code"] == 0 and ended["subCode"] == 560000
        assert events.kinds() == ["trying", "ringing", "answered", "ended"]
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(30)
async def test_a_busy_number_ends_the_call_with_486(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,
) -> None:
    trunk = Trunk("127.0.0.1", far_end("uas_busy.xml", echo=False))
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        offer = await room.join_offering(PHONE)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial("+15550001111", "+15559990000", offer, [trunk])
        ended = await events.wait(kind="ended", timeout=10)
        assert (ended["code"], ended["subCode"], ended["reason"]) == (
            486,
            560486,
            "The phone is busy.",
        )
        assert not events.of("answered")
    finally:
        if phone is not None:
            await phone.close()
        await room.close()


@pytest.mark.timeout(40)
async def test_early_media_reaches_the_room_while_the_phone_still_rings(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,
    tmp_path: Path,
) -> None:
    # given a room with alice in it, and a far end that answers the INVITE with 183 Session
    # Progress with SDP, plays a ringback tone for 4 s, then answers (200 OK, same SDP)
    write_tone(tmp_path / "ringback.pcap", RINGBACK, 4.0)
    trunk = Trunk("127.0.0.1", far_end("uas_early_media.xml", echo=False))
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)
        offer = await room.join_offering(PHONE)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)

        # when the phone is called
        await phone.dial("+15550001111", "+15559990000", offer, [trunk])

        # then early media completes the leg, and alice hears the ringback before any answer
        await events.wait(kind="early_media", timeout=10)
        await hears(alice, RINGBACK, timeout=4)
        assert not events.of("answered") and not phone.answered

        # and the phone is answered only at the 200, which brings no second answer
        answered = await events.wait(kind="answered", timeout=10)
        assert "answer" not in answered and phone.answered
        assert events.times["answered"] - events.times["early_media"] > 3
        assert events.kinds() == ["trying", "early_media", "answered"]
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(40)
async def test_keys_pressed_on_the_phone_and_sent_to_it_go_as_sip_info(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,
) -> None:
    # given an answered phone that presses 5 and # (SIP INFO, application/dtmf-relay)
    port = far_end("uas_dtmf.xml", echo=False)
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial(
            "+15550001111",
            "+15559990000",
            await room.join_offering(PHONE),
            [Trunk("127.0.0.1", port)],
        )
        await events.wait(kind="answered", timeout=10)

        # then its keys come as dtmf events, in order
        await until(lambda: len(events.of("dtmf")) == 2, 10, "two keys")
        assert [event["tone"] for event in events.of("dtmf")] == ["5", "#"]

        # when keys are sent to it, each goes as one SIP INFO
        await phone.send_dtmf("9*")
        await phone.hang_up()
        await events.wait(kind="ended", timeout=10)
        log = far_end.log(port).read_text()
        assert "Signal=9" in log and "Signal=*" in log  # (it sent 5 and #)
    finally:
        if phone is not None:
            await phone.close()
        await room.close()


@pytest.mark.timeout(40)
async def test_a_trunk_that_vanishes_mid_call_ends_it_as_a_silent_line(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,
) -> None:
    # given an answered phone, audio flowing both ways
    port = far_end("uas_echo.xml")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial(
            "+15550001111",
            "+15559990000",
            await room.join_offering(PHONE),
            [Trunk("127.0.0.1", port)],
        )
        await events.wait(kind="answered", timeout=10)
        await hears(alice, 440, timeout=10)

        # when the far end vanishes (no BYE; its RTP stops and its ports close)
        far_end.kill(port)
        gone = time.monotonic()

        # then the call ends within seconds, as a silent line, once
        ended = await events.wait(kind="ended", timeout=15)
        assert (ended["code"], ended["reason"]) == (408, "The phone line went silent.")
        assert events.times["ended"] - gone < 10
        await asyncio.sleep(1)
        assert events.kinds().count("ended") == 1
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


def test_sip_statuses_map_to_acs_end_codes() -> None:
    # the trunk's status is the code, 560000 + status the subCode, as ACS direct routing
    assert trunk_ended(200) == trunk_ended(0)
    assert (trunk_ended(200).code, trunk_ended(200).sub_code) == (0, 560000)
    for status, message in [
        (486, "The phone is busy."),
        (600, "The phone is busy."),
        (480, "The phone did not answer."),
        (408, "The phone did not answer."),
        (603, "The phone declined the call."),
        (404, "The phone number does not exist."),
        (604, "The phone number does not exist."),
        (503, "The phone network could not be reached."),
        (502, "The phone network failed."),
        (415, "The trunk refused the call."),
    ]:
        reason = trunk_ended(status)
        assert (reason.code, reason.sub_code, reason.message) == (status, 560000 + status, message)
