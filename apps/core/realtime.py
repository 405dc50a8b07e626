"""The realtime publisher: push a payload to Channels groups, after the current commit.

Sync code that is not running for an async caller (a WSGI request thread, a Celery task)
publishes through one event loop thread per process, so that every publish reuses that
loop's Redis connection instead of starting a loop and a connection of its own (asgiref's
`async_to_sync` does both when no loop is at hand), and does not wait for Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

_publisher_lock = threading.Lock()
_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None


def group_name(*parts: object) -> str:
    """A channel-layer-safe group name ("identity.<uuid>")."""
    return ".".join(str(part) for part in parts)


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's publishing loop (a fork, such as a Celery child, starts its own)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


Message = tuple[str, dict[str, Any]]  # (group, payload)


async def _send(layer: Any, messages: list[Message]) -> None:
    results = await asyncio.gather(
        *(
            layer.group_send(group, {"type": "realtime.event", "payload": payload})
            for group, payload in messages
        ),
        return_exceptions=True,
    )
    for (group, _), result in zip(messages, results, strict=True):
        if isinstance(result, BaseException):
            logger.error("could not publish to %s: %r", group, result)


def send_now(messages: list[Message]) -> None:
    """Send each payload to every socket in its group; consumers dispatch on payload["type"].

    A broker outage is logged, never raised: the database write that caused the event
    has already committed, and clients catch up when they reconnect.
    """
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    called_from_async = getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None
    if called_from_async or isinstance(layer, InMemoryChannelLayer):
        try:
            async_to_sync(_send)(layer, messages)
        except Exception:
            logger.exception("could not publish to %s", [group for group, _ in messages])
        return
    asyncio.run_coroutine_threadsafe(_send(layer, messages), _publisher_loop())


def publish_now(groups: str | Iterable[str], payload: dict[str, Any]) -> None:
    targets = [groups] if isinstance(groups, str) else list(groups)
    send_now([(group, payload) for group in targets])


def publish(groups: str | Iterable[str], payload: dict[str, Any]) -> None:
    """Publish once the surrounding transaction commits (at once outside one)."""
    targets = [groups] if isinstance(groups, str) else list(groups)
    transaction.on_commit(lambda: publish_now(targets, payload))


def send_after_commit(messages: list[Message]) -> None:
    """Send distinct payloads to their groups once the surrounding transaction commits."""
    transaction.on_commit(lambda: send_now(messages))
