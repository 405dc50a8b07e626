"""A kept recording as an HTTP answer: the whole file (200), the one byte range a `Range:
bytes=a-b` header asks for (206), or 416 outside it; other Range forms get the whole file, as
HTTP allows. The ACS download URLs (HMAC) and the console's player (session) both answer with
this, wherever the recording is kept (apps/automation/storage.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse

from apps.automation import storage
from apps.automation.exceptions import RecordingNotFound
from apps.automation.models import Recording

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def ready_size(recording: Recording) -> int | None:
    """The recording's size when its file is there to download, else None."""
    if recording.deleted_at is not None or not recording.file_name:
        return None
    return storage.size_of(recording.file_name)


def recording_response(recording: Recording, range_header: str) -> HttpResponse:
    """Raises RecordingNotFound when the file is not (or no longer) there."""
    size = ready_size(recording)
    if size is None:
        raise RecordingNotFound("The recording's file is not ready, or was deleted.")
    content_type = CONTENT_TYPES.get(recording.audio_format, "application/octet-stream")
    wanted = RANGE.match(range_header.strip())
    if not wanted or not (wanted[1] or wanted[2]):
        start, end, status = 0, size - 1, 200
    elif wanted[1]:
        start, status = int(wanted[1]), 206
        end = min(int(wanted[2]), size - 1) if wanted[2] else size - 1
    else:  # the last N bytes
        start, end, status = max(0, size - int(wanted[2])), size - 1, 206
    if start >= size or start > end:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    answer: HttpResponse = StreamingHttpResponse(  # type: ignore[assignment]
        _chunks(recording.file_name, start, end), status=status, content_type=content_type
    )
    answer["Content-Length"] = str(end - start + 1)
    answer["Accept-Ranges"] = "bytes"
    if status == 206:
        answer["Content-Range"] = f"bytes {start}-{end}/{size}"
    return answer


def _chunks(name: str, start: int, end: int) -> Iterator[bytes]:
    while start <= end:
        last = min(end, start + CHUNK - 1)
        yield storage.open_range(name, start, last)
        start = last + 1
