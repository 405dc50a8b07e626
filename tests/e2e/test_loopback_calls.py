"""The loopback carrier end to end, through `manage.py serve` (Kamailio, Janus, the media
process): with no SIP route, a client's call to a number outside the deployment reaches the
resource's virtual phone of that number (its console socket, /ws/virtual-phone/, with an aiortc
peer standing for the page), which rings, answers, and they hear each other; a number of
another resource of the deployment is called in through the SIP edge; a number with no phone
open gets 480."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import websockets
from aiortc import RTCSessionDescription

from apps.calls.agent import CallAgent
from tests.automation.test_bridge import Peer, until
from tests.automation.tones import read_wav, require_tool, tone_energy
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.janus import require_janus
from tests.pstn.edge import invite, require_kamailio

pytestmark = pytest.mark.e2e

VIRTUAL = "+15550107777"
G711_RATE = 8000


def ticket(live: LiveSpool, connection: str, number: str) -> str:
    script = (
        "from apps.automation.phone_consumers import issue_ticket; "
        f"print(issue_ticket('{live.slug_of(connection)}', '{number}'))"
    )
    return live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def wait_for_line(live: LiveSpool) -> None:
    deadline = time.monotonic() + 30
    edge = f"127.0.0.1:{live.env['SPOOL_SIP_PORT']}"
    while invite(edge, "+19999999999", timeout=2) in (0, 503):
        assert time.monotonic() < deadline, "the SIP line did not register at the edge"
        time.sleep(0.5)


@pytest.mark.timeout(120)
def test_a_client_calls_a_virtual_phone_through_the_loopback_carrier(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    require_kamailio()
    require_tool("ffmpeg")
    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    _, token = voip_user(live_spool, connection)
    wait_for_line(live_spool)
    phone_url = live_spool.http_url.replace("http://", "ws://") + "/ws/virtual-phone/?ticket="
    agent = CallAgent(socket_url(live_spool.http_url), token, record_dir=tmp_path)

    async def scenario() -> dict[str, object]:
        page = Peer(880.0)  # the virtual phone's page
        async with websockets.connect(phone_url + ticket(live_spool, connection, VIRTUAL)) as ws:
            assert json.loads(await ws.recv()) == {"type": "ready", "number": VIRTUAL}
            await agent.connect()
            try:
                # when the client calls the virtual phone's number (no SIP route takes it)
                await agent.call(f"4:{VIRTUAL}", caller_id=caller_id)
                # then the phone rings on its page, from the caller id, and the page answers
                ring = json.loads(await asyncio.wait_for(ws.recv(), 20))
                assert (ring["type"], ring["from"]) == ("incoming", caller_id)
                await page.pc.setRemoteDescription(RTCSessionDescription(ring["sdp"], "offer"))
                await page.pc.setLocalDescription(await page.pc.createAnswer())
                await ws.send(json.dumps({"type": "accept", "sdp": page.pc.localDescription.sdp}))
                await agent.wait_state("Connected", timeout=20)
                await until(lambda: len(page.received) > 3 * G711_RATE, 20, "audio at the page")
                await asyncio.sleep(1)
                heard = list(page.received[-2 * G711_RATE :])
                # when the page hangs up, the client's call ends normally
                await ws.send(json.dumps({"type": "hangup"}))
                await agent.wait_state("Disconnected", timeout=20)
                return {"heard": heard, "end": agent.end_reason}
            finally:
                await agent.close()
                await page.pc.close()

    result = asyncio.run(scenario())
    assert result["end"] == {"code": 0, "subCode": 560000}  # the phone's side hung up
    # the page heard the client's 440 Hz, and the client the page's 880 Hz
    assert tone_energy(result["heard"], G711_RATE, 440.0) > 20 * max(
        tone_energy(result["heard"], G711_RATE, 1234.0), 1e-9
    )
    [heard] = [path for path in agent.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(heard)
    assert tone_energy(samples, rate, 880.0) > 20 * max(tone_energy(samples, rate, 1234.0), 1e-9)

    # and the call log has the phone leg through the loopback carrier
    script = (
        "from apps.calls.models import CallParticipant; "
        f"leg = CallParticipant.objects.filter(raw_id='4:{VIRTUAL}').latest('id'); "
        "print(leg.sip_trunk, leg.state)"
    )
    assert live_spool.manage("shell", "-c", script).stdout.split()[-2:] == ["loopback", "left"]


@pytest.mark.timeout(120)
def test_loopback_calls_reach_the_deployments_numbers_and_480_without_a_phone(
    live_spool: LiveSpool,
) -> None:
    require_janus()
    require_kamailio()
    caller_side = live_spool.create_resource()
    caller_id = live_spool.give_number(caller_side)
    callee_side = live_spool.create_resource()
    number = live_spool.give_number(callee_side)
    user, callee_token = voip_user(live_spool, callee_side)
    live_spool.manage(
        "shell",
        "-c",
        "from apps.numbers.models import PhoneNumber; "
        f"PhoneNumber.objects.filter(number='{number}').update(inbound_destination='{user}')",
    )
    _, token = voip_user(live_spool, caller_side)
    wait_for_line(live_spool)
    caller = CallAgent(socket_url(live_spool.http_url), token)
    callee = CallAgent(socket_url(live_spool.http_url), callee_token)

    async def scenario() -> tuple[object, object, object]:
        await caller.connect()
        await callee.connect()
        try:
            # another resource's number: it rings that resource's identity, from the caller id
            await caller.call(f"4:{number}", caller_id=caller_id)
            incoming = await asyncio.wait_for(callee._incoming.get(), 20)
            await callee._send({"type": "call.accept", "callId": incoming["callId"]})
            await caller.wait_state("Connected", timeout=20)
            await caller.hang_up()
            await caller.wait_state("Disconnected", timeout=20)
            first = (incoming["caller"]["phoneNumber"], caller.end_reason)
            # a number outside with no virtual phone open: 480, nobody there
            await caller.call("4:+15550108888", caller_id=caller_id)
            await caller.wait_state("Disconnected", timeout=20)
            return first, caller.end_reason, None
        finally:
            await caller.close()
            await callee.close()

    first, second, _ = asyncio.run(scenario())
    assert first == (caller_id, {"code": 0, "subCode": 0})
    assert isinstance(second, dict) and second["code"] == 480
