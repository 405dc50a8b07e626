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
from apps.core import sql
from apps.core.batching import BackgroundWriter
from apps.core.sql import column, table

# Rows per UPDATE: two parameters each, well inside SQLite's limit of 32,766.
ROWS_PER_STATEMENT = 500


def write_token_times(pending: dict[Hashable, Any]) -> None:
    """One UPDATE for many identities, joined to a VALUES list, in the identities' order.

    An UPDATE per identity (executemany) cost PostgreSQL more than the rest of a token: each
    is parsed and planned again, and two web processes writing the same hot identities waited
    on each other's row locks (pg_stat_statements: 0.8 ms an UPDATE at 1,000 tokens/s). In
    one order, two processes' batches cannot deadlock; and a time is never moved back, when
    another process wrote a newer one first."""
    identity = CommunicationIdentity
    at_field, pk_field = identity._meta.get_field("last_token_issued_at"), identity._meta.pk
    assert pk_field is not None
    rows = sorted(
        (pk_field.get_db_prep_value(pk, connection), at_field.get_db_prep_save(when, connection))
        for pk, when in pending.items()
    )
    last, pk = column(identity, "last_token_issued_at"), column(identity, "id")
    with transaction.atomic():
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            batch = rows[start : start + ROWS_PER_STATEMENT]
            # VALUES names its columns column1, column2 on both PostgreSQL and SQLite.
            sql.fetch(
                f"UPDATE {table(identity)} SET {last} = v.column2 "
                f"FROM (VALUES {', '.join(['(%s, %s)'] * len(batch))}) AS v "
                f"WHERE {table(identity)}.{pk} = v.column1 "
                f"AND ({table(identity)}.{last} IS NULL OR {table(identity)}.{last} < v.column2)",
                [value for row in batch for value in row],
            )


token_times = BackgroundWriter(
    "token-times", write_token_times, interval=lambda: settings.TOKEN_TIME_FLUSH_SECONDS
)
