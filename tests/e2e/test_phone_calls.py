"""A call from a client to a phone number, end to end: the trunk and route set with the official
SipRoutingClient, the trunk enabled by the operator, a Python call agent calling through
`manage.py serve` (Janus's SIP plugin, the AudioBridge) to sipp playing the carrier's far end,
which echoes: the caller hears its own tone back, so audio went both ways. A busy number; and
early media, which the caller hears while the phone rings, without being heard itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.calls.agent import CallAgent, ToneTrack
from tests.automation.tones import read_wav, tone_energy
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.janus import require_janus
from tests.pstn.rtp_pcap import write_tone
from tests.pstn.test_sip_phone_leg import RINGBACK, far_end  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

PHONE = "+15550001111"
FQDN = "sbc.carrier.test"
CALLER_TONE = 660.0  # Hz: told apart from the far end's 425 Hz ringback


def connect_trunk(live: LiveSpool, connection: str, port: int) -> None:
    """The tenant sets its trunk and route with the SDK; the operator enables the trunk and
    points it at sipp."""
    from azure.communication.phonenumbers.siprouting import (
        SipRoutingClient,
        SipTrunk,
        SipTrunkRoute,
    )

    client = SipRoutingClient.from_connection_string(connection, connection_verify=live.cert)
    client.set_trunks([SipTrunk(fqdn=FQDN, sip_signaling_port=port)])
    client.set_routes([SipTrunkRoute(name="us", number_pattern=r"^\+1\d{10}$", trunks=[FQDN])])
    assert [route.name for route in client.list_routes()] == ["us"]
    live.manage(
        "shell",
        "-c",
        "from apps.pstn.models import SipTrunk; "
        f"SipTrunk.objects.filter(fqdn='{FQDN}').update(enabled=True, address='127.0.0.1')",
    )


def test_a_client_calls_a_phone_through_the_trunk_and_hears_it(
    live_spool: LiveSpool,
    tmp_path: Path,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    _, token = voip_user(live_spool, connection)
    connect_trunk(live_spool, connection, far_end("uas_echo.xml"))
    caller = CallAgent(socket_url(live_spool.http_url), token, record_dir=tmp_path)

    async def scenario() -> dict[str, object]:
        await caller.connect()
        try:
            await caller.call(f"4:{PHONE}", caller_id=caller_id)
            await caller.wait_state("Connected", timeout=20)
            # The echo's path (Janus -> SIP gateway -> the phone and back) can take seconds to
            # carry audio on a loaded box: 3 s once held only silence, with two suites running.
            await asyncio.sleep(6)
            frames = caller.frames_received
            await caller.hang_up()
            await caller.wait_state("Disconnected")
            return {"frames": frames, "end": caller.end_reason}
        finally:
            await caller.close()

    result = asyncio.run(scenario())

    # then the caller heard its own 440 Hz tone, echoed by the phone
    assert int(str(result["frames"])) > 50
    [heard] = [path for path in caller.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(heard)
    quiet = max(tone_energy(samples, rate, 1234.0), 1e-9)
    assert tone_energy(samples, rate, 440.0) > 20 * quiet

    # and the call log has the phone leg with its trunk and SIP call id
    script = (
        "from apps.calls.models import CallParticipant; "
        f"leg = CallParticipant.objects.get(raw_id='4:{PHONE}'); "
        "print(leg.sip_trunk, bool(leg.sip_call_id), leg.state)"
    )
    out = live_spool.manage("shell", "-c", script).stdout.split()
    assert out[-3:] == [FQDN, "True", "left"]


def test_a_busy_phone_ends_the_call_with_486(
    live_spool: LiveSpool,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    _, token = voip_user(live_spool, connection)
    connect_trunk(live_spool, connection, far_end("uas_busy.xml", echo=False))
    caller = CallAgent(socket_url(live_spool.http_url), token)

    async def scenario() -> object:
        await caller.connect()
        try:
            await caller.call(f"4:{PHONE}", caller_id=caller_id)
            await caller.wait_state("Disconnected", timeout=20)
            return caller.end_reason
        finally:
            await caller.close()

    end = asyncio.run(scenario())
    # the trunk's 486, marked as the SBC's answer (560000 + status), as ACS direct routing does
    assert end == {"code": 486, "subCode": 560486}


def test_the_caller_hears_early_media_and_is_heard_only_once_the_phone_answers(
    live_spool: LiveSpool,
    tmp_path: Path,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    # given a far end that plays 4.5 s of ringback (183 with SDP) before it answers, and echoes
    # what it receives all along
    write_tone(tmp_path / "ringback.pcap", RINGBACK, 4.0)
    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    _, token = voip_user(live_spool, connection)
    connect_trunk(live_spool, connection, far_end("uas_early_media.xml"))
    caller = CallAgent(
        socket_url(live_spool.http_url),
        token,
        audio=lambda: ToneTrack(CALLER_TONE),
        record_dir=tmp_path,
    )

    async def scenario() -> None:
        await caller.connect()
        try:
            await caller.call(f"4:{PHONE}", caller_id=caller_id)
            # (a Connected first would be passed over here, and the wait would fail)
            await caller.wait_state("EarlyMedia", timeout=20)
            await caller.wait_state("Connected", timeout=20)
            await asyncio.sleep(3)
            await caller.hang_up()
            await caller.wait_state("Disconnected")
        finally:
            await caller.close()

    # then the call went through EarlyMedia to Connected
    asyncio.run(scenario())
    [heard] = [path for path in caller.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(heard)
    early, answered = samples[rate // 2 : 2 * rate], samples[-2 * rate :]
    # and during early media the caller heard the ringback, but not itself: the far end did
    # not get its audio before it answered (it would have echoed it)
    assert tone_energy(early, rate, RINGBACK) > 20 * max(tone_energy(early, rate, 1234.0), 1e-9)
    assert tone_energy(early, rate, CALLER_TONE) < tone_energy(early, rate, RINGBACK) / 20
    # and once answered, the far end got it: the echo came back
    quiet = max(tone_energy(answered, rate, 1234.0), 1e-9)
    assert tone_energy(answered, rate, CALLER_TONE) > 20 * quiet
