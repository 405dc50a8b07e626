"""Model instances read and stored by plain SQL, for the hot paths where building the ORM's
query cost more than running it (profiled on chat posts, bench/chat.py): authenticate_token,
and the chat and events reads and writes of every message. The rest of the code gets and gives
the instances the ORM would have: every field loaded and converted by the same converters, and
stored with the same values.

It sits beside sql.py, whose table() and column() name what such queries read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connection, models, transaction

from apps.core import sql
from apps.core.sql import table

M = TypeVar("M", bound=models.Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class Columns(Generic[M]):
    """Every column of `model`, for `SELECT {columns.select("t")} FROM {columns.table} t`, and
    the instance a row of them makes (`instance(row[start:start + len(columns)])`)."""

    model: type[M]
    fields: tuple[models.Field[Any, Any], ...]
    # Per field: the database's and the field's converters (JSON, UUIDs and datetimes on
    # SQLite), with the expression they are called with, as the ORM's compiler applies them.
    converters: tuple[tuple[tuple[Converter, ...], Any], ...]
    names: tuple[str, ...]  # the fields' attribute names

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def table(self) -> str:
        return table(self.model)

    def select(self, alias: str) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{alias}.{quote(str(field.column))}" for field in self.fields)

    def instance(self, values: Sequence[Any]) -> M:
        db = sql.database()
        converted = []
        for value, (converters, expression) in zip(values, self.converters, strict=True):
            for converter in converters:
                value = converter(value, expression, db)
            converted.append(value)
        return self.model.from_db(db.alias, self.names, converted)

    def value(self, values: Sequence[Any], name: str) -> Any:
        """One field's value in a row of these columns, converted as `instance` converts it."""
        index = self.names.index(name)
        converters, expression = self.converters[index]
        value, db = values[index], sql.database()
        for converter in converters:
            value = converter(value, expression, db)
        return value


@functools.cache
def columns(model: type[M]) -> Columns[M]:
    """The columns of `model` (built once: the database's converters keep no state)."""
    fields = tuple(model._meta.concrete_fields)
    converters = []
    for field in fields:
        expression = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(expression)
        found += expression.get_db_converters(connection)
        converters.append((tuple(found), expression))
    return Columns(model, fields, tuple(converters), tuple(f.attname for f in fields))


def insert(objs: Sequence[models.Model], *, ids: bool = True) -> None:
    """Store new instances of one model, as bulk_create does (each field's pre_save, such as
    auto_now_add, then its database value), in as few INSERTs as the database's limit on
    parameters allows, in one transaction when more than one; each gets its auto-incremented
    id, unless `ids` is False: then, like a model without one, nothing waits for the INSERT
    inside sql.pipeline(). No signals are sent (bulk_create sends none either)."""
    if not objs:
        return
    model = type(objs[0])
    fields, auto = _insert_fields(model)
    db = sql.database()
    size = max(1, db.ops.bulk_batch_size(fields, objs))
    batches = [objs[start : start + size] for start in range(0, len(objs), size)]
    split = len(batches) > 1
    with transaction.atomic(using=db.alias, savepoint=False) if split else nullcontext():
        for batch in batches:
            params = [
                field.get_db_prep_save(field.pre_save(obj, True), db)
                for obj in batch
                for field in fields
            ]
            if auto is None or not ids:
                sql.send(_insert_query(model, len(batch), returning=False), params)
                continue
            returned = sql.fetch(_insert_query(model, len(batch), returning=True), params)
            for obj, (value,) in zip(batch, returned, strict=True):
                setattr(obj, auto.attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias


def _insert_fields(
    model: type[models.Model],
) -> tuple[list[models.Field[Any, Any]], models.Field[Any, Any] | None]:
    """The columns an INSERT gives values to, and the auto-incremented one it returns."""
    auto = model._meta.auto_field
    return [f for f in model._meta.local_concrete_fields if f is not auto], auto


@functools.cache
def _insert_query(model: type[models.Model], count: int, *, returning: bool) -> str:
    fields, auto = _insert_fields(model)
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {table(model)} ({', '.join(quote(str(f.column)) for f in fields)}) "
        f"VALUES {', '.join([row] * count)}"
    )
    return f"{sql} RETURNING {quote(str(auto.column))}" if returning and auto is not None else sql
