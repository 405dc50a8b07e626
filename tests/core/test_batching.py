"""The background writer's thread outlives a failing round: a connection check that raises (the
database gone for a moment) or a write that fails is logged, and later rows are still written."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import pytest

from apps.core import batching
from apps.core.batching import BackgroundWriter


def test_a_failing_round_does_not_stop_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a database check that fails in the first round, and a write that fails once too
    checks = iter([RuntimeError("database gone"), None, None, None, None, None])

    def close_old_connections() -> None:
        failure = next(checks, None)
        if failure is not None:
            raise failure

    monkeypatch.setattr(batching, "close_old_connections", close_old_connections)
    written: list[dict[Hashable, Any]] = []
    done = threading.Event()
    failures = iter([True])

    def write(rows: dict[Hashable, Any]) -> None:
        if next(failures, False):
            raise RuntimeError("write failed")
        written.append(rows)
        if rows.get("later"):
            done.set()

    writer = BackgroundWriter("test-writer", write, interval=lambda: 0.05)

    # when rows come before and after the failing rounds
    writer.add("first", 1)
    threading.Event().wait(0.3)
    writer.add("later", 2)

    # then the thread is still there and writes them
    assert done.wait(5), written
    assert writer._thread is not None and writer._thread.is_alive()
