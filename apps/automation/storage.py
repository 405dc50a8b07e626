"""Where finished recordings are kept: files under SPOOL_RECORDINGS_DIR by default, or objects in
an S3-compatible bucket (AWS S3, MinIO, Ceph, ...) when SPOOL_RECORDINGS_S3_BUCKET is set.
Janus always writes its segments to SPOOL_RECORDINGS_DIR; the joined file moves to the bucket
once it is complete, so a bucket outage delays a recording (it is kept locally and the upload is
tried again) and never loses it.

Downloads go through Spool either way (HMAC-signed, with Range), so the bucket needs no public
access: `open_range` reads the bytes asked for. Credentials come from boto3's usual places
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """A kept recording: its name (a file name, or the object's key) and size in bytes."""

    name: str
    size: int


def in_bucket() -> bool:
    return bool(settings.RECORDINGS_S3_BUCKET)


@cache
def _client() -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.RECORDINGS_S3_ENDPOINT or None,
        region_name=settings.RECORDINGS_S3_REGION or None,
    )


def _key(name: str) -> str:
    return f"{settings.RECORDINGS_S3_PREFIX}{name}"


def keep(local: Path) -> Stored:
    """Keep a finished recording file; in a bucket the local copy goes once uploaded. Raises
    what boto3 raises when the bucket refuses: the caller keeps the file and tries later."""
    size = local.stat().st_size
    if not in_bucket():
        return Stored(local.name, size)
    _client().upload_file(str(local), settings.RECORDINGS_S3_BUCKET, _key(local.name))
    local.unlink(missing_ok=True)
    return Stored(local.name, size)


def size_of(name: str) -> int | None:
    """The kept recording's size, or None when it is not there (deleted, never finished)."""
    if not name:
        return None
    if not in_bucket():
        path = settings.RECORDINGS_DIR / name
        return path.stat().st_size if path.is_file() else None
    try:
        head = _client().head_object(Bucket=settings.RECORDINGS_S3_BUCKET, Key=_key(name))
    except Exception as error:  # botocore's ClientError for a missing key
        if _missing(error):
            return None
        raise
    return int(head["ContentLength"])


def open_range(name: str, start: int, end: int) -> bytes:
    """Bytes `start` to `end` (inclusive) of a kept recording."""
    if not in_bucket():
        with (settings.RECORDINGS_DIR / name).open("rb") as file:
            file.seek(start)
            return file.read(end - start + 1)
    answer = _client().get_object(
        Bucket=settings.RECORDINGS_S3_BUCKET, Key=_key(name), Range=f"bytes={start}-{end}"
    )
    return bytes(answer["Body"].read())


def remove(name: str) -> None:
    if not name:
        return
    if not in_bucket():
        (settings.RECORDINGS_DIR / name).unlink(missing_ok=True)
        return
    _client().delete_object(Bucket=settings.RECORDINGS_S3_BUCKET, Key=_key(name))


def _missing(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound")
