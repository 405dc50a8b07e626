"""Checks of raw chat input from callers: each returns the clean value or raises
InvalidChatRequest (400), MessageTooLarge (413) or TooManyParticipants naming the field."""

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


def check_text(value: Any, field: str, *, limit: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidChatRequest(f"{field} must be a string.", target=field)
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
    if not value.strip():
        raise InvalidChatRequest("content must not be empty.", target="content")
    if len(value.encode()) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"content is larger than {MAX_MESSAGE_BYTES // 1024} KB.", target="content"
        )
    return value


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


def check_participant(item: Any, index: int, field: str) -> ParticipantRequest:
    target = f"{field}[{index}]"
    if not isinstance(item, dict):
        raise InvalidChatRequest(f"{target} must be an object.", target=target)
    raw_id = raw_id_of(item.get("communicationIdentifier"))
    if raw_id is None:
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
