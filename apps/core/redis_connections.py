"""Clients of Spool's Redis: the one at REDIS_URL, or, with REDIS_SENTINELS, the master the
Redis Sentinels name, asked again on every new connection, so that after a failover each client
reconnects to the promoted replica by itself.

With Sentinels, REDIS_URL's host is the master's name in the Sentinels' configuration and its
password and database number apply to the master (`redis://:secret@spool/0`). The channel
layer (channels-redis), the cache (Django's RedisCache, through `SentinelPool`), Celery's
broker (kombu's `sentinel://` transport) and the clients below all follow it (spool/settings.py
builds their configurations).

    client().get("key")                        # the cache's Redis, synchronously
    await async_client().publish(channel, x)   # the same, from an event loop
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
from django.conf import settings
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel, SentinelConnectionPool

# A Sentinel that does not answer is skipped for the next one within this time.
SENTINEL_TIMEOUT_SECONDS = 1.0


def master_of(url: str) -> dict[str, Any]:
    """The master's name and its connection's password and database, from a REDIS_URL."""
    parts = urlsplit(url)
    return {
        "service_name": parts.hostname or "",
        "password": unquote(parts.password) if parts.password else None,
        "db": int(parts.path.strip("/") or 0),
    }


def sentinel_kwargs() -> dict[str, Any]:
    return {
        "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
        "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
    }


class SentinelPool:
    """For Django's RedisCache (`OPTIONS["pool_class"]`), which builds its pools with
    `pool_class.from_url(LOCATION, **OPTIONS)`."""

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SentinelConnectionPool:
        master = master_of(url)
        sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=sentinel_kwargs())
        return SentinelConnectionPool(
            master["service_name"],
            sentinel,
            password=master["password"],
            db=master["db"],
            **options,
        )


def client(url: str | None = None, **options: Any) -> redis.Redis:
    """A client of Spool's Redis (or of `url`, another database of it)."""
    url = url or settings.REDIS_URL
    if not settings.REDIS_SENTINELS:
        return redis.Redis.from_url(url, **options)
    return redis.Redis(connection_pool=SentinelPool.from_url(url, **options))


def async_client(url: str | None = None, **options: Any) -> redis.asyncio.Redis:
    """client(), for an event loop."""
    url = url or settings.REDIS_URL
    if not settings.REDIS_SENTINELS:
        return redis.asyncio.Redis.from_url(url, **options)
    master = master_of(url)
    sentinel = AsyncSentinel(settings.REDIS_SENTINELS, sentinel_kwargs=sentinel_kwargs())
    return sentinel.master_for(
        master["service_name"], password=master["password"], db=master["db"], **options
    )
