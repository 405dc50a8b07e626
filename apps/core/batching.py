"""Writes kept off the hot path: a web process collects rows in memory and a background
thread writes them in one batch every few seconds; a process that dies loses at most that
much. For informational records only (when a token was last issued, the request log)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.db import close_old_connections

logger = logging.getLogger(__name__)


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
