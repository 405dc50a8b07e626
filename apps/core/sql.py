"""Names for the few hot queries written in plain SQL, where building the ORM's query cost more
than running it (each says what was profiled): tables and columns come from the models, quoted
for the connection's database; `fetch`, which runs such a query, `send` and `pipeline`, which
let PostgreSQL take several without waiting for each; and `insert_many` and
`update_each`, which store many rows at once."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], field_name: str) -> str:
    return connection.ops.quote_name(str(_field(model, field_name).column))


def database() -> BaseDatabaseWrapper:
    """This thread's connection itself: each attribute read through django.db.connection
    looks the connection up again (a tenth of a chat post's CPU, profiled)."""
    return connections[DEFAULT_DB_ALIAS]


def limit_statements(milliseconds: int) -> None:
    """Have PostgreSQL cancel any statement of this thread's connection that runs longer than
    `milliseconds`, set once per connection (when it opens): the web process's event loop
    reads through its own connection (apps/core/wsgi_bridge.py), and a read held by a lock or
    an overloaded server must not hold the loop. Not behind PgBouncer in transaction mode,
    where a session's setting would reach other clients' transactions (its query_timeout is
    the bound there), nor on a pooled connection (SPOOL_DB_POOL_SIZE), which would carry it
    back to the pool, nor on SQLite, which waits for nothing but its own file."""
    db = database()
    if db.connection is not None or db.vendor != "postgresql":
        return
    if settings.PGBOUNCER or settings.DB_POOL_SIZE:
        return
    db.ensure_connection()
    opened: Any = db.connection
    try:
        with opened.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(milliseconds)}")
    except Exception:
        db.close()  # no connection without its limit
        raise


def fetch(query: str, params: Sequence[Any], *, prepare: bool = True) -> list[tuple[Any, ...]]:
    """The rows of one hot statement (`%s` placeholders; none for a write without RETURNING),
    on Django's connection and in its transaction, with Django's errors, through the driver's
    cursor: Django's cursor wrapper, which on SQLite converts the placeholders again on every
    call, cost as much as a short query (profiled). While Django logs queries (DEBUG, the
    tests' query counters) it goes through Django's cursor, so they see it. `prepare`: False
    for a statement whose text seldom repeats (one built for a batch's size)."""
    return send(query, params, prepare=prepare)()


def send(
    query: str, params: Sequence[Any], *, prepare: bool = True
) -> Callable[[], list[tuple[Any, ...]]]:
    """`fetch`, with its rows read later: what it returns gives them. Inside `pipeline()` on
    PostgreSQL the statement goes out and nothing waits for it until its rows are asked for
    (or the pipeline ends); elsewhere it runs at once."""
    db = database()
    if db.queries_logged:
        with db.cursor() as cursor:
            cursor.execute(query, params)
            found = cursor.fetchall() if cursor.description else []
        return lambda: found
    _check_health(db)
    db.ensure_connection()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        if db.vendor == "postgresql":
            return _send_prepared(db, query, params, prepare)
        cursor = db.connection.cursor()
        try:
            cursor.execute(_qmark(query), params)
            found = cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()
    return lambda: found


def _send_prepared(
    db: BaseDatabaseWrapper, query: str, params: Sequence[Any], prepare: bool
) -> Callable[[], list[tuple[Any, ...]]]:
    """On PostgreSQL, the statement prepared once per connection and its parameters bound
    by the server: Django's cursor sends each query as new text, which PostgreSQL planned
    again every time, at three times the cost of running it (pg_stat_statements: 140 us of
    planning against 46 us of execution for the token route's read). Behind PgBouncer in
    transaction mode the connection prepares nothing (prepare_threshold None, settings.py):
    its next transaction may run on another server connection."""
    import psycopg  # only on PostgreSQL

    open_pipeline = getattr(_pipelines, "open", None)
    cursor = psycopg.Cursor(db.connection)
    try:
        cursor.execute(query, params, prepare=prepare)
    except BaseException:
        cursor.close()
        raise

    if open_pipeline is None:
        found = _rows_of(cursor)
        return lambda: found
    taken: list[tuple[Any, ...]] | None = None

    def rows() -> list[tuple[Any, ...]]:
        nonlocal taken
        if taken is None:
            with db.wrap_database_errors:
                if cursor.pgresult is None:
                    open_pipeline.sync()  # the statements sent so far, and their answers
                taken = _rows_of(cursor)
        return taken

    return rows


def _rows_of(cursor: Any) -> list[tuple[Any, ...]]:
    """The rows of the cursor's statement (none for a write without RETURNING), or its error
    (in a pipeline); the cursor closed."""
    import psycopg  # only on PostgreSQL

    try:
        # A write without RETURNING, from the result's status: `description` builds a Column
        # per field on every read (3% of a token request, profiled).
        result = cursor.pgresult
        if result is not None and result.status == psycopg.pq.ExecStatus.COMMAND_OK:
            return []
        return cursor.fetchall()
    finally:
        cursor.close()


_pipelines = threading.local()  # .open: this thread's psycopg Pipeline, inside pipeline()


@contextmanager
def pipeline() -> Iterator[None]:
    """On PostgreSQL, this thread's hot statements inside (`send`, `fetch`, rows.insert) go
    out in psycopg's pipeline mode: each is sent at once and the connection waits only where
    rows are read, or when the pipeline ends, so the writes before a read share its round
    trip. A chat batch was seven round trips of ~1.3 ms on the busy box (bench/chat.py). An
    error of a write is raised where the connection next waits, inside the block. Elsewhere,
    and while Django logs queries (its cursor goes around the pipeline), it changes nothing."""
    db = database()
    if db.vendor != "postgresql" or db.queries_logged or getattr(_pipelines, "open", None):
        yield
        return
    _check_health(db)
    db.ensure_connection()
    with db.wrap_database_errors, db.connection.pipeline() as opened:
        _pipelines.open = opened
        try:
            yield
        finally:
            _pipelines.open = None


def _check_health(db: BaseDatabaseWrapper) -> None:
    """Django's health check (CONN_HEALTH_CHECKS), which its own cursors run on the first
    query after close_old_connections: without it a connection that died while idle (the
    database's network cut, then back) failed the next hot statement instead of being
    replaced (tests/e2e/test_hosts.py)."""
    db.close_if_health_check_failed()


@functools.lru_cache(maxsize=256)
def _qmark(query: str) -> str:
    """`query` with SQLite's placeholders, as Django's SQLite cursor converts it."""
    from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX

    return FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


def insert_many(
    model: type[models.Model], fields: Sequence[models.Field[Any, Any]], rows: list[list[Any]]
) -> None:
    """Store `rows` (each the database values of `fields`, in order) as new rows of `model`,
    in Django's transaction. On PostgreSQL by COPY: an INSERT per row, sent by the client-side
    binding cursor, is parsed and planned again for every row, which cost PostgreSQL ~85 us
    and the web process ~50 us a request-log row, against ~7 and ~6 by COPY (measured, 6,000
    rows). Elsewhere (SQLite, in-process) one prepared INSERT run by executemany."""
    db = database()
    names = ", ".join(db.ops.quote_name(str(field.column)) for field in fields)
    if db.vendor == "postgresql" and not db.queries_logged:
        with (
            db.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table(model)} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    with db.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table(model)} ({names}) VALUES ({', '.join(['%s'] * len(fields))})",
            rows,
        )


# Rows per UPDATE of update_each: a few parameters each, well inside SQLite's limit of 32,766.
ROWS_PER_UPDATE = 500


def update_each(
    model: type[models.Model],
    field_names: Sequence[str],
    values: Mapping[Any, Sequence[Any]],
    *,
    also: dict[str, Any] | None = None,
    only_later: bool = False,
) -> None:
    """Set `field_names` of each row of `model` whose primary key is a key of `values` to its
    own values (in that order), and the fields of `also` to the same value on every row, in
    Django's transaction: one UPDATE joined to a VALUES list per ROWS_PER_UPDATE rows, in key
    order, so two writers' batches cannot deadlock. An UPDATE per row (what executemany sends)
    is parsed and planned again for every row on PostgreSQL: 0.8 ms each for the token times
    of two web processes at 1,000 tokens/s (pg_stat_statements). `only_later`: a row's first
    value replaces only an earlier one, or none."""
    db, pk_field = database(), model._meta.pk
    assert pk_field is not None
    fields = [_field(model, name) for name in field_names]
    rows = sorted(
        (
            pk_field.get_db_prep_value(pk, db),
            *(field.get_db_prep_save(value, db) for field, value in zip(fields, row, strict=True)),
        )
        for pk, row in values.items()
    )
    constant = [(_field(model, name), value) for name, value in (also or {}).items()]
    target = table(model)
    # VALUES names its columns column1, column2, ... on both PostgreSQL and SQLite.
    assignments = [
        f"{column(model, field.name)} = v.column{number}"
        for number, field in enumerate(fields, start=2)
    ] + [f"{column(model, field.name)} = %s" for field, _value in constant]
    first = column(model, fields[0].name)
    later = f" AND ({target}.{first} IS NULL OR {target}.{first} < v.column2)" if only_later else ""
    row_marks = "(" + ", ".join(["%s"] * (1 + len(fields))) + ")"
    for start in range(0, len(rows), ROWS_PER_UPDATE):
        batch = rows[start : start + ROWS_PER_UPDATE]
        fetch(
            f"UPDATE {target} SET {', '.join(assignments)} "
            f"FROM (VALUES {', '.join([row_marks] * len(batch))}) AS v "
            f"WHERE {target}.{column(model, pk_field.name)} = v.column1{later}",
            [field.get_db_prep_save(value, db) for field, value in constant]
            + [value for row in batch for value in row],
            prepare=False,  # its text changes with the batch's size
        )


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), f"{name} is no column of {model.__name__}"
    return field
