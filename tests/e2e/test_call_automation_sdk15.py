"""Call Automation with azure-communication-callautomation 1.5, beside the 1.6 of the venv (both
import as `azure.communication.callautomation`): `make install` puts 1.5 in .venv/sdk15, and the
application runs in interpreters with that folder first on PYTHONPATH. It answers a call agent,
records, plays a prompt, and downloads and deletes the recording with the SDK's own methods,
which 1.5 sends to any host (1.6 refuses non-Microsoft ones: docs/automation.md)."""

from __future__ import annotations

import array
import asyncio
import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from apps.calls.agent import CallAgent
from tests.conftest import ROOT, LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_call_automation import App, route_to_application, subscribe, tone_energy
from tests.janus import require_janus

pytestmark = pytest.mark.e2e

SDK15 = ROOT / ".venv" / "sdk15"

# The application, one step per run: argv[1] the step, argv[2] its arguments as JSON; prints
# its result as JSON, with the SDK version it imported.
APPLICATION = """
import json, sys
from azure.communication.callautomation import CallAutomationClient, TextSource
from azure.communication.callautomation._version import VERSION
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

step, args = sys.argv[1], json.loads(sys.argv[2])
client = CallAutomationClient.from_connection_string(
    args["connection"], connection_verify=args["cert"]
)
result = {"version": VERSION}
if step == "answer":
    call = client.answer_call(args["context"], args["callback"], operation_context="sdk15")
    result.update(call_connection_id=call.call_connection_id, server_call_id=call.server_call_id)
elif step == "start_recording":
    recording = client.start_recording(server_call_id=args["server_call_id"])
    result.update(recording_id=recording.recording_id, state=recording.recording_state)
elif step == "play":
    client.get_call_connection(args["call_connection_id"]).play_media(
        TextSource(text="This call is recorded. Thank you.", voice_name="en-US-JennyNeural"),
        operation_context="prompt",
    )
elif step == "stop_recording":
    client.stop_recording(args["recording_id"])
elif step == "download_and_delete":
    # download_recording returns the streamed response (its docs say Iterable[bytes]).
    with open(args["path"], "wb") as out:
        for chunk in client.download_recording(args["content"]).iter_bytes():
            out.write(chunk)
    part = client.download_recording(args["content"], offset=44, length=1000)
    result.update(part_status=part.status_code, part=part.read().hex())
    try:
        client.delete_recording(args["delete"])
    except HttpResponseError as error:  # reported, so the download's checks still run
        result.update(delete_error=f"{error.status_code}: {error.message}")
    try:
        client.download_recording(args["content"]).read()
        result.update(after_delete=200)
    except ResourceNotFoundError as error:
        result.update(after_delete=error.status_code)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def sdk15() -> Path:
    if not (SDK15 / "azure" / "communication" / "callautomation").is_dir():
        message = f"azure-communication-callautomation 1.5 is not in {SDK15}: run `make install`"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return SDK15


def run_application(sdk: Path, step: str, args: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(sdk)
    result = subprocess.run(
        [sys.executable, "-c", APPLICATION, step, json.dumps(args)],
        env=env,
        cwd=sdk,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.fail(f"SDK 1.5 step {step!r} failed:\n{result.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["version"] == "1.5.0", answer
    return answer


@pytest.mark.timeout(120)
def test_sdk_15_answers_records_plays_and_downloads_and_deletes_the_recording(
    sdk15: Path, live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    # given a line routed to the application, its receivers, and a caller
    connection = live_spool.create_resource()
    _, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
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
    caller = CallAgent(socket_url(live_spool.http_url), caller_token)
    common = {"connection": connection, "cert": live_spool.cert}

    async def application(step: str, **args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(run_application, sdk15, step, {**common, **args})

    async def scenario() -> dict[str, Any]:
        await caller.connect()
        try:
            # when the caller rings the line and SDK 1.5 answers
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            answered = await application(
                "answer", context=incoming["incomingCallContext"], callback=app.callbacks.url
            )
            await caller.wait_state("Connected")
            connected = await asyncio.to_thread(app.wait_callback, "CallConnected")
            assert connected["data"]["callConnectionId"] == answered["call_connection_id"]

            # records, plays a prompt, and stops recording
            recording = await application(
                "start_recording", server_call_id=answered["server_call_id"]
            )
            await asyncio.to_thread(app.wait_callback, "RecordingStateChanged")
            await application("play", call_connection_id=answered["call_connection_id"])
            played = await asyncio.to_thread(app.wait_callback, "PlayCompleted", 30)
            assert played["data"]["operationContext"] == "prompt"
            await application("stop_recording", recording_id=recording["recording_id"])
            file_status = await asyncio.to_thread(app.wait_event, "RecordingFileStatusUpdated", 30)
            await caller.hang_up()
            await caller.wait_state("Disconnected")
            return {"recording": recording, "file_status": file_status}
        finally:
            await caller.close()

    try:
        result = asyncio.run(scenario())
    finally:
        app.stop()
    assert result["recording"]["state"] == "active"

    # and downloads the file (whole and a range) and deletes it, with the SDK's own methods
    chunk = result["file_status"]["recordingStorageInfo"]["recordingChunks"][0]
    path = tmp_path / "recording.wav"
    downloaded = run_application(
        sdk15,
        "download_and_delete",
        {
            **common,
            "content": chunk["contentLocation"],
            "delete": chunk["deleteLocation"],
            "path": str(path),
        },
    )

    # then the WAV is the call's audio: the caller's 440 Hz tone, through the prompt
    with wave.open(str(path)) as audio:
        assert (audio.getsampwidth(), audio.getnchannels()) == (2, 1)
        rate = audio.getframerate()
        samples = array.array("h", audio.readframes(audio.getnframes()))
    assert len(samples) / rate > 1
    assert tone_energy(samples, rate, 440.0) > 20 * max(tone_energy(samples, rate, 1234.0), 1e-9)
    # the range is those bytes of the file
    assert downloaded["part_status"] == 206
    assert bytes.fromhex(downloaded["part"]) == path.read_bytes()[44:1044]
    # and delete_recording succeeded (the SDK accepts only 200), after which the content is gone
    assert "delete_error" not in downloaded, (
        f"delete_recording raised {downloaded['delete_error']} "
        f"(a GET of the content afterwards: {downloaded['after_delete']})"
    )
    assert downloaded["after_delete"] == 404
