"""Side rooms (apps/automation/sideroom.py) against a real Janus: a prompt that reaches one
participant alone, and hold, with aiortc legs sending tones of their own."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from apps.automation import audio
from apps.automation.bridge import AudioBridgeRoom, room_exists
from apps.calls.sfu import JanusError
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    has_tone,
    janus_url,
    joined,
    rtp_socket,
    tools,
    until,
)
from tests.automation.tones import read_wav

QUIET = 200  # below this a tone is not there (has_tone's default finds one above 800)


async def listen(peer: Peer, seconds: float) -> list[int]:
    """What a peer hears over the next `seconds` (after letting the mix settle)."""
    await asyncio.sleep(0.3)
    start = len(peer.received)
    await asyncio.sleep(seconds)
    return list(peer.received[start:])


@pytest.mark.timeout(40)
async def test_a_prompt_to_one_leg_reaches_it_alone_while_the_conversation_goes_on(
    janus_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # given a recorded call of alice (440 Hz) and bob (660 Hz), whose voice is forwarded apart
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    alice, bob = Peer(440), Peer(660)
    sink, sink_port = await rtp_socket()
    await room.open(record_dir=tmp_path)
    try:
        await joined(room, "8:acs:alice", alice)
        await joined(room, "8:acs:bob", bob)
        await room.forward("127.0.0.1", sink_port, display="8:acs:alice")
        wav = await room.start_recording(Path("whisper"))

        # when alice is set aside and a 1 kHz prompt plays to her alone
        await room.set_aside("8:acs:alice", linked=True)
        await room.set_aside("8:acs:alice", linked=True)  # again: nothing changes
        prompt = await asyncio.to_thread(audio.tone_file, 1000, 4)
        await room.play(prompt, "whisper", to="8:acs:alice")
        await events.wait(kind="playStarted", fileId="whisper")
        heard_by_alice, heard_by_bob = await asyncio.gather(listen(alice, 2), listen(bob, 2))
        alice_forwarded = len(sink.received)

        # then alice hears the prompt and bob; bob hears alice but not the prompt
        assert has_tone(heard_by_alice, PEER_RATE, 1000)
        assert has_tone(heard_by_alice, PEER_RATE, 660)
        assert not has_tone(heard_by_alice, PEER_RATE, 440, at_least=QUIET)  # no echo of her
        assert has_tone(heard_by_bob, PEER_RATE, 440)
        assert not has_tone(heard_by_bob, PEER_RATE, 1000, at_least=QUIET)

        # and her forward still carries her voice alone
        await until(lambda: len(sink.received) > alice_forwarded + 8000, 5, "alice's forward")
        forwarded = sink.received[alice_forwarded:]
        assert has_tone(forwarded, 8000, 440)
        assert not has_tone(forwarded, 8000, 1000, at_least=QUIET)
        assert not has_tone(forwarded, 8000, 660, at_least=QUIET)

        # when she is brought back, the prompt ends (one playStopped) and all is as before
        await room.bring_back("8:acs:alice")
        await events.wait(kind="playStopped", fileId="whisper")
        heard_by_alice, heard_by_bob = await asyncio.gather(listen(alice, 1), listen(bob, 1))
        assert has_tone(heard_by_alice, PEER_RATE, 660)
        assert not has_tone(heard_by_alice, PEER_RATE, 1000, at_least=QUIET)
        assert has_tone(heard_by_bob, PEER_RATE, 440)
        assert [e["fileId"] for e in events.of("playStopped")] == ["whisper"]
        assert not events.of("participantLeft")  # moving rooms is not leaving the call

        # and the call's recording holds both voices, never the prompt
        await room.stop_recording()
        samples, rate = read_wav(wav)
        assert has_tone(samples, rate, 440) and has_tone(samples, rate, 660)
        assert not has_tone(samples, rate, 1000, at_least=QUIET)
    finally:
        await room.close()
        for peer in (alice, bob):
            await peer.pc.close()
        assert sink.transport is not None
        sink.transport.close()


@pytest.mark.timeout(40)
async def test_a_held_leg_hears_only_its_music_and_is_not_heard(janus_url: str) -> None:  # noqa: F811
    # given alice (440 Hz) and bob (660 Hz) in a call
    events = Events()
    room_id = str(uuid.uuid4())
    room = AudioBridgeRoom(janus_url, room_id, events)
    alice, bob = Peer(440), Peer(660)
    await room.open()
    try:
        await joined(room, "8:acs:alice", alice)
        await joined(room, "8:acs:bob", bob)

        # when alice is held with 1 kHz music, and muted meanwhile
        await room.set_aside("8:acs:alice", linked=False)
        music = await asyncio.to_thread(audio.tone_file, 1000, 1)
        await room.play(music, "music", loop=True, to="8:acs:alice")
        await room.mute("8:acs:alice", True)
        heard_by_alice, heard_by_bob = await asyncio.gather(listen(alice, 2), listen(bob, 2))

        # then she hears only the music, and bob hears neither her nor it
        assert has_tone(heard_by_alice, PEER_RATE, 1000)
        assert not has_tone(heard_by_alice, PEER_RATE, 660, at_least=QUIET)
        assert not has_tone(heard_by_bob, PEER_RATE, 440, at_least=QUIET)
        assert not has_tone(heard_by_bob, PEER_RATE, 1000, at_least=QUIET)

        # when she is unheld (still muted), the music stops and she hears bob again
        await room.bring_back("8:acs:alice")
        await events.wait(kind="playStopped", fileId="music")
        heard_by_alice, heard_by_bob = await asyncio.gather(listen(alice, 1), listen(bob, 1))
        assert has_tone(heard_by_alice, PEER_RATE, 660)
        assert not has_tone(heard_by_alice, PEER_RATE, 1000, at_least=QUIET)
        assert not has_tone(heard_by_bob, PEER_RATE, 440, at_least=QUIET)  # muted stays muted

        # and unmuted, bob hears her
        await room.mute("8:acs:alice", False)
        assert has_tone(await listen(bob, 1), PEER_RATE, 440)
    finally:
        await room.close()
        for peer in (alice, bob):
            await peer.pc.close()


@pytest.mark.timeout(30)
async def test_refusals_and_a_leg_that_hangs_up_while_aside(janus_url: str) -> None:  # noqa: F811
    # given a call with alice
    events = Events()
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), events)
    alice = Peer(440)
    await room.open()
    try:
        await joined(room, "8:acs:alice", alice)
        prompt = await asyncio.to_thread(audio.tone_file, 1000, 10)

        # then a prompt to a leg that is not aside, or unknown, is refused
        with pytest.raises(JanusError):
            await room.play(prompt, "p1", to="8:acs:alice")
        with pytest.raises(JanusError):
            await room.set_aside("8:acs:nobody", linked=True)
        await room.bring_back("8:acs:nobody")  # fine
        await room.bring_back("8:acs:alice")  # not aside: fine

        # when alice, set aside with a prompt playing, hangs up
        await room.set_aside("8:acs:alice", linked=True)
        side = room._legs["8:acs:alice"].side
        assert side is not None
        await room.play(prompt, "p2", to="8:acs:alice")
        await events.wait(kind="playStarted", fileId="p2")
        await alice.pc.close()

        # then she left (once), her prompt stopped and her side room is gone
        await events.wait(kind="participantLeft", display="8:acs:alice", timeout=15)
        await events.wait(kind="playStopped", fileId="p2")
        assert not await room_exists(janus_url, side.room)
        assert all(relay.transport.is_closing() for relay in side.relays if relay.transport)
    finally:
        await room.close()
        await alice.pc.close()
