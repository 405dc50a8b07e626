"""When each identity last got a token, written behind the hot path.

Issuing a token is the busiest write in the platform, and a write per token queued every
request on SQLite's single write lock (p99 over 500 ms at 32 clients) and on a PostgreSQL
commit flush. The time is informational (the console's "last token issued"), so each web
process keeps the newest time per identity and writes them in one batch every
TOKEN_TIME_FLUSH_SECONDS; a process that dies loses at most that much of it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections

from apps.accounts.models import CommunicationIdentity

logger = logging.getLogger(__name__)


class TokenTimes:
    def __init__(self) -> None:
        self._pending: dict[uuid.UUID, datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, identity_id: uuid.UUID, when: datetime) -> None:
        interval = settings.TOKEN_TIME_FLUSH_SECONDS
        if interval <= 0:
            CommunicationIdentity.objects.filter(pk=identity_id).update(last_token_issued_at=when)
            return
        with self._lock:
            self._pending[identity_id] = when
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name="token-times", daemon=True
                )
                self._thread.start()
                atexit.register(self.flush)

    def flush(self) -> None:
        """Write every pending time now (one batched UPDATE per 500 identities)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        rows = [
            CommunicationIdentity(pk=pk, last_token_issued_at=when) for pk, when in pending.items()
        ]
        try:
            CommunicationIdentity.objects.bulk_update(
                rows, ["last_token_issued_at"], batch_size=500
            )
        except Exception:
            logger.exception("could not record the token times of %d identities", len(rows))

    def _run(self, interval: float) -> None:
        while True:
            self._wake.wait(interval)
            close_old_connections()
            self.flush()


token_times = TokenTimes()
