"""Random UUIDs from the kernel's random bytes, read 4 KiB at a time.

uuid.uuid4() reads 16 bytes with os.urandom per call, a system call during which CPython lets
go of the GIL; under load the thread then waits for the GIL behind whichever thread took it.
Every API request makes two (its request id and correlation vector), a chat post two more
(its event's id and transactionId) and an SMS one (its message id):
profiled, those waits were 6% of the chat commit thread's time (bench/chat.py). The bytes
are os.urandom's, as uuid4's are; a forked child starts with none of its parent's, so two
processes never hand out the same id.
"""

from __future__ import annotations

import os
import threading
import uuid

POOL_BYTES = 4096


class _Pool:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Lock()  # (a new one: another thread may hold the old at a fork)
        self._bytes = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._bytes):
                self._bytes, self._at = os.urandom(POOL_BYTES), 0
            start, self._at = self._at, self._at + size
            return self._bytes[start : self._at]


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


def uuid4() -> uuid.UUID:
    """A random (version 4) UUID, as uuid.uuid4()."""
    return uuid.UUID(bytes=_pool.take(16), version=4)


def token_bytes(size: int) -> bytes:
    """`size` random bytes, as secrets.token_bytes(size)."""
    return _pool.take(size)
