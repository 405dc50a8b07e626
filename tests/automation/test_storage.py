"""Recordings kept in an S3-compatible bucket (a moto server on 127.0.0.1 plays the bucket):
kept, sized, read by range, removed; and a bucket that refuses leaves the file where it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.automation import storage


def test_a_recording_moves_to_the_bucket_and_is_read_back_by_range(
    bucket: Any, tmp_path: Path
) -> None:
    local = tmp_path / "abc.wav"
    local.write_bytes(bytes(range(256)) * 4)

    kept = storage.keep(local)

    assert kept == storage.Stored("abc.wav", 1024)
    assert not local.exists()  # the bucket holds it now
    listed = bucket.list_objects_v2(Bucket="calls")["Contents"]
    assert [o["Key"] for o in listed] == ["recordings/abc.wav"]
    assert storage.size_of("abc.wav") == 1024
    assert storage.open_range("abc.wav", 10, 19) == bytes(range(10, 20))
    storage.remove("abc.wav")
    assert storage.size_of("abc.wav") is None


def test_a_bucket_that_refuses_leaves_the_file_in_place(
    bucket: Any, tmp_path: Path, settings: Any
) -> None:
    settings.RECORDINGS_S3_BUCKET = "no-such-bucket"
    local = tmp_path / "keep.wav"
    local.write_bytes(b"RIFF")
    with pytest.raises(Exception):  # noqa: B017 (whatever boto3 raises for it)
        storage.keep(local)
    assert local.exists()


def test_without_a_bucket_recordings_stay_files(settings: Any, tmp_path: Path) -> None:
    settings.RECORDINGS_DIR = tmp_path
    settings.RECORDINGS_S3_BUCKET = ""
    local = tmp_path / "here.wav"
    local.write_bytes(b"0123456789")
    assert storage.keep(local) == storage.Stored("here.wav", 10)
    assert storage.open_range("here.wav", 2, 4) == b"234"
    assert storage.size_of("here.wav") == 10 and storage.size_of("gone.wav") is None
    storage.remove("here.wav")
    assert not local.exists()
