"""When each identity last got a token, written behind the hot path.

Issuing a token is the busiest write in the platform, and a write per token queued every
request on SQLite's single write lock (p99 over 500 ms at 32 clients) and on a PostgreSQL
commit flush. The time is informational (the console's "last token issued"), so each web
process keeps the newest time per identity and writes them in one batch every
TOKEN_TIME_FLUSH_SECONDS (apps/core/batching.py).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.accounts.models import CommunicationIdentity
from apps.core import sql
from apps.core.batching import BackgroundWriter


def write_token_times(pending: dict[Hashable, Any]) -> None:
    """The newest times, in one UPDATE per batch (sql.update_each), a time never moved back
    when another web process wrote a newer one first."""
    with transaction.atomic():
        times = {identity: [at] for identity, at in pending.items()}
        sql.update_each(CommunicationIdentity, ["last_token_issued_at"], times, only_later=True)


token_times = BackgroundWriter(
    "token-times", write_token_times, interval=lambda: settings.TOKEN_TIME_FLUSH_SECONDS
)
