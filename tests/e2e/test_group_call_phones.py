"""Phones in group calls through the SFU, end to end: two call agents in a group call through
Janus's VideoRoom (SPOOL_JANUS_URL), one of them dials a phone (a SIP trunk pointed at sipp,
which echoes) into it. The media process bridges the call's AudioBridge room, where the phone
is, to the VideoRoom: each agent receives the phones' feed (`sfu:phones`), which carries the
other agent's tone back from the phone, so the phone heard both browsers and they hear it.
Hanging the phone up takes it out of everyone's roster; the call goes on. And a phone calling a
number whose inbound destination is the group (through Kamailio) joins the call the same way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from apps.calls.agent import CallAgent, ToneTrack
from tests.automation.tones import read_wav, require_tool, tone_energy
from tests.conftest import start_spool, stop_spool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_incoming_phone_calls import CALLER, connect_carrier, sip_edge, wait_for_line
from tests.e2e.test_phone_calls import connect_trunk
from tests.janus import require_janus, run_janus
from tests.pstn.edge import require_kamailio, sipp_call
from tests.pstn.test_sip_phone_leg import far_end  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

PHONE = "+15550001111"


def carries(recording: Path, frequency: float) -> bool:
    """Whether a recorded feed holds `frequency` ten times (20 dB) above a frequency nobody
    plays. (Twenty times failed once on a loaded machine, at thirteen: packets lost on the way
    through the phone add broadband noise; silence gives zero either way.)"""
    samples, rate = read_wav(recording)
    quiet = max(tone_energy(samples, rate, 1234.0), 1e-9)
    return tone_energy(samples, rate, frequency) > 10 * quiet


@pytest.mark.timeout(150)
def test_a_phone_dialed_into_a_group_call_hears_and_is_heard_by_the_browsers(
    tmp_path: Path,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    with run_janus() as janus:
        live, cleanups = start_spool({"SPOOL_JANUS_URL": janus.url})
        try:
            connection = live.create_resource()
            caller_id = live.give_number(connection)
            connect_trunk(live, connection, far_end("uas_echo.xml"))
            tokens = [voip_user(live, connection)[1] for _ in range(2)]
            url = socket_url(live.http_url)
            alice = CallAgent(url, tokens[0], record_dir=tmp_path)
            bob = CallAgent(url, tokens[1], audio=lambda: ToneTrack(660.0), record_dir=tmp_path)
            group = str(uuid.uuid4())

            async def scenario() -> dict[str, object]:
                for agent in (alice, bob):
                    await agent.connect()
                    await agent.join(group_id=group)
                try:
                    # when alice dials the phone into the call
                    entry = await alice.add_participant(f"4:{PHONE}", caller_id=caller_id)
                    assert entry["rawId"] == f"4:{PHONE}"
                    # then it answers and joins everyone's roster, and its feed reaches both
                    for _ in range(300):
                        if all(
                            f"4:{PHONE}" in agent.participants
                            and agent.frames_from.get("sfu:phones", 0) > 150
                            for agent in (alice, bob)
                        ):
                            break
                        await asyncio.sleep(0.1)
                    rosters = [set(agent.participants) for agent in (alice, bob)]
                    # when alice hangs the phone up, it leaves the rosters; the call goes on
                    await alice._send(
                        {
                            "type": "call.removeParticipant",
                            "callId": alice.call_id,
                            "rawId": f"4:{PHONE}",
                        }
                    )
                    await alice._reply("call.participantRemoved")
                    for _ in range(100):
                        if all(f"4:{PHONE}" not in a.participants for a in (alice, bob)):
                            break
                        await asyncio.sleep(0.1)
                    after = [set(agent.participants) for agent in (alice, bob)]
                    states = [alice.state, bob.state]
                    for agent in (alice, bob):
                        await agent.hang_up()
                        await agent._reply("call.hungUp")
                        await agent.wait_state("Disconnected")
                    return {"rosters": rosters, "after": after, "states": states}
                finally:
                    for agent in (alice, bob):
                        await agent.close()

            result = asyncio.run(scenario())
            legs = live.manage(
                "shell",
                "-c",
                "from apps.calls.models import CallParticipant; "
                f"leg = CallParticipant.objects.get(raw_id='4:{PHONE}'); "
                "print(leg.state, leg.sip_trunk, bool(leg.sip_call_id))",
            ).stdout.split()
        finally:
            stop_spool(live, cleanups)

    assert all(f"4:{PHONE}" in roster for roster in result["rosters"]), result  # type: ignore[attr-defined]
    assert all(f"4:{PHONE}" not in roster for roster in result["after"]), result  # type: ignore[attr-defined]
    assert result["states"] == ["Connected", "Connected"]
    assert legs[-3:] == ["left", "sbc.carrier.test", "True"]
    # each browser heard, through the phone's echo, the other browser: the phone heard them
    # both, and they heard the phone
    for agent, other_tone in ((alice, 660.0), (bob, 440.0)):
        [feed] = [p for p in agent.recordings if p.name.endswith("-sfu_phones.wav")]
        assert carries(feed, other_tone), feed


@pytest.mark.timeout(150)
def test_a_phone_calling_a_group_number_joins_the_browsers_call(tmp_path: Path) -> None:
    require_janus()
    require_kamailio()
    require_tool("sipp")
    with run_janus() as janus:
        live, cleanups = start_spool({"SPOOL_JANUS_URL": janus.url})
        try:
            # given two call agents in a group call, and a number whose calls join it
            connection = live.create_resource()
            number = live.give_number(connection)
            group = str(uuid.uuid4())
            connect_carrier(live, connection, number, f"group:{group}")
            wait_for_line(live, number)
            tokens = [voip_user(live, connection)[1] for _ in range(2)]
            url = socket_url(live.http_url)
            alice = CallAgent(url, tokens[0], record_dir=tmp_path)
            bob = CallAgent(url, tokens[1], audio=lambda: ToneTrack(660.0), record_dir=tmp_path)
            phone = f"4:{CALLER}"

            async def scenario() -> dict[str, object]:
                for agent in (alice, bob):
                    await agent.connect()
                    await agent.join(group_id=group)
                # when a phone calls the number (sipp echoes for 6 s, then hangs up)
                sipp = sipp_call(sip_edge(live), number, tmp_path, seconds=6)
                try:
                    # then it joins everyone's roster at once, and its feed reaches both
                    for _ in range(300):
                        if all(
                            phone in agent.participants
                            and agent.frames_from.get("sfu:phones", 0) > 150
                            for agent in (alice, bob)
                        ):
                            break
                        await asyncio.sleep(0.1)
                    rosters = [set(agent.participants) for agent in (alice, bob)]
                    code = await asyncio.to_thread(sipp.wait, 30)
                    # and when it hangs up, it leaves the rosters; the call goes on
                    for _ in range(100):
                        if all(phone not in agent.participants for agent in (alice, bob)):
                            break
                        await asyncio.sleep(0.1)
                    after = [set(agent.participants) for agent in (alice, bob)]
                    states = [alice.state, bob.state]
                    for agent in (alice, bob):
                        await agent.hang_up()
                    return {"rosters": rosters, "after": after, "states": states, "sipp": code}
                finally:
                    if sipp.poll() is None:
                        sipp.kill()
                        sipp.wait()
                    for agent in (alice, bob):
                        await agent.close()

            result = asyncio.run(scenario())
        finally:
            stop_spool(live, cleanups)

    assert result["sipp"] == 0  # answered (200 OK) and hung up cleanly
    assert all(phone in roster for roster in result["rosters"]), result  # type: ignore[attr-defined]
    assert all(phone not in roster for roster in result["after"]), result  # type: ignore[attr-defined]
    assert result["states"] == ["Connected", "Connected"]
    # each browser heard, through the phone's echo, the other browser
    for agent, other_tone in ((alice, 660.0), (bob, 440.0)):
        [feed] = [p for p in agent.recordings if p.name.endswith("-sfu_phones.wav")]
        assert carries(feed, other_tone), feed
