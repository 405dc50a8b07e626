"""Operational endpoints."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.core import redis_connections, services

# Each check answers within this, so a dead or hung dependency makes /healthz say so at once
# instead of holding the request (and the web process's Django thread) until a TCP timeout.
CHECK_TIMEOUT_SECONDS = 1.0

# The database is checked in a thread of its own (with its own connection), so that a hung
# server costs the request no more than the timeout; one check at a time, never a queue.
_database_checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthz-db")
_database_check: Future[list[str]] | None = None
_database_check_started = 0.0
_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and operators: database, Redis, and live Celery workers.

    200 when this web process can serve (database and Redis answer), else 503 with
    `"status": "degraded"` and `down` naming what failed; every check gives up after
    CHECK_TIMEOUT_SECONDS. `workers` lists workers with a recent heartbeat."""
    checks, workers = dependency_checks()
    down = [name for name in ("database", "redis") if checks[name] != "ok"]
    return JsonResponse(
        {
            "status": "degraded" if down else "ok",
            "down": down,
            "database": checks["database"],
            "redis": checks["redis"],
            "workers": workers,
        },
        status=503 if down else 200,
    )


def dependency_checks() -> tuple[dict[str, str], list[str]]:
    """The database and Redis checks (also read by the Prometheus exporter), each "ok" or
    "error: ...", within CHECK_TIMEOUT_SECONDS; and the workers with a recent heartbeat."""
    database, started = start_database_check()
    checks = {"redis": _check_redis()}
    workers: list[str] = []
    try:
        # A check still out from an earlier request has less (or no) time left.
        remaining = started + CHECK_TIMEOUT_SECONDS - time.monotonic()
        workers = database.result(timeout=max(0.0, remaining))
        checks["database"] = "ok"
    except FutureTimeout:
        checks["database"] = f"error: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as error:  # the point is to report any failure, not to raise it
        checks["database"] = f"error: {error.__class__.__name__}"
    return checks, workers


def last_database_check() -> tuple[Future[list[str]] | None, float]:
    """The newest check (running or over), with when it started; (None, 0) before any."""
    with _lock:
        return _database_check, _database_check_started


def start_database_check() -> tuple[Future[list[str]], float]:
    """The running check if one is still out (a hung database), else a new one; with when it
    started (time.monotonic())."""
    global _database_check, _database_check_started
    with _lock:
        if _database_check is None or _database_check.done():
            _database_check = _database_checker.submit(_check_database)
            _database_check_started = time.monotonic()
        return _database_check, _database_check_started


def _check_database() -> list[str]:
    """Runs in the checker thread: SELECT 1, then the workers with a recent heartbeat."""
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return sorted(services.live_workers().values_list("hostname", flat=True))
    except Exception:
        connection.close()  # reconnect on the next check
        raise


def _check_redis() -> str:
    location = _redis_location()
    try:
        if location is None:  # no Redis cache configured (unit tests' local memory)
            cache.set("healthz", "ok", 5)
            return "ok" if cache.get("healthz") == "ok" else "error"
        _redis_client(location).set("spool:healthz", "ok", px=5000)
        return "ok"
    except redis.TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as error:
        return f"error: {error.__class__.__name__}"


def _redis_location() -> str | None:
    """The Redis behind the cache (the same one serves the channel layer and the broker)."""
    config = settings.CACHES["default"]
    if not str(config["BACKEND"]).endswith(".RedisCache"):
        return None
    location = config["LOCATION"]
    return location if isinstance(location, str) else str(next(iter(location)))


def _redis_client(location: str) -> redis.Redis:
    # A client of its own: the cache's client has no timeouts and retries each command.
    with _lock:
        if location not in _redis_clients:
            _redis_clients[location] = redis_connections.client(
                location,
                socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                socket_timeout=CHECK_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        return _redis_clients[location]
