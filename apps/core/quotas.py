"""Quotas with ACS semantics: a number of requests per time window, per resource, identity,
account or address, answered with 429 `TooManyRequests` and `Retry-After` in the ACS error
shape when exceeded. Every request counts, refused ones too ("all requests accrue against your
usage limits", as ACS says), so a client that keeps hammering stays refused until it pauses.

Counted in the cache (Redis outside unit tests), so every web process shares the counts. A
sliding window, estimated from two fixed ones (the current count plus the previous window's
count weighted by how much of it still overlaps), so a burst across a window boundary cannot
pass twice the limit. Written here rather than taken from django-ratelimit, which counts
fixed windows per view and request; these limits are per domain key and checked in services.
If the cache is unreachable the quota is not enforced (logged): a Redis outage must not stop
the platform, and it heals by itself (serve restarts the private Redis).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from apps.core.errors import ApiError

logger = logging.getLogger(__name__)

_now = time.time  # tests move it


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds} s"


class QuotaExceeded(ApiError):
    status = 429
    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


LimitSetting = Limit | tuple[int, int] | None  # None: the operator turned the quota off


def spend(name: str, key: object, limit: LimitSetting, *, what: str) -> None:
    """Count one request of quota `name` by `key`. Raises QuotaExceeded (429) saying `what`
    is limited and when to retry, if the requests of the last window pass `limit`."""
    if limit is not None:
        _check(name, key, Limit(*limit) if isinstance(limit, tuple) else limit, what, count=True)


def check(name: str, key: object, limit: LimitSetting, *, what: str) -> None:
    """Raise QuotaExceeded if `key` is past quota `name` already, without counting a request
    (sign-ins count failures only, but refuse every attempt while locked)."""
    if limit is not None:
        _check(name, key, Limit(*limit) if isinstance(limit, tuple) else limit, what, count=False)


def _check(name: str, key: object, limit: Limit, what: str, *, count: bool) -> None:
    now = _now()
    window = int(now // limit.seconds)
    current = f"spool:quota:{name}:{key}:{window}"
    previous_key = f"spool:quota:{name}:{key}:{window - 1}"
    try:
        spent, previous = _counts(current, previous_key, limit.seconds * 2, count=count)
    except Exception:
        logger.exception("quota %s not checked: the cache is unreachable", name)
        return
    into_window = (now % limit.seconds) / limit.seconds
    # Counting, the request just counted may be the last allowed; checking, one more must fit.
    allowed = limit.count if count else limit.count - 1
    if previous * (1 - into_window) + spent <= allowed:
        return
    # Past the limit in this window alone: wait for the next; else until enough of the
    # previous window has slid out.
    if spent > allowed:
        wait = limit.seconds * (1 - into_window)
    else:
        share = (allowed - spent) / previous if previous else 1.0
        wait = limit.seconds * max(0.0, (1 - share) - into_window)
    retry_after = max(1, math.ceil(wait))
    raise QuotaExceeded(
        f"Too many requests: {what} is limited to {limit}. Retry after {retry_after} s.",
        retry_after=retry_after,
    )


def _counts(current: str, previous: str, ttl: int, *, count: bool) -> tuple[int, int]:
    """The current window's count (after adding one, when counting) and the previous one's:
    one round trip to Redis (this sits on the token hot path), or the cache API elsewhere."""
    redis = cache_redis()
    if redis is not None:
        pipe = redis.pipeline(transaction=False)
        if count:
            pipe.incr(current)
            pipe.expire(current, ttl)
        else:
            pipe.get(current)
        pipe.get(previous)
        answers = pipe.execute()
        return int(answers[0] or 0), int(answers[-1] or 0)
    if count:
        cache.add(current, 0, timeout=ttl)
        return int(cache.incr(current)), int(cache.get(previous, 0))
    counts = cache.get_many([current, previous])
    return int(counts.get(current, 0)), int(counts.get(previous, 0))


def cache_redis() -> Any | None:
    """The cache's own Redis client when the cache is Redis (None in unit tests without it),
    for counters that need one round trip (quotas, sockets per identity)."""
    get_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    return get_client(write=True) if get_client else None


def reset(name: str, key: object, limit: LimitSetting) -> None:
    """Forget what `key` spent of quota `name` (a successful sign-in clears its failures)."""
    if limit is None:
        return
    limit = Limit(*limit) if isinstance(limit, tuple) else limit
    window = int(_now() // limit.seconds)
    keys = [f"spool:quota:{name}:{key}:{window}", f"spool:quota:{name}:{key}:{window - 1}"]
    try:
        redis = cache_redis()
        if redis is not None:
            redis.delete(*keys)
        else:
            cache.delete_many(keys)
    except Exception:
        logger.exception("quota %s not reset: the cache is unreachable", name)
