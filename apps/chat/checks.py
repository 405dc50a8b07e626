"""Checks of raw chat input from callers: each returns the clean value or raises
InvalidChatRequest (400), MessageTooLarge (413) or TooManyParticipants naming the field.

Text is also refused when it holds a lone UTF-16 surrogate (JSON allows `"\\ud800"`), which no
database stores, or a NUL character, which PostgreSQL does not: either would otherwise fail on
write with a server error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.chat.exceptions import InvalidChatRequest, MessageTooLarge, TooManyParticipants
from apps.core.api import parse_rfc3339
from apps.core.identifiers import raw_id_of

# ACS limits (https://learn.microsoft.com/azure/communication-services/concepts/service-limits).
MAX_MESSAGE_BYTES = 28 * 1024
MAX_PARTICIPANTS = 250
MAX_PARTICIPANTS_PER_REQUEST = 200
MAX_TOPIC_LENGTH = 256
MAX_DISPLAY_NAME_LENGTH = 256
MAX_METADATA_ENTRIES = 32
MAX_METADATA_BYTES = 8 * 1024
# Thread and participant metadata (api-version 2025-03-15): "The total size of all metadata
# pairs can be up to 1KB in size", counted here as the UTF-8 bytes of every key and value.
MAX_THREAD_METADATA_BYTES = 1024
# A threadCreationDate retention policy deletes a thread 1 to 90 days after its creation.
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 90
RETENTION_KINDS = ("threadCreationDate", "none")


def is_storable(value: str) -> bool:
    """False when `value` holds a lone surrogate (UTF-8, and so every database, refuses it) or
    a NUL character (PostgreSQL refuses it in text and JSON)."""
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_storable(value: str, field: str) -> None:
    if not is_storable(value):
        raise InvalidChatRequest(
            f"{field} holds a NUL character or a lone UTF-16 surrogate, which is not valid text.",
            target=field,
        )


def check_text(value: Any, field: str, *, limit: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidChatRequest(f"{field} must be a string.", target=field)
    _check_storable(value, field)
    if required and not value.strip():
        raise InvalidChatRequest(f"{field} must not be empty.", target=field)
    if len(value) > limit:
        raise InvalidChatRequest(f"{field} is longer than {limit} characters.", target=field)
    return value


def check_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidChatRequest("metadata must map strings to strings.", target="metadata")
    for key, item in value.items():
        _check_storable(key + item, "metadata")
    if len(value) > MAX_METADATA_ENTRIES:
        raise InvalidChatRequest(
            f"metadata holds at most {MAX_METADATA_ENTRIES} entries.", target="metadata"
        )
    if len(json.dumps(value).encode()) > MAX_METADATA_BYTES:
        raise InvalidChatRequest(
            f"metadata is larger than {MAX_METADATA_BYTES} bytes.", target="metadata"
        )
    return dict(value)


def check_content(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidChatRequest("content must be a string.", target="content")
    _check_storable(value, "content")
    if not value.strip():
        raise InvalidChatRequest("content must not be empty.", target="content")
    if len(value.encode()) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"content is larger than {MAX_MESSAGE_BYTES // 1024} KB.", target="content"
        )
    return value


def check_thread_metadata(value: Any, field: str = "metadata") -> dict[str, str]:
    """Metadata of a thread or a participant: strings to strings, 1 KB in all."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidChatRequest(f"{field} must map strings to strings.", target=field)
    for key, item in value.items():
        _check_storable(key + item, field)
    size = sum(len(key.encode()) + len(item.encode()) for key, item in value.items())
    if size > MAX_THREAD_METADATA_BYTES:
        raise InvalidChatRequest(
            f"{field} is larger than {MAX_THREAD_METADATA_BYTES} bytes "
            f"({size} bytes of keys and values).",
            target=field,
        )
    return dict(value)


def merge_metadata(current: dict[str, str], patch: Any, field: str = "metadata") -> dict[str, str]:
    """`current` with a merge-patch applied (RFC 7396: a key set to null is removed), checked
    as a whole."""
    if patch is None:
        return {}  # the member itself set to null: no metadata left
    if not isinstance(patch, dict):
        raise InvalidChatRequest(f"{field} must map strings to strings.", target=field)
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return check_thread_metadata(merged, field)


def check_retention_policy(value: Any, field: str = "retentionPolicy") -> int | None:
    """A ChatRetentionPolicy: the days after creation a `threadCreationDate` policy deletes
    the thread, or None for `{"kind": "none"}` (and for null, which a merge-patch uses to
    remove the policy)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidChatRequest(
            f'{field} must be an object with a "kind" ({" or ".join(RETENTION_KINDS)}).',
            target=field,
        )
    kind = value.get("kind")
    if kind == "none":
        return None
    if kind != "threadCreationDate":
        raise InvalidChatRequest(
            f"{field}.kind must be one of {', '.join(RETENTION_KINDS)}.", target=f"{field}.kind"
        )
    days = value.get("deleteThreadAfterDays")
    target = f"{field}.deleteThreadAfterDays"
    if isinstance(days, bool) or not isinstance(days, int):
        raise InvalidChatRequest(
            f"{target} must be a whole number of days for a threadCreationDate policy.",
            target=target,
        )
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise InvalidChatRequest(
            f"{target} must be between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS}.",
            target=target,
        )
    return days


def check_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise InvalidChatRequest(f"{field} must be an RFC 3339 date-time.", target=field)
    return parsed


def parse_start_time(value: str | None) -> datetime | None:
    return check_time(value or None, "startTime")


@dataclass
class ParticipantRequest:
    raw_id: str
    display_name: str
    share_history_time: datetime | None
    metadata: dict[str, str]


def check_participant(item: Any, index: int, field: str) -> ParticipantRequest:
    target = f"{field}[{index}]"
    if not isinstance(item, dict):
        raise InvalidChatRequest(f"{target} must be an object.", target=target)
    raw_id = raw_id_of(item.get("communicationIdentifier"))
    if raw_id is None or not is_storable(raw_id):
        raise InvalidChatRequest(
            f"{target}.communicationIdentifier must name an identity.",
            target=f"{target}.communicationIdentifier",
        )
    return ParticipantRequest(
        raw_id=raw_id,
        display_name=check_text(
            item.get("displayName"),
            f"{target}.displayName",
            limit=MAX_DISPLAY_NAME_LENGTH,
        ),
        share_history_time=check_time(item.get("shareHistoryTime"), f"{target}.shareHistoryTime"),
        metadata=check_thread_metadata(item.get("metadata"), f"{target}.metadata"),
    )


def check_participants(value: Any, *, required: bool) -> list[ParticipantRequest]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise InvalidChatRequest("participants must be a non-empty list.", target="participants")
    if len(value) > MAX_PARTICIPANTS_PER_REQUEST:
        raise TooManyParticipants(
            f"At most {MAX_PARTICIPANTS_PER_REQUEST} participants may be added at once.",
            target="participants",
        )
    return [check_participant(item, i, "participants") for i, item in enumerate(value)]
