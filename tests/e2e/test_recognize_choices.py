"""Choices recognized by speech end to end: the official Python SDK (1.6) against `manage.py
serve`, and a Python call agent whose microphone says "sales please" (espeak-ng) when told to:
RecognizeCompleted names the choice; then a key picks the other choice by its tone."""

from __future__ import annotations

import array
import asyncio
import fractions
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiortc import MediaStreamTrack
from av import AudioFrame

from apps.calls.agent import FRAME_SAMPLES, SAMPLE_RATE, CallAgent
from tests.automation.tones import require_tool
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_call_automation import App, route_to_application, subscribe
from tests.janus import require_janus

pytestmark = pytest.mark.e2e


def spoken(text: str) -> bytes:
    """`text` said by espeak-ng, as 48 kHz mono PCM16."""
    made = subprocess.run(["espeak-ng", "-s", "140", "--stdout", text], capture_output=True)
    made.check_returncode()
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-ar", str(SAMPLE_RATE), "-ac", "1"]
        + ["-f", "s16le", "pipe:1"],
        input=made.stdout,
        capture_output=True,
        check=True,
    ).stdout


class Microphone(MediaStreamTrack):
    """Silence, or what it was told to say: 20 ms mono frames paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.queue = bytearray()
        self.samples = 0
        self.started: float | None = None

    def say(self, pcm: bytes) -> None:
        self.queue += pcm

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        await asyncio.sleep(max(0.0, self.started + self.samples / SAMPLE_RATE - loop.time()))
        size = FRAME_SAMPLES * 2
        chunk = bytes(self.queue[:size]).ljust(size, b"\0")
        del self.queue[:size]
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.pts, frame.sample_rate = self.samples, SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self.samples += FRAME_SAMPLES
        return frame


@pytest.mark.timeout(180)
def test_a_caller_says_a_choice_and_keys_another(live_spool: LiveSpool, tmp_path: Path) -> None:
    require_janus()
    require_tool("espeak-ng")
    require_tool("ffmpeg")
    from azure.communication.callautomation import (
        CallAutomationClient,
        DtmfTone,
        RecognitionChoice,
        RecognizeInputType,
    )
    from azure.communication.identity import CommunicationUserIdentifier

    connection = live_spool.create_resource()
    caller_id, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
    route_to_application(live_spool, line_id)
    app = App()
    subscribe(live_spool, connection, app.events.url, ["Microsoft.Communication.IncomingCall"])
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    microphone = Microphone()
    caller = CallAgent(socket_url(live_spool.http_url), caller_token, audio=lambda: microphone)
    speech = spoken("sales please")
    silence = bytes(array.array("h", [0] * SAMPLE_RATE).tobytes())
    choices = [
        RecognitionChoice(label="Sales", phrases=["sales", "sales please"], tone=DtmfTone.ONE),
        RecognitionChoice(label="Support", phrases=["support"], tone=DtmfTone.TWO),
    ]

    async def scenario() -> list[dict[str, Any]]:
        await caller.connect()
        try:
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            answered = await asyncio.to_thread(
                client.answer_call, incoming["incomingCallContext"], app.callbacks.url
            )
            await caller.wait_state("Connected")
            await asyncio.to_thread(app.wait_callback, "CallConnected")
            call = client.get_call_connection(answered.call_connection_id)

            # when the application listens for a choice and the caller says one
            await asyncio.to_thread(
                call.start_recognizing_media,
                input_type=RecognizeInputType.CHOICES,
                target_participant=CommunicationUserIdentifier(caller_id),
                choices=choices,
                initial_silence_timeout=10,
                operation_context="said",
            )
            await asyncio.sleep(1.0)
            microphone.say(speech + silence)
            said = await asyncio.to_thread(app.wait_callback, "RecognizeCompleted", 20)

            # and then listens again, and the caller presses 2
            await asyncio.to_thread(
                call.start_recognizing_media,
                input_type=RecognizeInputType.CHOICES,
                target_participant=CommunicationUserIdentifier(caller_id),
                choices=choices,
                operation_context="keyed",
            )
            await asyncio.sleep(0.5)
            await caller.send_dtmf("2")
            keyed = await asyncio.to_thread(
                app.wait_callback, "RecognizeCompleted", 20, context="keyed"
            )
            await caller.hang_up()
            return [said, keyed]
        finally:
            await caller.close()

    try:
        said, keyed = asyncio.run(scenario())
    finally:
        app.stop()

    # then the phrase said named its choice, and the key the other one
    assert said["data"]["recognitionType"] == "choices"
    assert said["data"]["choiceResult"]["label"] == "Sales"
    assert said["data"]["choiceResult"]["recognizedPhrase"] == "sales please"
    assert said["data"]["resultInformation"]["subCode"] == 8545
    assert keyed["data"]["choiceResult"] == {"label": "Support"}
    assert keyed["data"]["resultInformation"]["subCode"] == 8533
