"""Chat's commands on the identity socket (/ws/, apps.accounts.consumers).

Chat events reach a socket through its identity's group. A socket that reconnects sends
`{"type": "chat.resume", "threads": {"<thread id>": <last sequence seen>}, "since": "<time>"}`
and gets every event it missed, from the database, then `chat.resumed` (docs/chat.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from apps.chat import catchup, checks, services
from apps.chat.exceptions import InvalidChatRequest
from apps.core.errors import ApiError

if TYPE_CHECKING:
    from apps.accounts.consumers import IdentityConsumer

MAX_CURSORS = 10_000


def _check_cursors(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > MAX_CURSORS
        or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()
        )
    ):
        raise InvalidChatRequest("threads must map thread ids to sequence numbers.")
    return dict(value)


async def resume(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
    try:
        services.require_scope(consumer.principal)
        cursors = _check_cursors(frame.get("threads"))
        since = checks.parse_start_time(frame.get("since"))
        result = await database_sync_to_async(catchup.missed_activity)(
            consumer.principal, cursors, since
        )
    except ApiError as error:
        await consumer.send_json({"type": "error", "code": error.code, "message": error.message})
        return
    for missed in result.frames:
        await consumer.send_json(missed)
    await consumer.send_json(
        {"type": "chat.resumed", "count": len(result.frames), "complete": result.complete}
    )
