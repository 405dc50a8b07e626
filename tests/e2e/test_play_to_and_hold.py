"""A prompt to one participant and hold with music, end to end: the official Python SDK (1.6)
against `manage.py serve` with the media plane, a caller (440 Hz) and a guest (660 Hz) as call
agents recording what they hear. The prompt (1 kHz) reaches the guest alone; the hold music
(1.5 kHz) reaches the held caller alone."""

from __future__ import annotations

import array
import asyncio
import math
import wave
from pathlib import Path
from typing import Any

import pytest

from apps.calls.agent import CallAgent, ToneTrack
from tests.automation.tones import read_wav
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_call_automation import (
    App,
    route_to_application,
    serve_files,
    stop_serving,
    subscribe,
    tone_energy,
)
from tests.janus import require_janus

pytestmark = pytest.mark.e2e


def write_tone(path: Path, frequency: float, seconds: float) -> None:
    rate = 16000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (
            int(8000 * math.sin(2 * math.pi * frequency * i / rate))
            for i in range(int(seconds * rate))
        )
        out.writeframes(array.array("h", samples).tobytes())


def heard(agent: CallAgent) -> tuple[array.array[int], int]:
    [path] = [p for p in agent.recordings if p.name.endswith("-media.wav")]
    return read_wav(path)


def loud(samples: array.array[int], rate: int, frequency: float) -> bool:
    """The tone stands well above a frequency nobody sends (1234 Hz)."""
    quiet = max(tone_energy(samples, rate, 1234.0), 1e-9)
    return tone_energy(samples, rate, frequency) > 20 * quiet


def loudest(samples: array.array[int], rate: int, frequency: float) -> float:
    """The tone's energy in its loudest tenth of a second."""
    step = rate // 10
    return max(
        tone_energy(samples[i : i + step], rate, frequency)
        for i in range(0, len(samples) - step + 1, step)
    )


def leaked(samples: array.array[int], rate: int, frequency: float, beside: float) -> bool:
    """The tone reached this recording, for a tenth of a second at least: at its loudest, it
    stands over 1/100 of a tone it heard (`beside`), i.e. at a tenth of its amplitude. Codec
    noise and the clicks of a leg moving between rooms stay under 1/1,000 (measured); a
    whole-recording ratio against a frequency nobody sends, as `loud()`, let them through."""
    return loudest(samples, rate, frequency) > loudest(samples, rate, beside) / 100


def test_a_prompt_to_one_participant_and_hold_music_reach_them_alone(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    from azure.communication.callautomation import CallAutomationClient, FileSource
    from azure.communication.identity import CommunicationUserIdentifier

    connection = live_spool.create_resource()
    caller_id, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
    guest_id, guest_token = voip_user(live_spool, connection)
    route_to_application(live_spool, line_id)
    app = App()
    subscribe(live_spool, connection, app.events.url, ["Microsoft.Communication.IncomingCall"])
    files = serve_files(tmp_path / "files")  # tone.wav: 1 kHz, 1 s
    write_tone(tmp_path / "files" / "music.wav", 1500, 1)
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    caller = CallAgent(
        socket_url(live_spool.http_url), caller_token, record_dir=tmp_path / "caller"
    )
    guest = CallAgent(
        socket_url(live_spool.http_url),
        guest_token,
        audio=lambda: ToneTrack(660),
        record_dir=tmp_path / "guest",
    )
    for folder in ("caller", "guest"):
        (tmp_path / folder).mkdir()
    caller_user, guest_user = (
        CommunicationUserIdentifier(caller_id),
        CommunicationUserIdentifier(guest_id),
    )

    async def scenario() -> dict[str, Any]:
        await caller.connect()
        await guest.connect()
        try:
            # given a call the application answered, with a guest added
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            answered = await asyncio.to_thread(
                client.answer_call, incoming["incomingCallContext"], app.callbacks.url
            )
            await asyncio.to_thread(app.wait_callback, "CallConnected")
            call = client.get_call_connection(answered.call_connection_id)
            await asyncio.to_thread(call.add_participant, guest_user)
            await guest.answer()
            await asyncio.to_thread(app.wait_callback, "AddParticipantSucceeded")
            await asyncio.sleep(1)

            # when a 1 kHz prompt plays to the guest alone, twice
            await asyncio.to_thread(
                call.play_media,
                [FileSource(url=f"{files}/tone.wav")] * 2,
                play_to=[guest_user],
                operation_context="whisper",
            )
            await asyncio.to_thread(app.wait_callback, "PlayCompleted", 30)

            # and the caller is held with 1.5 kHz music for 3 s
            await asyncio.to_thread(
                call.hold, caller_user, play_source=FileSource(url=f"{files}/music.wav")
            )
            await asyncio.sleep(1)
            during = await asyncio.to_thread(lambda: list(call.list_participants()))
            await asyncio.sleep(2)
            await asyncio.to_thread(call.unhold, caller_user)
            after = await asyncio.to_thread(lambda: list(call.list_participants()))
            await asyncio.sleep(1)
            await caller.hang_up()
            await caller.wait_state("Disconnected")
            return {"during": during, "after": after}
        finally:
            await caller.close()
            await guest.close()

    try:
        result = asyncio.run(scenario())
    finally:
        app.stop()
        stop_serving()

    # then the participants' hold state showed, and the callbacks are the plain ACS ones
    on_hold = {p.identifier.raw_id: p.is_on_hold for p in result["during"]}
    assert on_hold == {caller_id: True, guest_id: False}
    assert not any(p.is_on_hold for p in result["after"])
    assert "HoldFailed" not in app.callback_types()

    # and the guest heard the prompt and the caller, never the music
    samples, rate = heard(guest)
    assert loud(samples, rate, 1000.0) and loud(samples, rate, 440.0)
    assert not leaked(samples, rate, 1500.0, beside=440.0)

    # and the caller heard the guest and the music, never the prompt
    samples, rate = heard(caller)
    assert loud(samples, rate, 660.0) and loud(samples, rate, 1500.0)
    assert not leaked(samples, rate, 1000.0, beside=660.0)
