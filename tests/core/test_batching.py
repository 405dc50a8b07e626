"""The background writer's thread outlives a failing round: a connection check that raises (the
database gone for a moment) or a write that fails is logged, and later rows are still written."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Hashable
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from django.db import OperationalError

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


# --- GroupCommit ----------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writes below touch no database: the thread's connection checks are skipped."""
    monkeypatch.setattr(batching, "close_old_connections", lambda: None)
    monkeypatch.setattr(batching, "connection", SimpleNamespace(vendor="none"))


def _group(write: Any) -> batching.GroupCommit[str]:
    return batching.GroupCommit("test-group", write, inline=lambda: False)


def test_what_is_pending_is_written_in_one_call_and_each_answer_follows_its_commit() -> None:
    # given a write that is slow the first time, so that more items queue meanwhile
    calls: list[list[str]] = []
    first_started, release = threading.Event(), threading.Event()

    def write(items: list[str]) -> None:
        if not calls:
            first_started.set()
            release.wait(5)
        calls.append(list(items))

    group = _group(write)
    first = group.submit("a", then=lambda: "a committed")
    assert first_started.wait(5)
    later = [group.submit(item, then=lambda item=item: f"{item} committed") for item in "bcd"]

    # then nothing is answered before its write, and the three waiting share one write
    assert not any(f.done() for f in [first, *later])
    release.set()
    assert [f.result(5) for f in [first, *later]] == [f"{x} committed" for x in "abcd"]
    assert calls == [["a"], ["b", "c", "d"]]


def test_a_failing_item_fails_only_its_own_answer() -> None:
    # given a write that refuses one item, as a unique constraint would
    written: list[str] = []
    gate = threading.Event()

    def write(items: list[str]) -> None:
        gate.wait(5)
        if "bad" in items:
            raise ValueError("duplicate")
        written.extend(items)

    group = _group(write)
    answers = {item: group.submit(item, then=lambda: "ok") for item in ("x", "bad", "y")}
    gate.set()

    # then the batch is retried item by item: the others are committed and answered
    assert answers["x"].result(5) == answers["y"].result(5) == "ok"
    with pytest.raises(ValueError):
        answers["bad"].result(5)
    assert sorted(written) == ["x", "y"]


@pytest.mark.parametrize(
    "cause, each_alone",
    [
        # the database out of reach: each alone would wait on it again, in turn
        (psycopg.OperationalError("connection timeout expired"), False),
        # the server refused the batch (a deadlock): each alone may pass
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
    ],
)
def test_a_batch_that_could_not_reach_the_database_fails_every_answer_at_once(
    cause: Exception, each_alone: bool
) -> None:
    error = OperationalError(str(cause))
    error.__cause__ = cause  # as Django raises it from the driver's error
    calls: list[list[str]] = []
    gate = threading.Event()

    def write(items: list[str]) -> None:
        gate.wait(5)
        calls.append(items)
        raise error

    group = _group(write)
    answers = [group.submit(item, then=lambda: "ok") for item in ("x", "y", "z")]
    gate.set()

    for answer in answers:
        with pytest.raises(OperationalError):
            answer.result(5)
    # (however the thread batched them)
    attempts = sorted(item for call in calls for item in call)
    if each_alone:
        assert all([item] in calls for item in ("x", "y", "z")), calls
    else:
        assert attempts == ["x", "y", "z"], calls  # each tried once, in its batch


def test_an_answer_given_up_before_its_write_is_not_written() -> None:
    # given a write in progress, and a request behind it whose client goes away
    written: list[str] = []
    started, release = threading.Event(), threading.Event()

    def write(items: list[str]) -> None:
        started.set()
        release.wait(5)
        written.extend(items)

    group = _group(write)
    first = group.submit("first", then=lambda: "ok")
    assert started.wait(5)
    gone = group.submit("gone", then=lambda: "ok")
    kept = group.submit("kept", then=lambda: "ok")

    # when the waiting one is cancelled (the bridge cancels it when the client disconnects)
    assert gone.cancel()
    release.set()

    # then the others are written, the cancelled one is not
    assert first.result(5) == kept.result(5) == "ok"
    assert written == ["first", "kept"]


def test_inline_writes_in_the_callers_thread_at_once() -> None:
    written: list[tuple[str, str]] = []
    group = batching.GroupCommit(
        "test-inline",
        lambda items: written.extend((i, threading.current_thread().name) for i in items),
        inline=lambda: True,
    )
    answer = group.submit("now", then=lambda: "done")
    assert answer.done() and answer.result() == "done"
    assert written == [("now", threading.current_thread().name)]


def test_on_sqlite_a_locked_database_is_asked_again_every_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given SQLite, whose write lock another writer holds for the first two tries
    pragmas: list[str] = []
    cursor = SimpleNamespace(execute=pragmas.append)
    monkeypatch.setattr(
        batching,
        "connection",
        SimpleNamespace(vendor="sqlite", cursor=lambda: contextlib.nullcontext(cursor)),
    )
    tries: list[float] = []

    def write(items: list[str]) -> None:
        tries.append(time.monotonic())
        if len(tries) <= 2:
            raise OperationalError("database is locked")

    # when
    batching._promptly(write, ["row"])

    # then the busy handler is off (no sleeps of up to 100 ms) and the write came through
    assert pragmas == ["PRAGMA busy_timeout = 0"]
    assert len(tries) == 3 and tries[-1] - tries[0] < 0.5

    # and another database error is not retried
    def broken(items: list[str]) -> None:
        raise OperationalError("no such table: sms_smsmessage")

    with pytest.raises(OperationalError, match="no such table"):
        batching._promptly(broken, ["row"])


def test_with_a_gathering_wait_items_submitted_one_by_one_share_a_write() -> None:
    # given a group commit that gathers for 50 ms, and items coming a few ms apart
    calls: list[list[str]] = []
    group = batching.GroupCommit(
        "test-gather", lambda items: calls.append(list(items)), inline=lambda: False, gather=0.05
    )
    answers = []
    for item in "abc":
        answers.append(group.submit(item, then=lambda item=item: item))
        time.sleep(0.005)

    # then they are committed together, each answered after
    assert [answer.result(5) for answer in answers] == ["a", "b", "c"]
    assert calls == [["a", "b", "c"]]


def test_the_connection_is_checked_after_an_idle_spell_or_a_failed_write_not_between_busy_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a group whose connection checks are counted (each a round trip on PostgreSQL;
    # other tests' writer threads check too)
    checks: list[str] = []

    def close_old_connections() -> None:
        if threading.current_thread().name == "checked-group":
            checks.append("checked")

    monkeypatch.setattr(batching, "close_old_connections", close_old_connections)
    monkeypatch.setattr(batching, "CHECK_AFTER_IDLE_SECONDS", 0.3)

    def write(items: list[str]) -> None:
        if "bad" in items:
            raise OperationalError("the connection broke")

    group = batching.GroupCommit("checked-group", write, inline=lambda: False)

    def commit(item: str) -> None:
        with contextlib.suppress(OperationalError):
            group.submit(item, then=lambda: None).result(5)

    # when batches follow one another, then one fails, then one comes after an idle spell
    commit("first")  # the thread's first batch: checked
    for n in range(5):
        commit(f"busy {n}")
    busy = len(checks)
    commit("bad")
    commit("after the failure")
    after_failure = len(checks)
    time.sleep(0.4)
    commit("after a pause")

    # then the check came before the first batch, after the failure and after the pause only
    assert (busy, after_failure, len(checks)) == (1, 2, 3)
