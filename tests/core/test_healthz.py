"""/healthz: says what is down, at once, with 503; never hangs on a dead or silent dependency."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apps.core import views

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def close_checker_connection() -> Iterator[None]:
    """The database check runs in a thread with its own connection: close it afterwards, so
    the test database can be dropped (PostgreSQL refuses while a session is open)."""
    yield
    views._database_checker.submit(lambda: connection.close()).result(timeout=10)


def _get(client: Client) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = client.get("/healthz")
    return response.status_code, response.json(), time.monotonic() - started


def _redis_cache(settings: Any, location: str) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
        }
    }


def test_all_well(client: Client) -> None:
    # when
    status, body, _ = _get(client)

    # then
    assert status == 200
    assert body == {
        "status": "ok",
        "down": [],
        "database": "ok",
        "redis": "ok",
        "workers": [],
    }


def test_a_dead_redis_is_reported_at_once(client: Client, settings: Any, tmp_path: Path) -> None:
    # given the Redis behind the cache is gone (its socket refuses)
    _redis_cache(settings, f"unix://{tmp_path / 'gone.sock'}")

    # when
    status, body, took = _get(client)

    # then
    assert status == 503
    assert body["status"] == "degraded" and body["down"] == ["redis"]
    assert body["redis"] == "error: ConnectionError"
    assert body["database"] == "ok"
    assert took < 0.5


def test_a_redis_that_never_answers_is_given_up_on(client: Client, settings: Any) -> None:
    # given a "Redis" that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    _redis_cache(settings, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    try:
        # when
        status, body, took = _get(client)
    finally:
        silent.close()

    # then it answers within about the check's timeout
    assert status == 503 and body["down"] == ["redis"]
    assert body["redis"] == f"error: no answer within {views.CHECK_TIMEOUT_SECONDS:g} s"
    assert took < views.CHECK_TIMEOUT_SECONDS + 1


def test_a_database_that_never_answers_is_given_up_on_without_piling_up(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a database check that hangs
    release = threading.Event()
    calls: list[float] = []

    def hung() -> list[str]:
        calls.append(time.monotonic())
        release.wait(30)
        raise ConnectionError("gone")

    monkeypatch.setattr(views, "_check_database", hung)
    try:
        # when health is asked twice
        first = _get(client)
        second = _get(client)
    finally:
        release.set()
    time.sleep(0.1)

    # then the first waits out the timeout, the second answers at once from the same check
    for status, body, _ in (first, second):
        assert status == 503 and body["down"] == ["database"]
        assert body["database"] == f"error: no answer within {views.CHECK_TIMEOUT_SECONDS:g} s"
    assert first[2] < views.CHECK_TIMEOUT_SECONDS + 0.5
    assert second[2] < 0.3
    assert len(calls) == 1
