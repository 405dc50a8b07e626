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
from django.db import connection, transaction

from apps.accounts.models import CommunicationIdentity
from apps.core.batching import BackgroundWriter
from apps.core.sql import column, table


def write_token_times(pending: dict[Hashable, Any]) -> None:
    """One prepared UPDATE per identity, run by executemany: bulk_update builds a CASE WHEN
    through the ORM, which cost the web process 4% of its time at 2,000 tokens/s (profiled)."""
    identity = CommunicationIdentity
    at_field, pk_field = identity._meta.get_field("last_token_issued_at"), identity._meta.pk
    assert pk_field is not None
    rows = [
        (at_field.get_db_prep_save(when, connection), pk_field.get_db_prep_value(pk, connection))
        for pk, when in pending.items()
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table(identity)} SET {column(identity, 'last_token_issued_at')} = %s "
            f"WHERE {column(identity, 'id')} = %s",
            rows,
        )


token_times = BackgroundWriter(
    "token-times", write_token_times, interval=lambda: settings.TOKEN_TIME_FLUSH_SECONDS
)
