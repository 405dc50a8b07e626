"""An unmixed recording end to end: the official Python SDK (azure-communication-callautomation
1.6) against `manage.py serve` with the media plane, two Python call agents sending different
tones; the downloaded WAV has each participant on its own channel, as the metadata says."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from apps.calls.agent import CallAgent, ToneTrack
from tests.automation.tones import channel_count, channel_of, require_tool, tone_energy
from tests.conftest import LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.e2e.test_call_automation import App, route_to_application, signed_get, subscribe
from tests.janus import require_janus

pytestmark = pytest.mark.e2e


def test_an_unmixed_recording_puts_each_participant_on_its_channel(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    require_tool("janus-pp-rec")
    from azure.communication.callautomation import (
        CallAutomationClient,
        ChannelAffinity,
        RecordingChannel,
        RecordingFormat,
    )
    from azure.communication.identity import CommunicationUserIdentifier

    # given a caller (440 Hz) ringing an application's line, and a guest (1 kHz) to add
    connection = live_spool.create_resource()
    caller_id, caller_token = voip_user(live_spool, connection)
    line_id, _ = voip_user(live_spool, connection)
    guest_id, guest_token = voip_user(live_spool, connection)
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
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    caller = CallAgent(socket_url(live_spool.http_url), caller_token)
    guest = CallAgent(socket_url(live_spool.http_url), guest_token, audio=lambda: ToneTrack(1000))

    async def scenario() -> dict[str, Any]:
        await caller.connect()
        await guest.connect()
        try:
            await caller.call(line_id)
            incoming = await asyncio.to_thread(app.wait_event, "IncomingCall")
            answered = await asyncio.to_thread(
                client.answer_call, incoming["incomingCallContext"], app.callbacks.url
            )
            await caller.wait_state("Connected")
            await asyncio.to_thread(app.wait_callback, "CallConnected")
            call = client.get_call_connection(answered.call_connection_id)

            # when an unmixed recording pins the caller to channel 1, and the guest joins later
            recording = await asyncio.to_thread(
                client.start_recording,
                server_call_id=answered.server_call_id,
                recording_channel_type=RecordingChannel.UNMIXED,
                recording_format_type=RecordingFormat.WAV,
                channel_affinity=[
                    ChannelAffinity(
                        target_participant=CommunicationUserIdentifier(caller_id), channel=1
                    )
                ],
            )
            await asyncio.to_thread(app.wait_callback, "RecordingStateChanged")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(call.add_participant, CommunicationUserIdentifier(guest_id))
            await guest.answer()
            await guest.wait_state("Connected")
            await asyncio.to_thread(app.wait_callback, "AddParticipantSucceeded")
            # the guest's media is flowing (it hears the call) before two seconds of it: on a
            # loaded machine, DTLS can finish well after "Connected"
            for _ in range(200):
                if guest.frames_received > 25:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(client.stop_recording, recording.recording_id)
            file_status = await asyncio.to_thread(app.wait_event, "RecordingFileStatusUpdated", 30)
            await caller.hang_up()
            return file_status
        finally:
            await caller.close()
            await guest.close()

    try:
        file_status = asyncio.run(scenario())
    finally:
        app.stop()

    # then the file says unmixed, and the metadata who is on which channel
    assert file_status["recordingChannelType"] == "Unmixed"
    chunk = file_status["recordingStorageInfo"]["recordingChunks"][0]
    metadata = json.loads(signed_get(connection, chunk["metadataLocation"], live_spool.cert))
    assert metadata["recordingInfo"]["channelType"] == "unmixed"
    assert {p["participantId"]: p["channel"] for p in metadata["participants"]} == {
        guest_id: 0,
        caller_id: 1,
    }
    # and each channel of the WAV holds its own participant only
    path = tmp_path / "recording.wav"
    path.write_bytes(signed_get(connection, chunk["contentLocation"], live_spool.cert))
    assert channel_count(path) == 2
    rate = 16000
    guest_channel, caller_channel = channel_of(path, 0, rate), channel_of(path, 1, rate)
    assert len(caller_channel) / rate > 2.5
    assert tone_energy(caller_channel, rate, 440) > 800
    assert tone_energy(caller_channel, rate, 1000) < 200
    late = guest_channel[-rate:]  # the guest's last second
    assert tone_energy(late, rate, 1000) > 800 and tone_energy(late, rate, 440) < 200
    assert tone_energy(guest_channel[: rate // 2], rate, 1000) < 200  # not there yet
