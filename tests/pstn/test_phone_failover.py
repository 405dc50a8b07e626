"""A phone call tries its route's trunks in turn: a trunk that fails before the phone rings (503,
an address nothing listens on, no word within the setup time) passes the call to the next;
the phone's own answers (busy) do not. Then the media process end to end with a real Janus and
sipp: the trunk it used is recorded, early media leaves the call ringing until the 200, keys
go both ways, and a trunk that vanishes mid-call (its ports closed, or silent behind a broken
link) ends the call and leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.media import MediaProcess
from apps.automation.sip import PhoneCall, Trunk
from apps.calls.models import Call, CallParticipant
from apps.pstn.models import SipRoute, SipTrunk
from tests.automation.conftest import empty_media_channel, media_message  # noqa: F401
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    hears,
    janus_url,
    joined,
    tools,
    until,
)
from tests.calls.conftest import close_thread_connections, connect  # noqa: F401 (fixtures)
from tests.pstn.rtp_pcap import write_tone
from tests.pstn.test_phone_calls import PHONE, invite, owned  # noqa: F401 (owned: a fixture)
from tests.pstn.test_sip_phone_leg import (
    RINGBACK,
    FarEnds,
    PhoneEvents,
    far_end,  # noqa: F401 (a fixture)
    free_udp_port,
)

RAW_PHONE = f"4:{PHONE}"


@pytest.fixture
def silent_trunk() -> Iterator[int]:
    """A port that takes every packet and answers none (a trunk behind a dead link: no ICMP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield int(sink.getsockname()[1])


async def call_through(
    url: str, room: AudioBridgeRoom, ports: list[int], **options: Any
) -> tuple[PhoneCall, PhoneEvents]:
    events = PhoneEvents(room)
    phone = PhoneCall(url, events, **options)
    trunks = [Trunk("127.0.0.1", port) for port in ports]
    await phone.dial("+15550001111", "+15559990000", await room.join_offering(RAW_PHONE), trunks)
    return phone, events


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", ["out of service", "nothing listening", "silent"])
async def test_a_trunk_that_fails_before_the_phone_rings_passes_the_call_to_the_next(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    silent_trunk: int,
    first: str,
) -> None:
    # given a route whose first trunk fails (a 503; a closed port; no answer at all) and whose
    # second reaches a phone that echoes, in a room with alice (440 Hz)
    down = {
        "out of service": lambda: far_end("uas_unavailable.xml", echo=False),
        "nothing listening": free_udp_port,
        "silent": lambda: silent_trunk,
    }[first]()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)

        # when the phone is called through the route
        started = time.monotonic()
        phone, events = await call_through(
            janus_url, room, [down, far_end("uas_echo.xml")], setup_seconds=2
        )

        # then the second trunk takes it: it rings, is answered, and alice hears her echo
        await events.wait(kind="answered", timeout=15)
        assert [e["trunk"] for e in events.of("trying")] == [0, 1]
        assert events.kinds() == ["trying", "trying", "ringing", "answered"]
        assert phone.trunk is not None and phone.trunk.port != down
        if first == "silent":  # given up after the setup time, not SIP's own 32 s
            assert 2 <= events.times["answered"] - started < 10
        await hears(alice, 440, timeout=10)
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(40)
async def test_the_phones_own_answer_ends_the_call_without_trying_another_trunk(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
) -> None:
    # given a route whose first trunk says the phone is busy
    busy, spare = far_end("uas_busy.xml", echo=False), far_end("uas_echo.xml")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        # when the phone is called, the call ends busy, and the second trunk sees nothing
        phone, events = await call_through(janus_url, room, [busy, spare])
        ended = await events.wait(kind="ended", timeout=10)
        assert (ended["code"], ended["subCode"]) == (486, 560486)
        assert events.kinds() == ["trying", "ended"]
        assert not far_end.log(spare).exists() or "INVITE" not in far_end.log(spare).read_text()
    finally:
        if phone is not None:
            await phone.close()
        await room.close()


@pytest.mark.timeout(40)
async def test_when_every_trunk_fails_the_call_ends_with_the_last_ones_status(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
) -> None:
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        phone, events = await call_through(
            janus_url, room, [free_udp_port(), far_end("uas_unavailable.xml", echo=False)]
        )
        ended = await events.wait(kind="ended", timeout=15)
        assert (ended["code"], ended["subCode"]) == (503, 560503)
        assert events.kinds() == ["trying", "trying", "ended"]
    finally:
        if phone is not None:
            await phone.close()
        await room.close()


# --- the media process, end to end ------------------------------------------------------------
@pytest.fixture
def route(resource: Any) -> list[SipTrunk]:
    """Two enabled trunks (ports set by the test) and a route of every +1 number to them."""
    trunks = [
        SipTrunk.objects.create(
            resource=resource, fqdn=fqdn, signaling_port=5060, enabled=True, address="127.0.0.1"
        )
        for fqdn in ("down.carrier.test", "up.carrier.test")
    ]
    SipRoute.objects.create(
        resource=resource,
        position=0,
        name="us",
        number_pattern=r"^\+1\d{10}$",
        trunks=[trunk.fqdn for trunk in trunks],
    )
    return trunks


async def ports(trunks: list[SipTrunk], *numbers: int) -> None:
    for trunk, port in zip(trunks, numbers, strict=True):
        await database_sync_to_async(SipTrunk.objects.filter(pk=trunk.pk).update)(
            signaling_port=port
        )


async def placed_call(connect: Any, owned: Any) -> tuple[Any, dict[str, Any]]:  # noqa: F811
    """A client calling the phone; the media process's dial message."""
    caller = await connect()
    dialing = asyncio.ensure_future(media_message("dial"))
    await asyncio.sleep(0.1)
    invited = await invite(caller, alternateCallerId={"phoneNumber": owned.number})
    assert invited["type"] == "call.invited", invited
    await caller.until(type="call", event="stateChanged", state="Ringing")
    return caller, await dialing


def leg_of(call_id: str) -> CallParticipant:
    return CallParticipant.objects.get(call_id=call_id, raw_id=RAW_PHONE)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_the_media_process_fails_over_rings_with_early_media_and_ends_a_vanished_call(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    connect: Any,  # noqa: F811
    owned: Any,  # noqa: F811
    route: list[SipTrunk],
    tmp_path: Path,
    settings: Any,
) -> None:
    # given a route whose first trunk nothing listens on, and whose second plays early media
    # for 4 s before the phone answers
    settings.RECORDINGS_DIR = tmp_path
    write_tone(tmp_path / "ringback.pcap", RINGBACK, 4.0)
    up = far_end("uas_early_media.xml", echo=False)
    await ports(route, free_udp_port(), up)
    process = MediaProcess(janus_url)
    caller, dial = await placed_call(connect, owned)
    call_id = dial["call"]
    try:
        # when the media process dials
        await process.handle(dial)

        # then the call goes out through the second trunk, which the call log keeps
        media = process.calls[call_id]
        phone = media.phones[RAW_PHONE]
        await until(lambda: phone.trunk is not None and phone.trunk.port == up, 10, "trunk 2")
        await until(lambda: phone.early_media, 10, "early media")
        leg = await database_sync_to_async(leg_of)(call_id)
        assert (leg.sip_trunk, leg.sip_call_id) == ("up.carrier.test", phone.sip_call_id)

        # and during early media the phone's leg is in the room, the call still rings
        assert RAW_PHONE in media.room.participants and RAW_PHONE not in media.legs
        call = await database_sync_to_async(Call.objects.get)(pk=call_id)
        assert (call.state, leg.state) == ("ringing", "ringing")

        # when the phone answers, the caller connects
        connected = await caller.until(type="call", event="stateChanged", state="Connected")
        assert [p["rawId"] for p in connected["participants"]] == [RAW_PHONE]
        assert RAW_PHONE in media.legs

        # when the far end vanishes, the call ends as a silent line within seconds, and the
        # phone's Janus session and bridge leg are gone
        far_end.kill(up)
        ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
        call = await database_sync_to_async(Call.objects.get)(pk=call_id)
        assert ended["callEndReason"] == {"code": 408, "subCode": 510408}, call.end_reason
        call = await database_sync_to_async(Call.objects.get)(pk=call_id)
        assert call.end_reason == "The phone line went silent."
        await until(lambda: not phone.open, 5, "the phone's Janus session closed")
        assert media.phones == {} and RAW_PHONE not in media.legs
        assert RAW_PHONE not in media.room.participants
    finally:
        await process._end(call_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_keys_from_and_to_a_phone_go_through_the_media_process(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    connect: Any,  # noqa: F811
    owned: Any,  # noqa: F811
    route: list[SipTrunk],
    tmp_path: Path,
    settings: Any,
) -> None:
    # given a phone that answers and presses 5 and # (SIP INFO)
    settings.RECORDINGS_DIR = tmp_path
    port = far_end("uas_dtmf.xml", echo=False)
    await ports(route, port, port)
    process = MediaProcess(janus_url)
    _, dial = await placed_call(connect, owned)
    call_id = dial["call"]
    try:
        await process.handle(dial)
        media = process.calls[call_id]

        # then the keys reach the call's DTMF path (recognize, continuous DTMF), in order
        keys = [await asyncio.wait_for(media.tones.get(), 10) for _ in range(2)]
        assert keys == [(RAW_PHONE, "5"), (RAW_PHONE, "#")]

        # when DTMF is sent to the phone, it goes as SIP INFO, with no in-band tone left over
        left = await process._send_dtmf_to_phones(media, "9*", [RAW_PHONE, "8:acs:other"])
        assert left == ["8:acs:other"]
        log = far_end.log(port).read_text()
        assert "Signal=9" in log and "Signal=*" in log
    finally:
        await process._end(call_id)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_a_trunk_that_falls_silent_without_a_word_ends_the_call_after_the_media_timeout(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    connect: Any,  # noqa: F811
    owned: Any,  # noqa: F811
    route: list[SipTrunk],
    tmp_path: Path,
    settings: Any,
) -> None:
    # given an answered phone call, through a trunk that echoes
    settings.RECORDINGS_DIR = tmp_path
    settings.PHONE_MEDIA_TIMEOUT_SECONDS = 3
    up = far_end("uas_echo.xml")
    await ports(route, up, free_udp_port())
    process = MediaProcess(janus_url)
    caller, dial = await placed_call(connect, owned)
    call_id = dial["call"]
    try:
        await process.handle(dial)
        await caller.until(type="call", event="stateChanged", state="Connected")
        media = process.calls[call_id]
        phone = media.phones[RAW_PHONE]

        # when its audio stops for a moment (less than the timeout), nothing happens
        await asyncio.sleep(2)
        assert call_id in process.calls and RAW_PHONE in media.legs

        # when the trunk falls silent for good: no BYE, no RTP, no ICMP refusal
        far_end.pause(up)
        silent_from = time.monotonic()

        # then the call ends as a silent line once the timeout has passed, not before
        ended = await caller.until(
            type="call", event="stateChanged", state="Disconnected", timeout=20
        )
        assert time.monotonic() - silent_from >= 3
        assert ended["callEndReason"] == {"code": 408, "subCode": 510408}  # Spool decided
        call = await database_sync_to_async(Call.objects.get)(pk=call_id)
        assert (call.end_subcode, call.end_reason) == (510408, "The phone line went silent.")
        await until(lambda: not phone.open, 5, "the phone's Janus session closed")
        assert media.phones == {} and media.silences == {}
    finally:
        await process._end(call_id)
