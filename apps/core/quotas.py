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
from collections import Counter
from collections.abc import Sequence
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


def spend_all(
    name: str, keys: Sequence[object], limit: LimitSetting, *, what: str
) -> list[QuotaExceeded | None]:
    """spend() for many requests at once, a batch's (apps/chat/message_route.py): one round
    trip to Redis for all their keys, where spend() takes one per key without a lease. Returns,
    in order, each request's refusal, or None where it may go on; raises nothing. A key's
    requests count in their order, as many spend() calls would."""
    if limit is None or not keys:
        return [None] * len(keys)
    limit = Limit(*limit) if isinstance(limit, tuple) else limit
    now = _now()
    window = int(now // limit.seconds)
    per_key = Counter(str(key) for key in keys)
    try:
        counted = _counts_many(
            [
                (f"spool:quota:{name}:{key}:{window}", f"spool:quota:{name}:{key}:{window - 1}", n)
                for key, n in per_key.items()
            ],
            limit.seconds * 2,
        )
    except Exception:
        logger.exception("quota %s not checked: the cache is unreachable", name)
        return [None] * len(keys)
    spent_by_key = dict(zip(per_key, counted, strict=True))
    into_window = (now % limit.seconds) / limit.seconds
    seen: Counter[str] = Counter()
    verdicts: list[QuotaExceeded | None] = []
    for key in map(str, keys):
        seen[key] += 1
        spent_all_of_key, previous = spent_by_key[key]
        spent = spent_all_of_key - per_key[key] + seen[key]  # up to and with this request
        fits = _fits(spent, previous, into_window, limit.count)
        verdicts.append(None if fits else _refusal(limit, spent, previous, into_window, what))
    return verdicts


def give_back(name: str, keys: Sequence[object], limit: LimitSetting) -> None:
    """Uncount requests spend_all counted in this window (a batch counts its requests before
    its checks, and leaves those that fail them to the view, which counts them again)."""
    if limit is None or not keys:
        return
    limit = Limit(*limit) if isinstance(limit, tuple) else limit
    window = int(_now() // limit.seconds)
    for key, n in Counter(str(key) for key in keys).items():
        try:
            _uncount(f"spool:quota:{name}:{key}:{window}", n)
        except Exception:
            logger.exception("quota %s: requests not given back", name)


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
    if _fits(spent, previous, into_window, allowed):
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
        if _fits(spent, previous, into_window, allowed):
            return
    raise _refusal(limit, spent, previous, into_window, what, allowed=allowed)


def _fits(spent: int, previous: int, into_window: float, allowed: int) -> bool:
    """Whether the requests of the last window (`spent` in this one, the part of the previous
    window's `previous` it still overlaps) stay within `allowed`."""
    return previous * (1 - into_window) + spent <= allowed


def _refusal(
    limit: Limit,
    spent: int,
    previous: int,
    into_window: float,
    what: str,
    *,
    allowed: int | None = None,
) -> QuotaExceeded:
    # Past the limit in this window alone: wait for the next; else until enough of the
    # previous window has slid out.
    allowed = limit.count if allowed is None else allowed
    if spent > allowed:
        wait = limit.seconds * (1 - into_window)
    else:
        share = (allowed - spent) / previous if previous else 1.0
        wait = limit.seconds * max(0.0, (1 - share) - into_window)
    retry_after = max(1, math.ceil(wait))
    return QuotaExceeded(
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
# much as the round trip on the token route (profiled). KEYS: each key's current and previous
# window; ARGV: the time to live, then how many to add to each key's current window.
_COUNT_SCRIPT = """
local counts = {}
for i = 1, #KEYS, 2 do
    counts[i] = redis.call('INCRBY', KEYS[i], ARGV[(i + 1) / 2 + 1])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
    counts[i + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
end
return counts
"""
_count_script: Any = None


def _counts(current: str, previous: str, ttl: int, *, add: int) -> tuple[int, int]:
    """The current window's count (after adding `add`, if any) and the previous one's: one
    round trip to Redis (this sits on the token hot path), or the cache API elsewhere."""
    if add:
        return _counts_many([(current, previous, add)], ttl)[0]
    redis = cache_redis()
    if redis is not None:
        spent, before = redis.mget(current, previous)
        return int(spent or 0), int(before or 0)
    counts = cache.get_many([current, previous])
    return int(counts.get(current, 0)), int(counts.get(previous, 0))


def _counts_many(windows: Sequence[tuple[str, str, int]], ttl: int) -> list[tuple[int, int]]:
    """For each (current window's key, previous window's key, how many to add): the current
    window's count after adding, and the previous one's; one round trip to Redis for all."""
    global _count_script
    redis = cache_redis()
    if redis is None:
        counted = []
        for current, previous, add in windows:
            cache.add(current, 0, timeout=ttl)
            counted.append((int(cache.incr(current, add)), int(cache.get(previous, 0))))
        return counted
    if _count_script is None:
        _count_script = redis.register_script(_COUNT_SCRIPT)
    flat = _count_script(
        keys=[key for current, previous, _ in windows for key in (current, previous)],
        args=[ttl, *(add for _, _, add in windows)],
        client=redis,
    )
    return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]


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
