"""How many identity sockets each identity holds open, across every web process: at most
SPOOL_MAX_SOCKETS_PER_IDENTITY (one user's phone, laptop and a few tabs; not thousands).

A Redis sorted set per identity, of socket names scored by when they stop counting: a socket
renews its entry while it lives (the consumer's periodic token re-check), so the entries of a
process that died without closing its sockets lapse by themselves. Unit tests, which run
without Redis, count in this process only.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from apps.core.errors import ApiError
from apps.core.quotas import cache_redis

logger = logging.getLogger(__name__)

# An entry counts this long after its last renewal; sockets renew it more often.
LIFETIME_SECONDS = 90


class TooManySockets(ApiError):
    status = 429
    code = "TooManySockets"


def _key(identity_id: object) -> str:
    return f"spool:sockets:{identity_id}"


_local: dict[str, dict[str, float]] = {}
_local_lock = threading.Lock()


def open_socket(identity_id: object, channel_name: str) -> None:
    """Count a new socket of the identity. Raises TooManySockets (nothing counted) when it
    holds SPOOL_MAX_SOCKETS_PER_IDENTITY already."""
    limit = settings.MAX_SOCKETS_PER_IDENTITY
    now = time.time()
    redis = cache_redis()
    if redis is None:
        with _local_lock:
            entries = {
                name: until
                for name, until in _local.get(_key(identity_id), {}).items()
                if until > now
            }
            if len(entries) >= limit:
                raise _refusal(limit)
            entries[channel_name] = now + LIFETIME_SECONDS
            _local[_key(identity_id)] = entries
        return
    key = _key(identity_id)
    try:
        pipe = redis.pipeline()
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        _, held = pipe.execute()
        if held < limit:
            pipe = redis.pipeline()
            pipe.zadd(key, {channel_name: now + LIFETIME_SECONDS})
            pipe.expire(key, LIFETIME_SECONDS)
            pipe.execute()
    except Exception:
        logger.exception("sockets of %s not counted: Redis is unreachable", identity_id)
        return
    if held >= limit:
        raise _refusal(limit)


def keep_socket(identity_id: object, channel_name: str) -> None:
    """Renew a live socket's entry (call well within LIFETIME_SECONDS)."""
    until = time.time() + LIFETIME_SECONDS
    redis = cache_redis()
    if redis is None:
        with _local_lock:
            _local.setdefault(_key(identity_id), {})[channel_name] = until
        return
    try:
        pipe = redis.pipeline()
        pipe.zadd(_key(identity_id), {channel_name: until})
        pipe.expire(_key(identity_id), LIFETIME_SECONDS)
        pipe.execute()
    except Exception:
        logger.exception("socket %s not renewed: Redis is unreachable", channel_name)


def close_socket(identity_id: object, channel_name: str) -> None:
    redis = cache_redis()
    if redis is None:
        with _local_lock:
            _local.get(_key(identity_id), {}).pop(channel_name, None)
        return
    try:
        redis.zrem(_key(identity_id), channel_name)
    except Exception:
        logger.exception("socket %s not uncounted: Redis is unreachable", channel_name)


def _refusal(limit: int) -> TooManySockets:
    return TooManySockets(
        f"This identity has {limit} sockets open, the most it may (SPOOL_MAX_SOCKETS_PER_IDENTITY): "
        "close one first."
    )
