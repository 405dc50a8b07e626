"""Names for the few hot queries written in plain SQL, where building the ORM's query cost more
than running it (each says what was profiled): tables and columns come from the models, quoted
for the connection's database; and `fetch`, which runs such a query."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], field_name: str) -> str:
    field = model._meta.get_field(field_name)
    assert isinstance(field, models.Field), f"{field_name} is no column of {model.__name__}"
    return connection.ops.quote_name(str(field.column))


def database() -> BaseDatabaseWrapper:
    """This thread's connection itself: each attribute read through django.db.connection
    looks the connection up again (a tenth of a chat post's CPU, profiled)."""
    return connections[DEFAULT_DB_ALIAS]


def fetch(query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one hot statement (`%s` placeholders; none for a write without RETURNING),
    on Django's connection and in its transaction, with Django's errors, through the driver's
    cursor: Django's cursor wrapper, which on SQLite converts the placeholders again on every
    call, cost as much as a short query (profiled). While Django logs queries (DEBUG, the
    tests' query counters) it goes through Django's cursor, so they see it."""
    db = database()
    if db.queries_logged:
        with db.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []
    db.ensure_connection()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        if db.vendor == "sqlite":
            cursor = db.connection.cursor()
            query = _qmark(query)
        else:
            cursor = db.create_cursor()
        try:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()


@functools.lru_cache(maxsize=256)
def _qmark(query: str) -> str:
    """`query` with SQLite's placeholders, as Django's SQLite cursor converts it."""
    from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX

    return FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")
