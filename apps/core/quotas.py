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
import threading
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
    if count and leases.spend(name, key, window):
        return
    current = f"spool:quota:{name}:{key}:{window}"
    previous_key = f"spool:quota:{name}:{key}:{window - 1}"
    batch = leases.size(name, key, window, limit) if count else 0
    try:
        spent, previous = _counts(current, previous_key, limit.seconds * 2, add=batch)
    except Exception:
        logger.exception("quota %s not checked: the cache is unreachable", name)
        return
    into_window = (now % limit.seconds) / limit.seconds
    # Counting, the request just counted may be the last allowed; checking, one more must fit.
    allowed = limit.count if count else limit.count - 1
    if previous * (1 - into_window) + spent <= allowed:
        if batch > 1:
            leases.keep(name, key, window, batch - 1, until=(window + 1) * limit.seconds)
        return
    if batch > 1:
        # The batch does not fit: give back all but this request's count, and count one by
        # one until the window ends.
        leases.near_limit(name, key, window, until=(window + 1) * limit.seconds)
        try:
            _uncount(current, batch - 1)
        except Exception:
            logger.exception("quota %s: a lease not given back", name)
        spent -= batch - 1
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


class Leases:
    """Requests a web process has counted in Redis ahead of time, so that a busy key (a
    resource issuing tokens) costs a round trip per batch instead of per request: the round
    trip was a third of the token route's time (bench/tokens.py).

    A lease is at most 1/LEASE_SHARE of the limit (none below LEASE_SHARE requests per window:
    sign-ins are counted one by one) and lives in its window. Leased requests count as spent
    at once, so a key never passes its limit; it may be refused early by what the other
    processes hold unspent (at most 1/LEASE_SHARE of the limit per other process). Near the
    limit (a batch did not fit) a key is counted one by one until its window ends."""

    LEASE_SHARE = 100
    MAX_LEASE = 50
    PRUNE_PAST = 10_000  # keys held before expired leases are dropped

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (name, key) -> (window, requests left, when the window ends); left -1: near the limit
        self._held: dict[tuple[str, str], tuple[int, int, float]] = {}

    def spend(self, name: str, key: object, window: int) -> bool:
        """Take one request from the key's lease in this window, if it holds one."""
        with self._lock:
            held = self._held.get((name, str(key)))
            if held is None or held[0] != window or held[1] <= 0:
                return False
            self._held[(name, str(key))] = (window, held[1] - 1, held[2])
            return True

    def size(self, name: str, key: object, window: int, limit: Limit) -> int:
        """How many requests to count in Redis now: this one and the next lease."""
        with self._lock:
            held = self._held.get((name, str(key)))
        if held is not None and held[0] == window and held[1] < 0:
            return 1
        return max(1, min(self.MAX_LEASE, limit.count // self.LEASE_SHARE))

    def keep(self, name: str, key: object, window: int, left: int, *, until: float) -> None:
        self._hold(name, key, (window, left, until))

    def near_limit(self, name: str, key: object, window: int, *, until: float) -> None:
        self._hold(name, key, (window, -1, until))

    def forget(self, name: str | None = None, key: object = None) -> None:
        """Drop the leases of one key, or every lease (tests, after clearing the cache)."""
        with self._lock:
            if name is None:
                self._held.clear()
            else:
                self._held.pop((name, str(key)), None)

    def _hold(self, name: str, key: object, held: tuple[int, int, float]) -> None:
        with self._lock:
            if len(self._held) >= self.PRUNE_PAST:
                now = _now()
                self._held = {k: v for k, v in self._held.items() if v[2] > now}
            self._held[(name, str(key))] = held


leases = Leases()

# Counting is one command, not a pipeline of three: redis-py's pipeline machinery cost as
# much as the round trip on the token route (profiled).
_COUNT_SCRIPT = """
local spent = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {spent, tonumber(redis.call('GET', KEYS[2]) or '0')}
"""
_count_script: Any = None


def _counts(current: str, previous: str, ttl: int, *, add: int) -> tuple[int, int]:
    """The current window's count (after adding `add`, if any) and the previous one's: one
    round trip to Redis (this sits on the token hot path), or the cache API elsewhere."""
    global _count_script
    redis = cache_redis()
    if redis is not None:
        if not add:
            spent, before = redis.mget(current, previous)
            return int(spent or 0), int(before or 0)
        if _count_script is None:
            _count_script = redis.register_script(_COUNT_SCRIPT)
        spent, before = _count_script(keys=[current, previous], args=[ttl, add], client=redis)
        return int(spent), int(before)
    if add:
        cache.add(current, 0, timeout=ttl)
        return int(cache.incr(current, add)), int(cache.get(previous, 0))
    counts = cache.get_many([current, previous])
    return int(counts.get(current, 0)), int(counts.get(previous, 0))


def _uncount(current: str, count: int) -> None:
    redis = cache_redis()
    if redis is not None:
        redis.decrby(current, count)
    else:
        cache.decr(current, count)


def cache_redis() -> Any | None:
    """The cache's own Redis client when the cache is Redis (None in unit tests without it),
    for counters that need one round trip (quotas, sockets per identity)."""
    get_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    return get_client(write=True) if get_client else None


def reset(name: str, key: object, limit: LimitSetting) -> None:
    """Forget what `key` spent of quota `name` (a successful sign-in clears its failures)."""
    if limit is None:
        return
    leases.forget(name, key)
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
