"""Phone calls coming in, end to end through `manage.py serve`: a carrier's trunk (sipp, on
loopback) calls one of a resource's numbers at Spool's SIP edge (Kamailio), the number's
inbound destination (an identity) rings, a Python call agent answers, and audio flows both
ways (the phone echoes: the agent hears its own tone). And the refusals a trunk gets: an
unconfigured trunk 403, a number nobody owns here 404, a declined call 603."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from apps.calls.agent import CallAgent
from tests.automation.tones import read_wav, require_tool, tone_energy
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.janus import require_janus
from tests.pstn.edge import invite, require_kamailio, sipp_call

pytestmark = pytest.mark.e2e

FQDN = "sbc.carrier.test"
CALLER = "+15559990000"


def sip_edge(live: LiveSpool) -> str:
    return f"127.0.0.1:{live.env['SPOOL_SIP_PORT']}"


def connect_carrier(live: LiveSpool, connection: str, number: str, destination: str) -> None:
    """The tenant adds its trunk with the SDK and sends the number's calls to `destination`;
    the operator enables the trunk for calls from loopback."""
    from azure.communication.phonenumbers.siprouting import SipRoutingClient, SipTrunk

    client = SipRoutingClient.from_connection_string(connection, connection_verify=live.cert)
    client.set_trunks([SipTrunk(fqdn=FQDN, sip_signaling_port=5060)])
    live.manage(
        "shell",
        "-c",
        "from apps.pstn.models import SipTrunk; from apps.numbers.models import PhoneNumber; "
        f"SipTrunk.objects.filter(fqdn='{FQDN}').update(enabled=True, address='127.0.0.1', "
        "allowed_networks=['127.0.0.1/32']); "
        f"PhoneNumber.objects.filter(number='{number}').update(inbound_destination='{destination}')",
    )


def wait_for_line(live: LiveSpool, number: str) -> None:
    """Until the media process's SIP line is registered at the edge (503 before)."""
    deadline = time.monotonic() + 30
    while invite(sip_edge(live), "+19999999999", timeout=2) in (0, 503):
        assert time.monotonic() < deadline, "the SIP line did not register at the edge"
        time.sleep(0.5)


def test_a_phone_calls_a_number_its_identity_answers_and_they_hear_each_other(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    require_kamailio()
    require_tool("sipp")
    connection = live_spool.create_resource()
    number = live_spool.give_number(connection)
    user, token = voip_user(live_spool, connection)
    connect_carrier(live_spool, connection, number, user)
    wait_for_line(live_spool, number)
    callee = CallAgent(socket_url(live_spool.http_url), token, record_dir=tmp_path)

    async def scenario() -> dict[str, object]:
        await callee.connect()
        sipp = sipp_call(sip_edge(live_spool), number, tmp_path, seconds=5)
        try:
            call_id = await callee.answer(timeout=20)
            await callee.wait_state("Connected", timeout=20)
            # the phone hangs up after 5 s of echo
            await callee.wait_state("Disconnected", timeout=30)
            code = await asyncio.to_thread(sipp.wait, 10)
            return {"call": call_id, "frames": callee.frames_received, "sipp": code}
        finally:
            if sipp.poll() is None:
                sipp.kill()
                sipp.wait()
            await callee.close()

    result = asyncio.run(scenario())

    # then the phone's call was answered and hung up cleanly (sipp exits 0)
    assert result["sipp"] == 0
    assert callee.end_reason is not None and callee.end_reason["code"] == 0
    # and the callee heard its own 440 Hz tone, echoed by the phone: audio went both ways
    assert int(str(result["frames"])) > 50
    [heard] = [path for path in callee.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(heard)
    quiet = max(tone_energy(samples, rate, 1234.0), 1e-9)
    assert tone_energy(samples, rate, 440.0) > 20 * quiet

    # and the call log has the phone as the caller, with its trunk and SIP call id
    script = (
        "from apps.calls.models import Call; "
        f"call = Call.objects.get(pk='{result['call']}'); "
        f"leg = call.participants.get(raw_id='4:{CALLER}'); "
        "print(call.caller_raw_id, leg.is_caller, leg.sip_trunk, bool(leg.sip_call_id))"
    )
    out = live_spool.manage("shell", "-c", script).stdout.split()
    assert out[-4:] == [f"4:{CALLER}", "True", FQDN, "True"]


def test_the_edge_refuses_strangers_unknown_numbers_and_declined_calls(
    live_spool: LiveSpool,
) -> None:
    require_janus()
    require_kamailio()
    connection = live_spool.create_resource()
    number = live_spool.give_number(connection)
    user, token = voip_user(live_spool, connection)
    edge = sip_edge(live_spool)
    wait_for_line(live_spool, number)

    # no trunk of any resource takes calls from loopback (earlier tests' are switched off):
    # 403, and no call is made
    live_spool.manage(
        "shell",
        "-c",
        "from apps.pstn.models import SipTrunk; SipTrunk.objects.update(enabled=False)",
    )
    calls_before = count_calls(live_spool)
    assert invite(edge, number) == 403

    connect_carrier(live_spool, connection, number, user)
    # a number no resource owns: 404
    assert invite(edge, "+15005550123") == 404

    # the identity declines: the phone hears 603
    callee = CallAgent(socket_url(live_spool.http_url), token)

    async def decline() -> int:
        await callee.connect()
        try:
            calling = asyncio.ensure_future(asyncio.to_thread(invite, edge, number, timeout=20))
            incoming = await asyncio.wait_for(callee._incoming.get(), 20)
            assert incoming["caller"] == {
                "kind": "phoneNumber",
                "phoneNumber": CALLER,
                "rawId": f"4:{CALLER}",
            }
            await callee._send({"type": "call.decline", "callId": incoming["callId"]})
            return await calling
        finally:
            await callee.close()

    assert asyncio.run(decline()) == 603
    assert count_calls(live_spool) == calls_before + 1  # the declined one; refused ones: none


def count_calls(live: LiveSpool) -> int:
    script = "from apps.calls.models import Call; print(Call.objects.count())"
    return int(live.manage("shell", "-c", script).stdout.split()[-1])
