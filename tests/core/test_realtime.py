"""The process's realtime publisher (apps/core/realtime.py) on the Redis pub/sub channel layer
the platform runs: batches reach every group in order, however large, and after Redis forgot
its scripts (a failover to a fresh master)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer

from apps.core import realtime


@pytest.fixture
async def layer(shared_redis: str, settings: Any) -> AsyncIterator[RedisPubSubChannelLayer]:
    settings.REDIS_URL = shared_redis  # the publisher's own connection
    layer = RedisPubSubChannelLayer(hosts=[shared_redis])
    yield layer
    await layer.flush()


async def subscribed(layer: RedisPubSubChannelLayer, groups: list[str]) -> list[str]:
    channels = []
    for group in groups:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        channels.append(channel)
    return channels


async def received(layer: RedisPubSubChannelLayer, channel: str, count: int) -> list[Any]:
    return [
        (await asyncio.wait_for(layer.receive(channel), 10))["payload"]["n"] for _ in range(count)
    ]


async def test_a_batch_larger_than_one_script_reaches_every_group_in_order(
    layer: RedisPubSubChannelLayer,
) -> None:
    # given three groups, each with a socket's channel in it
    groups = [f"test.{uuid.uuid4().hex}" for _ in range(3)]
    channels = await subscribed(layer, groups)
    publisher = realtime._Publisher(layer)
    try:
        # when one batch of more payloads than one script run takes is handed over
        per_group = realtime.SCRIPT_BATCH // 2
        publisher.submit([(group, {"n": n}) for n in range(per_group) for group in groups])

        # then each group got all of its payloads, in the order they were handed over
        for channel in channels:
            assert await received(layer, channel, per_group) == list(range(per_group))
    finally:
        publisher.loop.call_soon_threadsafe(publisher.loop.stop)


async def test_the_publisher_loads_its_script_again_after_redis_forgot_it(
    layer: RedisPubSubChannelLayer, shared_redis: str
) -> None:
    # given a publisher that has published once
    group = f"test.{uuid.uuid4().hex}"
    (channel,) = await subscribed(layer, [group])
    publisher = realtime._Publisher(layer)
    try:
        publisher.submit([(group, {"n": 1})])
        assert await received(layer, channel, 1) == [1]

        # when Redis forgets its scripts (a failover to a master that never loaded it)
        redis.Redis.from_url(shared_redis).script_flush()

        # then the next payload still arrives
        publisher.submit([(group, {"n": 2})])
        assert await received(layer, channel, 1) == [2]
    finally:
        publisher.loop.call_soon_threadsafe(publisher.loop.stop)
