"""Recordings through the Call Automation API, with the Janus room played by a fake that writes
WAV segments: start, pause and resume (segments), stop (one file, RecordingFileStatusUpdated),
download with Range through the HMAC-signed content URL, delete, retention, and one resource
never reaching another's recordings."""

from __future__ import annotations

import array
import asyncio
import io
import json
import math
import struct
import time
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from apps.automation import media, services
from apps.automation.models import Recording
from apps.events.models import Event
from tests.automation.conftest import api, callbacks_of, types_of, wait_for_callback
from tests.automation.test_media_process import FakeRoom, connected_call
from tests.automation.tones import (
    alaw_encode,
    channel_count,
    channel_of,
    require_tool,
    rms,
    tone_energy,
)
from tests.conftest import AcsClient
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingRoom(FakeRoom):
    """Each segment is one second of a tone, as Janus would have written it."""

    async def start_recording(self, base: Path) -> Path:
        path = base.with_suffix(".wav")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            tone = (int(8000 * math.sin(2 * math.pi * 440 * i / 16000)) for i in range(16000))
            out.writeframes(array.array("h", tone).tobytes())
        return path


@pytest.fixture
def recording_media(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any
) -> media.MediaProcess:
    require_tool("ffmpeg")
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    monkeypatch.setattr(media, "AudioBridgeRoom", RecordingRoom)
    return media.MediaProcess("ws://fake")


async def recorded_call(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, process: media.MediaProcess
) -> tuple[str, str]:
    """A call recorded in two segments (a pause between), then stopped: (recording id, call id)."""
    _, connection_id, call_id = await connected_call(connect, resource, acs, receiver, process)
    started = await api(
        acs,
        "POST",
        "/calling/recordings",
        {"callLocator": {"kind": "serverCallLocator", "serverCallId": call_id}},
    )
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["recordingState"] == "active"
    recording_id = body["recordingId"]
    await process.handle({"type": "recording", "recording": recording_id})
    for action in (":pause", ":resume"):
        answer = await api(acs, "POST", f"/calling/recordings/{recording_id}{action}")
        assert answer.status_code == 202
        await process.handle({"type": "recording", "recording": recording_id})
    got = await api(acs, "GET", f"/calling/recordings/{recording_id}")
    assert got.status_code == 200 and got.json()["recordingState"] == "active"
    assert (await api(acs, "DELETE", f"/calling/recordings/{recording_id}")).status_code == 204
    await process.handle({"type": "recording", "recording": recording_id})
    return recording_id, call_id


async def test_a_paused_recording_is_one_file_announced_and_downloadable(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    recording_media: Any,
) -> None:
    recording_id, _ = await recorded_call(connect, resource, acs, receiver, recording_media)

    # then the application heard each state change
    await wait_for_callback(receiver, "RecordingStateChanged")
    states = [
        e["data"]["state"]
        for e in callbacks_of(receiver)
        if e["type"].endswith("RecordingStateChanged")
    ]
    assert states == ["active", "inactive", "active", "inactive"]

    # and RecordingFileStatusUpdated points at the joined file (two 1 s segments)
    event = await database_sync_to_async(
        lambda: Event.objects.get(event_type="Microsoft.Communication.RecordingFileStatusUpdated")
    )()
    chunk = event.data["recordingStorageInfo"]["recordingChunks"][0]
    content = chunk["contentLocation"]
    assert content.endswith(f"/recordings/{recording_id}/content")
    path = "/" + content.split("/", 3)[3]
    whole = await database_sync_to_async(acs.call)("GET", path, query="")
    assert whole.status_code == 200
    data = b"".join(whole.streaming_content)
    with wave.open(io.BytesIO(data)) as audio:
        assert 1.9 < audio.getnframes() / audio.getframerate() < 2.2

    # and a Range request gets those bytes only (206), as the SDK's download asks
    part = await database_sync_to_async(acs.call)(
        "GET", path, query="", headers={"Range": "bytes=0-99"}
    )
    assert part.status_code == 206 and b"".join(part.streaming_content) == data[:100]
    assert part["Content-Range"] == f"bytes 0-99/{len(data)}"
    beyond = await database_sync_to_async(acs.call)(
        "GET", path, query="", headers={"Range": f"bytes={len(data) + 10}-"}
    )
    assert beyond.status_code == 416


async def test_another_resource_cannot_reach_a_recording(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    other_acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    recording_media: Any,
) -> None:
    recording_id, _ = await recorded_call(connect, resource, acs, receiver, recording_media)
    for method, path in [
        ("GET", f"/recordings/{recording_id}/content"),
        ("DELETE", f"/recordings/{recording_id}/content"),
        ("GET", f"/calling/recordings/{recording_id}"),
        ("POST", f"/calling/recordings/{recording_id}:pause"),
    ]:
        answer = await api(other_acs, method, path)
        assert answer.status_code == 404, (method, path)
    assert await database_sync_to_async(
        Recording.objects.filter(pk=recording_id, deleted_at__isnull=True).exists
    )()


async def test_delete_removes_the_file_and_retention_prunes_old_ones(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    recording_media: Any,
    settings: Any,
) -> None:
    recording_id, _ = await recorded_call(connect, resource, acs, receiver, recording_media)
    recording = await database_sync_to_async(Recording.objects.get)(pk=recording_id)
    path = services.recording_path(recording)
    assert path.exists()
    deleted = await database_sync_to_async(acs.call)(
        "DELETE", f"/recordings/{recording_id}/content", query=""
    )
    assert deleted.status_code == 200
    assert not path.exists()
    gone = await database_sync_to_async(acs.call)(
        "GET", f"/recordings/{recording_id}/content", query=""
    )
    assert gone.status_code == 404

    # an old recording goes after SPOOL_RECORDING_RETENTION_DAYS
    second, _ = await recorded_call(connect, resource, acs, receiver, recording_media)
    await database_sync_to_async(
        lambda: Recording.objects.filter(pk=second).update(
            started_at=timezone.now() - timedelta(days=31)
        )
    )()
    settings.RECORDING_RETENTION_DAYS = 30
    assert await database_sync_to_async(services.prune_recordings)() == 1


async def test_recording_requests_that_make_no_sense_are_refused(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    recording_media: Any,
) -> None:
    _, _, call_id = await connected_call(connect, resource, acs, receiver, recording_media)
    locator = {"callLocator": {"kind": "serverCallLocator", "serverCallId": call_id}}
    for body, status in [
        ({"callLocator": {"kind": "serverCallLocator", "serverCallId": "nope"}}, 404),
        ({**locator, "recordingFormatType": "ogg"}, 400),
        ({**locator, "recordingChannelType": "stereo"}, 400),
        ({}, 400),
    ]:
        answer = await api(acs, "POST", "/calling/recordings", body)
        assert answer.status_code == status, (body, answer.content)
        assert answer.json()["error"]["message"]
    assert await database_sync_to_async(Recording.objects.count)() == 0
    first = await api(acs, "POST", "/calling/recordings", locator)
    assert first.status_code == 200
    twice = await api(acs, "POST", "/calling/recordings", locator)
    assert twice.status_code == 400
    assert "RecordingStateChanged" not in types_of(receiver)  # nothing ran for refusals


async def test_a_recording_kept_in_a_bucket_downloads_and_deletes_the_same(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    recording_media: Any,
    bucket: Any,
) -> None:
    recording_id, _ = await recorded_call(connect, resource, acs, receiver, recording_media)
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="calls")["Contents"]]
    assert keys == [f"recordings/{recording_id}.wav"]
    path = f"/recordings/{recording_id}/content"
    part = await database_sync_to_async(acs.call)(
        "GET", path, query="", headers={"Range": "bytes=0-3"}
    )
    assert part.status_code == 206 and b"".join(part.streaming_content) == b"RIFF"
    deleted = await database_sync_to_async(acs.call)("DELETE", path, query="")
    assert deleted.status_code == 200
    assert "Contents" not in bucket.list_objects_v2(Bucket="calls")


def pcma_mjr(path: Path, frequency: float, first_us: int, seconds: float) -> None:
    """A Janus .mjr of a G.711 A-law leg sending `frequency`, as AudioBridge writes one: the
    JSON header ("u": its first packet), then "MEET" + time + length + RTP per 20 ms packet."""
    header = json.dumps({"t": "a", "c": "pcma", "s": first_us, "u": first_us}).encode()
    out = bytearray(b"MJR00002" + len(header).to_bytes(2, "big") + header)
    for n in range(int(seconds * 50)):
        samples = [
            int(8000 * math.sin(2 * math.pi * frequency * (n * 160 + i) / 8000)) for i in range(160)
        ]
        rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, n * 160, 4321) + alaw_encode(samples)
        out += b"MEET" + struct.pack("!IH", n * 20, len(rtp)) + rtp
    path.write_bytes(out)


class UnmixedRoom(RecordingRoom):
    """Each leg sends its own tone (TONES, by raw id); a leg's .mjr is written when its
    recording stops, covering the time it was recorded."""

    tones: dict[str, float] = {}

    def __init__(self, url: str, room: str, on_event: Any, *, browsers: bool = False) -> None:
        super().__init__(url, room, on_event)
        self.recordings: dict[str, tuple[Path, int]] = {}

    @property
    def leg_recordings(self) -> dict[str, Path]:
        return {display: path for display, (path, _) in self.recordings.items()}

    async def start_leg_recording(self, display: str, base: Path) -> Path:
        path = base.with_name(base.name + "-audio.mjr")
        self.recordings[display] = (path, time.time_ns() // 1000)
        return path

    async def stop_leg_recording(self, display: str) -> Path | None:
        path, started = self.recordings.pop(display)
        seconds = (time.time_ns() // 1000 - started) / 1e6
        pcma_mjr(path, self.tones[display], started, seconds)
        return path


async def signal_offer(process: media.MediaProcess, call_id: str, raw_id: str) -> None:
    await process.handle(
        {
            "type": "signal",
            "call": call_id,
            "rawId": raw_id,
            "identity": raw_id.rsplit("_", 1)[-1],
            "channel": "test",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )


@pytest.fixture
def unmixed_media(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any
) -> media.MediaProcess:
    require_tool("ffmpeg")
    require_tool("janus-pp-rec")
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    monkeypatch.setattr(media, "AudioBridgeRoom", UnmixedRoom)
    return media.MediaProcess("ws://fake")


@pytest.mark.timeout(30)
async def test_an_unmixed_recording_has_a_channel_per_participant_lined_up_in_time(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    unmixed_media: media.MediaProcess,
) -> None:
    # given a call with the caller's media in, and a guest invited (ringing, media not yet in)
    process = unmixed_media
    caller, connection_id, call_id = await connected_call(connect, resource, acs, receiver, process)
    guest = await connect()
    added = await api(
        acs,
        "POST",
        f"/calling/callConnections/{connection_id}/participants:add",
        {"participantToAdd": {"rawId": guest.raw_id}},
    )
    assert added.status_code == 202, added.content
    await guest.until(type="call", event="incomingCall")
    await guest.send({"type": "call.accept", "callId": call_id})
    await guest.until(type="call", event="stateChanged", state="Connected")
    UnmixedRoom.tones = {caller.raw_id: 440.0, guest.raw_id: 1000.0}

    # when an unmixed recording starts with the guest pinned to channel 1
    started = await api(
        acs,
        "POST",
        "/calling/recordings",
        {
            "callLocator": {"kind": "serverCallLocator", "serverCallId": call_id},
            "recordingChannelType": "unmixed",
            "recordingFormatType": "wav",
            "channelAffinity": [{"channel": 1, "participant": {"rawId": guest.raw_id}}],
        },
    )
    assert started.status_code == 200, started.content
    recording_id = started.json()["recordingId"]
    await process.handle({"type": "recording", "recording": recording_id})
    await asyncio.sleep(1.0)  # the caller alone, on the next free channel (0)
    # and it is paused and resumed, and the guest's media joins while it records
    for action in (":pause", ":resume"):
        answer = await api(acs, "POST", f"/calling/recordings/{recording_id}{action}")
        assert answer.status_code == 202
        await process.handle({"type": "recording", "recording": recording_id})
    await signal_offer(process, call_id, guest.raw_id)
    await asyncio.sleep(1.0)  # both
    assert (await api(acs, "DELETE", f"/calling/recordings/{recording_id}")).status_code == 204
    await process.handle({"type": "recording", "recording": recording_id})

    # then the file is one WAV, two channels, two stretches long
    recording = await database_sync_to_async(Recording.objects.get)(pk=recording_id)
    path = services.recording_path(recording)
    assert path.name == f"{recording_id}.wav" and channel_count(path) == 2
    first, second = recording.segments
    assert len(first["tracks"]) == 1 and len(second["tracks"]) == 2
    assert not list(path.parent.glob("*.mjr"))  # the legs' files are gone
    rate = 16000
    caller_channel, guest_channel = channel_of(path, 0), channel_of(path, 1)
    # (each stretch a second and whatever the API calls around it took on a loaded machine)
    recorded = sum(segment["end"] - segment["start"] for segment in recording.segments) / 1e6
    assert recorded > 1.9 and abs(len(caller_channel) / rate - recorded) < 0.2
    # and the caller's channel holds the caller throughout, never the guest
    cut = int((first["end"] - first["start"]) / 1e6 * rate)
    for part in (caller_channel[: cut - 1600], caller_channel[cut + 1600 :]):
        assert tone_energy(part, rate, 440) > 2000
        assert tone_energy(part, rate, 1000) < 200
    # and the guest's channel is silent before the guest joined, then holds the guest only
    assert rms(guest_channel[: cut - 1600]) < 50
    later = guest_channel[cut + 3200 :]
    assert tone_energy(later, rate, 1000) > 2000 and tone_energy(later, rate, 440) < 200

    # and the metadata says who is on which channel, and the event says unmixed
    metadata = await database_sync_to_async(acs.call)(
        "GET", f"/recordings/{recording_id}/metadata", query=""
    )
    assert metadata.status_code == 200
    body = metadata.json()
    assert body["recordingInfo"]["channelType"] == "unmixed"
    assert body["recordingInfo"]["audioConfiguration"]["channels"] == 2
    assert body["participants"] == [
        {"participantId": caller.raw_id, "channel": 0},
        {"participantId": guest.raw_id, "channel": 1},
    ]
    event = await database_sync_to_async(
        lambda: Event.objects.get(event_type="Microsoft.Communication.RecordingFileStatusUpdated")
    )()
    assert event.data["recordingChannelType"] == "Unmixed"
    assert event.data["recordingFormatType"] == "Wav"
    states = [
        e["data"]["state"]
        for e in callbacks_of(receiver)
        if e["type"].endswith("RecordingStateChanged")
    ]
    assert states == ["active", "inactive", "active", "inactive"]


async def test_unmixed_requests_that_make_no_sense_are_refused(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    unmixed_media: media.MediaProcess,
) -> None:
    caller, _, call_id = await connected_call(connect, resource, acs, receiver, unmixed_media)
    locator = {"callLocator": {"kind": "serverCallLocator", "serverCallId": call_id}}
    unmixed = {**locator, "recordingChannelType": "unmixed"}
    me = {"rawId": caller.raw_id}

    def pin(*channels: Any, who: dict[str, Any] = me) -> list[dict[str, Any]]:
        return [{"channel": channel, "participant": who} for channel in channels]

    stranger = {"rawId": "8:acs:00000000-0000-0000-0000-000000000000_0000-nobody"}
    for body, target in [
        ({**unmixed, "recordingFormatType": "mp3"}, "recordingFormatType"),
        ({**unmixed, "channelAffinity": pin(5)}, "channelAffinity"),
        ({**unmixed, "channelAffinity": pin(-1)}, "channelAffinity"),
        ({**unmixed, "channelAffinity": pin("0")}, "channelAffinity"),
        ({**unmixed, "channelAffinity": pin(1, 1)}, "channelAffinity"),  # twice
        ({**unmixed, "channelAffinity": pin(0, who=stranger)}, "channelAffinity"),
        ({**unmixed, "channelAffinity": pin(0, 1, 2, 3, 4, None)}, "channelAffinity"),
        ({**unmixed, "channelAffinity": [{"channel": 0}]}, "channelAffinity"),
        ({**unmixed, "audioChannelParticipantOrdering": [stranger]}, None),
        ({**unmixed, "channelAffinity": pin(0), "audioChannelParticipantOrdering": [me]}, None),
        ({**locator, "channelAffinity": pin(0)}, "recordingChannelType"),  # mixed
        ({**unmixed, "channelAffinity": {"channel": 0}}, "channelAffinity"),
    ]:
        answer = await api(acs, "POST", "/calling/recordings", body)
        assert answer.status_code == 400, (body, answer.content)
        error = answer.json()["error"]
        assert error["code"] in ("BadRequest", "NotSupported") and error["message"]
        if target:
            assert error.get("target") == target, (body, error)
    assert await database_sync_to_async(Recording.objects.count)() == 0
    assert "RecordingStateChanged" not in types_of(receiver)

    # and the right shape is taken: the ordering gives the lowest free channels
    good = await api(
        acs,
        "POST",
        "/calling/recordings",
        {**unmixed, "channelAffinity": pin(0), "recordingFormatType": "wav"},
    )
    assert good.status_code == 200, good.content
    recording = await database_sync_to_async(Recording.objects.get)()
    assert recording.channel_type == "unmixed"
    assert recording.channels == [{"channel": 0, "participant": caller.raw_id}]
