"""Recordings through the Call Automation API, with the Janus room played by a fake that writes
WAV segments: start, pause and resume (segments), stop (one file, RecordingFileStatusUpdated),
download with Range through the HMAC-signed content URL, delete, retention, and one resource
never reaching another's recordings."""

from __future__ import annotations

import array
import io
import math
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
from tests.automation.tones import require_tool
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
        ({**locator, "recordingChannelType": "unmixed"}, 400),
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
