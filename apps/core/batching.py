"""Writes batched by a background thread.

BackgroundWriter keeps writes off the hot path: a web process collects rows in memory and
writes them in one batch every few tenths of a second; a process that dies loses at most that
much. For informational records only (when a token was last issued, the request log).

GroupCommit batches writes the answer waits for (accepted SMS, chat posts): nothing is
answered before its row is committed, and concurrent requests share one transaction. It
batches reads the same way (token requests' identities, apps/accounts/token_route.py)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from django.db import OperationalError, close_old_connections, connection

from apps.core.errors import database_unreachable

logger = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class BackgroundWriter:
    """`add(key, value)` keeps the newest value per key (or, with `merge`, merges it into the
    pending one: `operator.add` counts); `write(pending)` stores them. With an interval of 0
    (tests) every value is written at once."""

    def __init__(
        self,
        name: str,
        write: Callable[[dict[Hashable, Any]], None],
        interval: Callable[[], float],
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        self.name = name
        self._write = write
        self._interval = interval
        self._merge = merge
        self._pending: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: Hashable, value: Any) -> None:
        interval = self._interval()
        if interval <= 0:
            self._write({key: value})
            return
        with self._lock:
            if self._merge is not None and key in self._pending:
                value = self._merge(self._pending[key], value)
            self._pending[key] = value
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name=self.name, daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)

    def flush(self) -> None:
        """Write everything pending now."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            self._write(pending)
        except Exception:
            logger.exception("%s: could not write %d rows", self.name, len(pending))

    def discard(self) -> None:
        """Drop everything pending (tests: each starts with an empty buffer)."""
        with self._lock:
            self._pending = {}

    def _run(self, interval: float) -> None:
        while True:  # nothing may end this loop: the buffer would grow unwritten
            time.sleep(interval)
            try:
                close_old_connections()
            except Exception:
                logger.exception("%s: could not check the database connection", self.name)
            self.flush()


# A batch thread checks its database connection (close_old_connections: the health check,
# CONN_MAX_AGE) before a batch only when it has not committed for this long, or its last write
# failed: while batches follow one another, the check was a round trip in each (on PostgreSQL
# one statement of a chat batch's eight, bench/chat.py).
CHECK_AFTER_IDLE_SECONDS = 1.0


class GroupCommit(Generic[Item]):
    """Writes that must be committed before their answer, from many requests at once.

    `submit(item, then)` returns a Future that a background thread resolves with `then()` once
    `item` is committed. The thread hands everything pending to one `write(items)` call (one
    transaction): on SQLite every writer of the platform takes turns at a single lock, and each
    turn costs a wait, so under load a batch takes one turn for many requests. If a batch fails,
    each item is written alone, so a bad item fails only its own future (with the error);
    if the database could not be reached, every item fails at once, with that error.
    With `inline` true (tests) `submit` writes at once, in the caller's thread and transaction.

    `gather`: seconds the thread waits after an item comes before it takes what is pending.
    Submitted from the web process's event loop (apps/core/wsgi_bridge.py), items come one at
    a time, each waking the thread while the loop waits on its next request's read: without a
    wait the batches held ~2 items, and the commits per item cost more than the wait.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[Item]], None],
        inline: Callable[[], bool],
        *,
        gather: float = 0.0,
    ) -> None:
        self.name = name
        self._write = write
        self._inline = inline
        self._gather = gather
        self._pending: list[tuple[Item, Callable[[], Any], Future[Any]]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._committed_at: float | None = None  # when the last batch went through

    def submit(self, item: Item, then: Callable[[], Result]) -> Future[Result]:
        answer: Future[Result] = Future()
        if self._inline():
            self._write([item])
            answer.set_result(then())
            return answer
        with self._wake:
            self._pending.append((item, then, answer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return answer

    def _run(self) -> None:
        while True:  # nothing may end this loop: the futures would never resolve
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            if self._gather:
                time.sleep(self._gather)
            with self._wake:
                taken, self._pending = self._pending, []
            # A request whose client went away (its Future cancelled) is not written; from
            # here on the others cannot be cancelled.
            batch = [entry for entry in taken if entry[2].set_running_or_notify_cancel()]
            if self._connection_may_be_stale():
                try:
                    close_old_connections()
                except Exception:
                    logger.exception("%s: could not check the database connection", self.name)
            self._committed_at = time.monotonic() if self._commit(batch) else None

    def _connection_may_be_stale(self) -> bool:
        """Whether to check the connection (Django's health check, on PostgreSQL a round trip)
        before the next batch: not while batches follow one another and went through, the
        last one having just used it."""
        committed_at = self._committed_at
        return committed_at is None or time.monotonic() - committed_at > CHECK_AFTER_IDLE_SECONDS

    def _commit(self, batch: list[tuple[Item, Callable[[], Any], Future[Any]]]) -> bool:
        """Write the batch and settle its futures; False if a write failed."""
        try:
            _promptly(self._write, [item for item, _, _ in batch])
        except Exception as error:
            if database_unreachable(error):
                # not an item's fault: each alone would wait on the database again, in turn
                logger.info("%s: a batch of %d failed", self.name, len(batch), exc_info=True)
                for entry in batch:
                    self._settle(entry, failure=error)
                return False
            if len(batch) == 1:
                logger.info("%s: a write failed", self.name, exc_info=True)
                self._settle(batch[0], failure=error)
                return False
            # which one failed? each alone
            return all([self._commit([entry]) for entry in batch])
        for entry in batch:
            self._settle(entry)
        return True

    @staticmethod
    def _settle(
        entry: tuple[Any, Callable[[], Any], Future[Any]], failure: BaseException | None = None
    ) -> None:
        _, then, answer = entry
        if failure is not None:
            answer.set_exception(failure)
            return
        try:
            answer.set_result(then())
        except Exception as error:  # committed: the caller decides what to answer
            answer.set_exception(error)


# SQLite's busy handler, which a writer runs while another holds the write lock, sleeps in
# growing steps (1, 2, 5, 10, 15, 20, 25 ... 100 ms): a commit that an answer waits for then
# waits up to a step longer than the lock is held, and under load loses to other writers
# (bench/sms.py: p99 ~250 ms). It asks every millisecond instead, so it takes the lock as soon
# as it is free, before the delivering workers and log writers, whose batches can wait.
PROMPT_WRITE_POLL_SECONDS = 0.001
PROMPT_WRITE_PATIENCE_SECONDS = 30  # as long as the busy timeout of settings.DATABASES


def _promptly(write: Callable[[list[Any]], None], items: list[Any]) -> None:
    if connection.vendor != "sqlite":
        write(items)
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 0")  # 'database is locked' at once
    deadline = time.monotonic() + PROMPT_WRITE_PATIENCE_SECONDS
    while True:
        try:
            write(items)
            return
        except OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(PROMPT_WRITE_POLL_SECONDS)
