"""Call Automation end to end: the official Python SDK (azure-communication-callautomation 1.6)
against `manage.py serve` over TLS, with the media plane (Janus AudioBridge driven by the media
process) and a Python call agent as the caller. An IVR: IncomingCall through Event Grid, answer,
record, a spoken prompt, DTMF collected from the caller's keys, tones sent back, a transfer, and
the recording downloaded with the caller's tone and the prompt in it."""

from __future__ import annotations

import array
import asyncio
import json
import math
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from apps.calls.agent import CallAgent
from tests.automation.tones import read_wav
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.events.conftest import Receiver
from tests.janus import require_janus

pytestmark = pytest.mark.e2e


def tone_energy(samples: array.array[int], rate: int, frequency: float) -> float:
    """Goertzel power of `frequency` in `samples`, normalized by length."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return power / max(1, len(samples)) ** 2


class App:
    """The application: a callback receiver and an Event Grid receiver, with the events seen."""

    def __init__(self) -> None:
        self.callbacks = Receiver()
        self.events = Receiver()
        self.callbacks.start()
        self.events.start()

    def stop(self) -> None:
        self.callbacks.stop()
        self.events.stop()

    def callback_types(self) -> list[str]:
        found = []
        for received in self.callbacks.received:
            if received.method == "POST":
                found += [e["type"].rsplit(".", 1)[-1] for e in json.loads(received.body)]
        return found

    def wait_callback(
        self, name: str, timeout: float = 20, *, context: str | None = None
    ) -> dict[str, Any]:
        """The first `name` callback (of that operationContext, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for received in self.callbacks.received:
                if received.method != "POST":
                    continue
                for event in json.loads(received.body):
                    if not event["type"].endswith("." + name):
                        continue
                    if context is None or event["data"].get("operationContext") == context:
                        return dict(event)
            time.sleep(0.05)
        raise AssertionError(f"no {name}; got {self.callback_types()}")

    def wait_event(self, name: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for notification in self.events.notifications:
                for event in notification.json:
                    if event["eventType"].endswith("." + name):
                        return dict(event["data"])
            time.sleep(0.05)
        raise AssertionError(f"no {name} event")


_servers: list[Any] = []


def serve_files(folder: Path) -> str:
    """A 1 kHz tone as WAV and MP3 on a local HTTP server (what an app's prompts are)."""
    import functools
    import subprocess
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder.mkdir()
    with wave.open(str(folder / "tone.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        rate = 16000
        tone = array.array(
            "h", (int(8000 * math.sin(2 * math.pi * 1000 * i / rate)) for i in range(rate))
        )
        out.writeframes(tone.tobytes())
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(folder / "tone.wav"), str(folder / "tone.mp3")],
        check=True,
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _servers.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}"


def stop_serving() -> None:
    while _servers:
        server = _servers.pop()
        server.shutdown()
        server.server_close()


def subscribe(live: LiveSpool, connection: str, url: str, types: list[str]) -> None:
    slug = live.slug_of(connection)
    script = (
        "from apps.accounts.models import Resource; from apps.events import services; "
        f"s = services.create_subscription(Resource.objects.get(slug='{slug}'), "
        f"name='app', endpoint_url='{url}', event_types={types!r}); "
        "services.validate_subscription(s.pk)"
    )
    live.manage("shell", "-c", script)


def route_to_application(live: LiveSpool, raw_id: str) -> None:
    identity_id = raw_id.rsplit("_", 1)[-1]
    live.manage(
        "shell",
        "-c",
        "from apps.accounts.models import CommunicationIdentity; "
        f"CommunicationIdentity.objects.filter(pk='{identity_id}').update(incoming_calls='application')",
    )


@pytest.mark.timeout(180)
def test_an_ivr_answers_prompts_collects_keys_records_and_transfers(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    from azure.communication.callautomation import (
        CallAutomationClient,
        DtmfTone,
        FileSource,
        RecognizeInputType,
        TextSource,
    )
    from azure.communication.identity import CommunicationUserIdentifier

    connection = live_spool.create_resource()
    caller_id, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
    agent_id, agent_token = voip_user(live_spool, connection)
    route_to_application(live_spool, line_id)
    app = App()
    subscribe(
        live_spool,
        connection,
        app.events.url,
        [
            "Microsoft.Communication.IncomingCall",
            "Microsoft.Communication.RecordingFileStatusUpdated",
        ],
    )
    files = serve_files(tmp_path / "files")
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    caller = CallAgent(socket_url(live_spool.http_url), caller_token, record_dir=tmp_path)
    agent = CallAgent(socket_url(live_spool.http_url), agent_token)
    caller_user = CommunicationUserIdentifier(caller_id)

    async def scenario() -> dict[str, Any]:
        await caller.connect()
        await agent.connect()
        try:
            # when the caller rings the IVR's line
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            assert incoming["from"]["rawId"] == caller_id and incoming["to"]["rawId"] == line_id

            # the application answers, and the caller's media reaches the bridge
            answered = await asyncio.to_thread(
                client.answer_call,
                incoming["incomingCallContext"],
                app.callbacks.url,
                operation_context="ivr",
            )
            await caller.wait_state("Connected")
            await asyncio.to_thread(app.wait_callback, "CallConnected")
            call = client.get_call_connection(answered.call_connection_id)
            recording = await asyncio.to_thread(
                client.start_recording, server_call_id=answered.server_call_id
            )
            await asyncio.to_thread(app.wait_callback, "RecordingStateChanged")

            # a prompt, spoken offline, reaches the caller
            frames_before = caller.frames_received
            await asyncio.to_thread(
                call.play_media,
                TextSource(
                    text="Welcome to Spool. Press one, then two.", voice_name="en-US-JennyNeural"
                ),
                operation_context="welcome",
            )
            await asyncio.to_thread(app.wait_callback, "PlayStarted")
            await asyncio.to_thread(app.wait_callback, "PlayCompleted", 30)
            assert caller.frames_received > frames_before + 50

            # audio files by URL, WAV and MP3, fetched through the outbound module
            await asyncio.to_thread(
                call.play_media,
                [FileSource(url=f"{files}/tone.wav"), FileSource(url=f"{files}/tone.mp3")],
                operation_context="files",
            )
            await asyncio.to_thread(app.wait_callback, "PlayCompleted", 30, context="files")
            assert app.callback_types().count("PlayCompleted") == 2

            # the caller's keys are collected
            await asyncio.to_thread(
                call.start_recognizing_media,
                input_type=RecognizeInputType.DTMF,
                target_participant=caller_user,
                dtmf_max_tones_to_collect=2,
                initial_silence_timeout=10,
                dtmf_inter_tone_timeout=5,
                operation_context="menu",
            )
            await asyncio.sleep(0.5)
            await caller.send_dtmf("1")
            await caller.send_dtmf("2")
            recognized = await asyncio.to_thread(app.wait_callback, "RecognizeCompleted")

            # tones go back to the caller
            await asyncio.to_thread(
                call.send_dtmf_tones, [DtmfTone.NINE, DtmfTone.POUND], caller_user
            )
            await asyncio.to_thread(app.wait_callback, "SendDtmfTonesCompleted")

            participants = await asyncio.to_thread(lambda: list(call.list_participants()))

            # the recording stops and its file is announced
            await asyncio.to_thread(client.stop_recording, recording.recording_id)
            file_status = await asyncio.to_thread(app.wait_event, "RecordingFileStatusUpdated", 30)

            # and the call is handed over to a person
            await asyncio.to_thread(
                call.transfer_call_to_participant, CommunicationUserIdentifier(agent_id)
            )
            await agent.answer()
            await asyncio.to_thread(app.wait_callback, "CallTransferAccepted")
            await asyncio.to_thread(app.wait_callback, "CallDisconnected")
            await agent.wait_state("Connected")
            await caller.hang_up()
            await caller.wait_state("Disconnected")
            return {
                "recognized": recognized,
                "participants": participants,
                "file_status": file_status,
            }
        finally:
            await caller.close()
            await agent.close()

    try:
        result = asyncio.run(scenario())
    finally:
        app.stop()
        stop_serving()

    # then the keys were heard, in the ACS shape
    data = result["recognized"]["data"]
    assert data["dtmfResult"]["tones"] == ["one", "two"]
    assert data["resultInformation"]["subCode"] == 8531
    assert data["operationContext"] == "menu"
    assert [p.identifier.raw_id for p in result["participants"]] == [caller_id]

    # and the caller heard the tones sent to it (9: 852 + 1477 Hz)
    [heard] = [path for path in caller.recordings if path.name.endswith("-media.wav")]
    samples, rate = read_wav(heard)
    assert tone_energy(samples, rate, 1477.0) > 20 * max(tone_energy(samples, rate, 1234.0), 1e-9)

    # and callbacks came in order, each once
    types = app.callback_types()
    assert types.index("CallConnected") < types.index("PlayStarted") < types.index("PlayCompleted")
    assert types.count("PlayCompleted") == types.count("PlayStarted") == 2

    # and the recording holds the caller's 440 Hz tone and the spoken prompt, downloadable with
    # a signed GET (SDK 1.6 refuses non-Microsoft hosts: docs/automation.md)
    chunk = result["file_status"]["recordingStorageInfo"]["recordingChunks"][0]
    path = tmp_path / "recording.wav"
    path.write_bytes(signed_get(connection, chunk["contentLocation"], live_spool.cert))
    samples, rate = read_wav(path)
    assert len(samples) / rate > 3
    quiet = tone_energy(samples, rate, 1234.0)
    assert tone_energy(samples, rate, 440.0) > 20 * max(quiet, 1e-9)  # the caller
    assert tone_energy(samples, rate, 1000.0) > 20 * max(quiet, 1e-9)  # the played files


def signed_get(connection: str, url: str, cert: str) -> bytes:
    """A GET signed as the SDK signs its requests (HMAC for the endpoint's host)."""
    from azure.communication.callautomation._shared.policy import HMACCredentialsPolicy
    from azure.communication.callautomation._shared.utils import parse_connection_str
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.transport import HttpRequest, RequestsTransport

    endpoint, key = parse_connection_str(connection)
    if not endpoint.startswith("https://"):
        endpoint = f"https://{endpoint}"
    policy = HMACCredentialsPolicy(endpoint.rstrip("/"), key)
    pipeline = Pipeline(transport=RequestsTransport(connection_verify=cert), policies=[policy])
    response = pipeline.run(HttpRequest("GET", url)).http_response
    assert response.status_code == 200, response.text()
    return bytes(response.body())
