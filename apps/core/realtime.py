"""The realtime publisher: push payloads to Channels groups, after the current commit.

Sync code that is not running for an async caller (a WSGI request thread, a Celery task)
hands its payloads to one publisher per process: an event loop thread that sends whatever
has queued up since its last round trip as one Redis script, in the order it was handed
over. So a request neither starts a loop and a connection of its own (asgiref's
`async_to_sync` does both when no loop is at hand) nor waits for Redis, and a chat message
for ten participants costs one round trip, not ten (channels-redis sends each group message
alone, under a lock, waiting for its answer: the limit of bench/chat.py before this).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import uvloop
from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import transaction
from redis import asyncio as aioredis

from apps.core import redis_connections

logger = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any]]  # (group, payload)


def group_name(*parts: object) -> str:
    """A channel-layer-safe group name ("identity.<uuid>")."""
    return ".".join(str(part) for part in parts)


def _envelope(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "realtime.event", "payload": payload}


# One command for a batch: redis-py builds, sends and parses each command of a pipeline in
# Python, which for a chat message's ten PUBLISHes was a tenth of the posting process's CPU
# (profiled, bench/chat.py). ARGV: channel, payload, channel, payload, ...
PUBLISH_EACH = """
for i = 1, #ARGV, 2 do
    redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
"""
SCRIPT_BATCH = 500  # payloads per script run: Redis serves nobody else while one runs


class _Publisher:
    """One process's publishing thread. Payloads queue on its loop; a single flushing task
    sends each batch as one script of PUBLISH commands in the layer's own wire format (the
    group's channel name and serializer), so consumers receive them as group messages."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        # uvloop: its call_soon_threadsafe wakes the loop without letting go of the GIL, where
        # asyncio's writes to a socket and must then wait for the GIL again, behind the very
        # thread it woke (a tenth of the chat commit thread's time, profiled, bench/chat.py).
        self.loop = uvloop.new_event_loop()
        self.pending: list[Message] = []
        self.flushing = False
        self.redis: aioredis.Redis | None = None
        self.publish_each: Any = None  # PUBLISH_EACH, registered on self.redis
        threading.Thread(target=self.loop.run_forever, name="realtime", daemon=True).start()

    def submit(self, messages: list[Message]) -> None:
        self.loop.call_soon_threadsafe(self._queue, messages)

    def _queue(self, messages: list[Message]) -> None:
        self.pending.extend(messages)
        if not self.flushing:
            self.flushing = True
            self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self._send(batch)
                except Exception as error:
                    logger.error("could not publish %d payloads: %r", len(batch), error)
        finally:
            self.flushing = False

    async def _send(self, batch: list[Message]) -> None:
        if not isinstance(self.layer, RedisPubSubChannelLayer):
            await _send_each(self.layer, batch)
            return
        if self.redis is None:
            self.redis = redis_connections.async_client()
            self.publish_each = self.redis.register_script(PUBLISH_EACH)
        for start in range(0, len(batch), SCRIPT_BATCH):
            args: list[Any] = []
            for group, payload in batch[start : start + SCRIPT_BATCH]:
                args.append(self.layer._get_group_channel_name(group))
                args.append(self.layer.serialize(_envelope(payload)))
            await self.publish_each(args=args)  # (it loads the script again after a failover)


_publisher_lock = threading.Lock()
_publisher: tuple[int, _Publisher] | None = None


def _process_publisher(layer: Any) -> _Publisher:
    """This process's publisher (a fork, such as a Celery child, starts its own)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid() or _publisher[1].layer is not layer:
            _publisher = (os.getpid(), _Publisher(layer))
        return _publisher[1]


async def _send_each(layer: Any, messages: list[Message]) -> None:
    results = await asyncio.gather(
        *(layer.group_send(group, _envelope(payload)) for group, payload in messages),
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
            async_to_sync(_send_each)(layer, messages)
        except Exception:
            logger.exception("could not publish to %s", [group for group, _ in messages])
        return
    _process_publisher(layer).submit(messages)


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
