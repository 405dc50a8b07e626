"""While the database cannot be reached, requests that need it are answered at once (503 with
Retry-After) instead of each waiting out its connection's timeouts.

A request that failed because the database could not be reached (errors.database_unreachable,
seen by handler500 or by apps/core/wsgi_bridge.py for a shortcut's batch) marks it down. From then
on DatabaseOutageMiddleware answers Django's requests with 503 at once, and the web process's
shortcuts leave theirs to Django, until /healthz's database check (a thread and connection of
its own, apps/core/views.py), started after the failure, succeeds. Without this, on a database
host whose packets vanish each request waited its turn on a request thread and then
connect_timeout (5 s) or tcp_user_timeout (15 s) on its own: a web process's few threads held
every other request behind them until the balancer gave up (tests/e2e/test_hosts.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core.errors import unavailable_response

logger = logging.getLogger(__name__)

# Paths answered whatever the database's state: they say what is down.
ANSWERED_WHEN_DOWN = ("/healthz", "/metrics")

_lock = threading.Lock()
_down_since: float | None = None  # time.monotonic() of the failure that marked it down


def mark_down() -> None:
    global _down_since
    with _lock:
        if _down_since is not None:
            return
        _down_since = time.monotonic()
    logger.warning(
        "The database cannot be reached: requests that need it are answered 503 until it "
        "answers /healthz's check again"
    )


def database_up() -> bool:
    """False while the database is marked down and no check started since has succeeded
    (while it is down, each call starts the next check once the last one is over: one at a
    time)."""
    global _down_since
    down_since = _down_since
    if down_since is None:
        return True
    from apps.core import views  # (its models: the web bridge imports this before Django's setup)

    check, started = views.last_database_check()
    if check is None or started < down_since or not check.done() or check.exception():
        views.start_database_check()
        return False
    with _lock:
        if _down_since != down_since:
            return _down_since is None
        _down_since = None
    logger.warning("The database answers again, after %.1f s", time.monotonic() - down_since)
    return True


def reset() -> None:
    """Forget an outage (tests)."""
    global _down_since
    with _lock:
        _down_since = None


class DatabaseOutageMiddleware:
    """503 at once for a request that would need the database while it is down."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if database_up() or request.path_info.startswith(ANSWERED_WHEN_DOWN):
            return self.get_response(request)
        return unavailable_response(request)
