"""Two Python call agents call each other through a live `manage.py serve`: audio both ways."""

from __future__ import annotations

import array
import asyncio
import uuid
import wave
from pathlib import Path

import pytest

from apps.calls.agent import CallAgent
from tests.conftest import LiveSpool, start_spool, stop_spool
from tests.janus import require_janus, run_janus

pytestmark = pytest.mark.e2e


def voip_user(live: LiveSpool, connection: str) -> tuple[str, str]:
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    user, token = client.create_user_and_token(["voip"])
    return user.properties["id"], token.token


def socket_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/ws/"


def one_to_one_call(
    alice: CallAgent, bob: CallAgent, bob_id: str, *, hung_up_by: str = "alice"
) -> None:
    """alice calls bob, bob answers, audio flows for a while (or not), one of them hangs up."""

    async def scenario() -> None:
        await alice.connect()
        await bob.connect()
        try:
            await alice.call(bob_id)
            await bob.answer()
            await alice.wait_state("Connected")
            for _ in range(100):
                if alice.frames_received > 25 and bob.frames_received > 25:
                    break
                await asyncio.sleep(0.1)
            await (alice if hung_up_by == "alice" else bob).hang_up()
            await bob.wait_state("Disconnected")
            await alice.wait_state("Disconnected")
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_two_agents_call_each_other_and_hear_each_other(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    # given two identities with voip tokens, each an agent on the plain-HTTP socket
    connection = live_spool.create_resource()
    _, alice_token = voip_user(live_spool, connection)
    bob_id, bob_token = voip_user(live_spool, connection)
    alice = CallAgent(socket_url(live_spool.http_url), alice_token)
    bob = CallAgent(socket_url(live_spool.http_url), bob_token, record_dir=tmp_path)

    # when alice calls bob, bob answers, and alice hangs up a moment later
    one_to_one_call(alice, bob, bob_id)

    # then audio flowed both ways and both saw the call end normally
    assert alice.frames_received > 25 and bob.frames_received > 25
    assert alice.end_reason == bob.end_reason == {"code": 0, "subCode": 0}

    # and bob recorded alice's tone: a WAV file of about the call's length, not silence
    [recording] = bob.recordings
    with wave.open(str(recording)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
        samples = array.array("h", audio.readframes(audio.getnframes()))
    assert seconds > 0.4
    assert max(abs(sample) for sample in samples) > 2000  # the tone's amplitude is 8000


@pytest.mark.timeout(90)
def test_a_call_between_sockets_on_two_web_processes(
    live_spool: LiveSpool, second_web: str
) -> None:
    # given alice's socket on serve's web process and bob's on a second one (same Redis)
    connection = live_spool.create_resource()
    _, alice_token = voip_user(live_spool, connection)
    bob_id, bob_token = voip_user(live_spool, connection)
    alice = CallAgent(socket_url(live_spool.http_url), alice_token)
    bob = CallAgent(socket_url(second_web), bob_token)

    # when alice calls bob: the ring, the answer and the SDP cross between processes
    one_to_one_call(alice, bob, bob_id, hung_up_by="bob")

    assert alice.frames_received > 25 and bob.frames_received > 25
    assert alice.end_reason == {"code": 0, "subCode": 0}


def group_call(live: LiveSpool, agents_count: int, seconds_of_audio: float = 2) -> list[CallAgent]:
    """`agents_count` agents join one group call through `live` one after another; returns
    them after audio has flowed (or not) for a while and everyone has left."""
    connection = live.create_resource()
    tokens = [voip_user(live, connection)[1] for _ in range(agents_count)]
    group = str(uuid.uuid4())

    async def scenario() -> list[CallAgent]:
        agents = [CallAgent(socket_url(live.http_url), token) for token in tokens]
        try:
            for agent in agents:
                await agent.connect()
                await agent.join(group_id=group)
            others = agents_count - 1
            for _ in range(int(seconds_of_audio * 10) + 100):
                if all(
                    len(a.frames_from) == others and min(a.frames_from.values()) > 25
                    for a in agents
                ):
                    break
                await asyncio.sleep(0.1)
            for agent in agents:
                await agent.hang_up()
                await agent.wait_state("Disconnected")
            return agents
        finally:
            for agent in agents:
                await agent.close()

    return asyncio.run(scenario())


@pytest.mark.timeout(90)
def test_three_agents_in_a_mesh_group_call_hear_each_other() -> None:
    live, cleanups = start_spool({"SPOOL_GROUP_CALLS": "mesh"})
    try:
        agents = group_call(live, 3)
    finally:
        stop_spool(live, cleanups)

    for agent in agents:
        assert agent.topology == "mesh"
        assert len(agent.frames_from) == 2, agent.frames_from  # from both others
        assert min(agent.frames_from.values()) > 25


@pytest.mark.timeout(120)
def test_three_agents_in_a_group_call_through_janus_hear_each_other() -> None:
    require_janus()
    with run_janus() as janus:
        live, cleanups = start_spool({"SPOOL_JANUS_URL": janus.url})
        try:
            agents = group_call(live, 3)
        finally:
            stop_spool(live, cleanups)

    for agent in agents:
        assert agent.topology == "sfu"
        assert len(agent.frames_from) == 2, agent.frames_from  # one Janus feed from each other
        assert all(key.startswith("sfu:") for key in agent.frames_from)
        assert min(agent.frames_from.values()) > 25


@pytest.mark.timeout(90)
def test_group_calls_go_through_the_janus_serve_starts_by_default(live_spool: LiveSpool) -> None:
    require_janus()
    agents = group_call(live_spool, 2)

    for agent in agents:
        assert agent.topology == "sfu"
        assert list(agent.frames_from) == [
            f"sfu:{other.raw_id}" for other in agents if other is not agent
        ]
        assert min(agent.frames_from.values()) > 25
