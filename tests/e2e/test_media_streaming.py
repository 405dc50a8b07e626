"""Media streaming end to end: the official Python SDK (azure-communication-callautomation 1.6)
against `manage.py serve` (Janus AudioBridge and the media process), a Python call agent as the
caller saying 440 Hz, and a voice bot: a WebSocket server in this test that receives the call's
audio as ACS streams it and answers with a 1 kHz tone, which the caller hears."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from apps.calls.agent import CallAgent
from tests.automation.tones import pcm_samples, read_wav, tone_energy
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_call_automation import App, route_to_application, subscribe
from tests.janus import require_janus

pytestmark = pytest.mark.e2e


class VoiceBot:
    """The application's WebSocket server: keeps every message, and answers each AudioData
    with 20 ms of a 1 kHz tone (PCM16 at the stream's rate), as a voice bot talks back."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}
        self.phase = 0
        self.url = ""
        self.first_audio_at: float | None = None

    async def start(self) -> Any:
        server = await serve(self._handle, "127.0.0.1", 0, close_timeout=1)
        self.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/bot"
        return server

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        async for text in ws:
            message = json.loads(text)
            self.messages.append(message)
            if message["kind"] != "AudioData":
                continue
            if self.first_audio_at is None:
                self.first_audio_at = time.monotonic()
            rate = self.messages[0]["audioMetadata"]["sampleRate"]
            count = rate // 50
            tone = [
                int(6000 * math.sin(2 * math.pi * 1000 * (self.phase + i) / rate))
                for i in range(count)
            ]
            self.phase += count
            data = base64.b64encode(struct.pack(f"<{count}h", *tone)).decode()
            await ws.send(json.dumps({"kind": "AudioData", "audioData": {"data": data}}))

    def audio_of(self, raw_id: str) -> list[int]:
        samples: list[int] = []
        for message in self.messages:
            if message["kind"] == "AudioData":
                body = message["audioData"]
                if body.get("participantRawID") == raw_id:
                    samples.extend(pcm_samples(base64.b64decode(body["data"])))
        return samples


@pytest.mark.timeout(180)
def test_a_voice_bot_hears_the_caller_and_the_caller_hears_the_bot(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    from azure.communication.callautomation import (
        AudioFormat,
        CallAutomationClient,
        MediaStreamingAudioChannelType,
        MediaStreamingContentType,
        MediaStreamingOptions,
        StreamingTransportType,
    )

    connection = live_spool.create_resource()
    caller_id, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
    route_to_application(live_spool, line_id)
    app = App()
    subscribe(live_spool, connection, app.events.url, ["Microsoft.Communication.IncomingCall"])
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    caller = CallAgent(socket_url(live_spool.http_url), caller_token, record_dir=tmp_path)
    bot = VoiceBot()

    async def scenario() -> dict[str, Any]:
        server = await bot.start()
        await caller.connect()
        try:
            # when the caller (saying 440 Hz) rings the bot's line and the app answers with
            # unmixed, bidirectional streaming from the start
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            streaming = MediaStreamingOptions(
                transport_url=bot.url,
                transport_type=StreamingTransportType.WEBSOCKET,
                content_type=MediaStreamingContentType.AUDIO,
                audio_channel_type=MediaStreamingAudioChannelType.UNMIXED,
                start_media_streaming=True,
                enable_bidirectional=True,
                audio_format=AudioFormat.PCM16_K_MONO,
            )
            answered = await asyncio.to_thread(
                client.answer_call,
                incoming["incomingCallContext"],
                app.callbacks.url,
                media_streaming=streaming,
            )
            await caller.wait_state("Connected")
            started = await asyncio.to_thread(app.wait_callback, "MediaStreamingStarted")
            connected_at = time.monotonic()
            call = client.get_call_connection(answered.call_connection_id)
            properties = await asyncio.to_thread(call.get_call_properties)

            # the caller and the bot talk for a while
            await asyncio.sleep(4)

            # then the application stops streaming
            await asyncio.to_thread(call.stop_media_streaming, operation_context="done")
            stopped = await asyncio.to_thread(app.wait_callback, "MediaStreamingStopped")
            after = await asyncio.to_thread(call.get_call_properties)
            await caller.hang_up()
            await caller.wait_state("Disconnected")
            return {
                "started": started,
                "stopped": stopped,
                "properties": properties,
                "after": after,
                "latency": (bot.first_audio_at or 0) - connected_at,
            }
        finally:
            await caller.close()
            server.close()

    try:
        result = asyncio.run(scenario())
    finally:
        app.stop()

    # then the callbacks are ACS's, and the subscription shows in the call connection
    update = result["started"]["data"]["mediaStreamingUpdate"]
    assert update["mediaStreamingStatus"] == "mediaStreamingStarted"
    assert result["stopped"]["data"]["operationContext"] == "done"
    subscription = result["properties"].media_streaming_subscription
    assert subscription.state == "active" and subscription.subscribed_content_types == ["audio"]
    assert result["after"].media_streaming_subscription.state == "inactive"

    # and the bot got the metadata, then the caller's 440 Hz as 20 ms frames of 16 kHz PCM
    assert bot.messages[0]["kind"] == "AudioMetadata"
    assert bot.messages[0]["audioMetadata"]["sampleRate"] == 16000
    assert bot.headers["x-ms-call-connection-id"] == result["properties"].call_connection_id
    heard = bot.audio_of(caller_id)
    assert len(heard) > 16000 * 2
    quiet = max(tone_energy(heard, 16000, 1234.0), 1.0)
    assert tone_energy(heard, 16000, 440.0) > 20 * quiet
    assert tone_energy(heard, 16000, 1000.0) < tone_energy(heard, 16000, 440.0) / 10  # no echo

    # and the caller heard the bot's 1 kHz
    [wav] = [path for path in caller.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(wav)
    quiet = max(tone_energy(samples, rate, 1234.0), 1.0)
    assert tone_energy(samples, rate, 1000.0) > 20 * quiet
