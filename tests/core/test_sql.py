"""apps/core/sql.fetch: the hot plain-SQL statements through the driver's own cursor, on
Django's connection, in its transaction and with its errors; prepared on PostgreSQL, except
behind PgBouncer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction

from apps.accounts.models import Resource
from apps.core import sql
from tests.round_trips import counted_round_trips

pytestmark = pytest.mark.django_db(transaction=True)


def _slug_of(resource_id: Any) -> list[tuple[Any, ...]]:
    pk = Resource._meta.pk
    assert pk is not None
    return sql.fetch(
        f"SELECT {sql.column(Resource, 'slug')} FROM {sql.table(Resource)} "
        f"WHERE {sql.column(Resource, 'id')} = %s",
        [pk.get_db_prep_value(resource_id, connection)],
    )


def test_a_read_gives_its_rows_and_an_update_without_returning_none(resource: Resource) -> None:
    assert not connection.queries_logged  # the driver's cursor, not Django's
    assert _slug_of(resource.pk) == [(resource.slug,)]
    assert (
        sql.fetch(
            f"UPDATE {sql.table(Resource)} SET {sql.column(Resource, 'name')} = %s "
            f"WHERE {sql.column(Resource, 'slug')} = %s",
            ["renamed", resource.slug],
        )
        == []
    )
    resource.refresh_from_db()
    assert resource.name == "renamed"


def test_a_write_is_part_of_the_callers_transaction(resource: Resource) -> None:
    # when a statement's transaction rolls back
    with pytest.raises(RuntimeError), transaction.atomic():
        sql.fetch(
            f"UPDATE {sql.table(Resource)} SET {sql.column(Resource, 'name')} = %s "
            f"WHERE {sql.column(Resource, 'slug')} = %s",
            ["lost", resource.slug],
        )
        raise RuntimeError("rolled back")
    # then its change is gone
    resource.refresh_from_db()
    assert resource.name != "lost"


def test_a_failing_statement_raises_djangos_error_and_the_connection_carries_on(
    resource: Resource,
) -> None:
    with pytest.raises(DatabaseError):
        sql.fetch("SELECT no_such_column FROM no_such_table WHERE 1 = %s", [1])
    assert _slug_of(resource.pk) == [(resource.slug,)]


def test_the_query_counters_see_it(resource: Resource, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        assert _slug_of(resource.pk) == [(resource.slug,)]


def _prepared_statements() -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans FROM pg_prepared_statements")
        return cursor.fetchall()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
def test_on_postgresql_a_hot_statement_is_planned_once_for_every_run(resource: Resource) -> None:
    # when the same statement runs again and again on one connection
    for _ in range(8):
        assert _slug_of(resource.pk) == [(resource.slug,)]

    # then PostgreSQL holds it prepared, and runs it by its one generic plan
    [(statement, generic_plans)] = [
        found for found in _prepared_statements() if sql.table(Resource) in found[0]
    ]
    assert generic_plans >= 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's prepared statements")
def test_behind_pgbouncer_nothing_is_prepared(resource: Resource) -> None:
    # given a connection as SPOOL_PGBOUNCER makes it (settings.py: prepare_threshold None)
    connection.ensure_connection()
    assert connection.connection.prepare_threshold is not None
    connection.connection.prepare_threshold = None
    try:
        for _ in range(8):
            assert _slug_of(resource.pk) == [(resource.slug,)]
        assert _prepared_statements() == []
    finally:
        connection.connection.prepare_threshold = 5


@pytest.mark.parametrize(("pgbouncer", "threshold"), [("1", "None"), ("", "5")])
def test_spool_pgbouncer_turns_preparing_off(pgbouncer: str, threshold: str, tmp_path) -> None:
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import spool.settings as s; print(s.DATABASES['default']['OPTIONS']['prepare_threshold'])",
        ],
        env={
            **os.environ,
            "SPOOL_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://spool@127.0.0.1/spool",
            "SPOOL_PGBOUNCER": pgbouncer,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == threshold


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statement timeout")
def test_a_limited_connection_has_a_statement_cancelled_once_it_runs_too_long() -> None:
    # given this thread's connection opened with a limit (as the event loop's is)
    connection.close()
    try:
        sql.limit_statements(200)
        # when a statement runs longer
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="statement timeout"):
            sql.fetch("SELECT pg_sleep(5)", [], prepare=False)
        # then PostgreSQL cancelled it at the limit, and the connection carries on
        assert time.monotonic() - started < 2
        assert sql.fetch("SELECT 1", [], prepare=False) == [(1,)]
    finally:
        connection.close()  # the next test's connection opens without the limit


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statement timeout")
@pytest.mark.parametrize("shared", ["PGBOUNCER", "DB_POOL_SIZE"])
def test_a_connection_already_open_or_shared_is_left_unlimited(settings: Any, shared: str) -> None:
    def timeout() -> str:
        return str(sql.fetch("SHOW statement_timeout", [], prepare=False)[0][0])

    connection.ensure_connection()  # opened by others: never changed under them
    sql.limit_statements(200)
    assert timeout() == "0"
    connection.close()
    # behind PgBouncer, or from a pool, its session's settings would reach others' work
    setattr(settings, shared, 4)
    try:
        sql.limit_statements(200)
        assert timeout() == "0"
    finally:
        connection.close()


# --- Pipelines --------------------------------------------------------------------------------
def _rename(resource: Resource, name: str) -> None:
    sql.send(
        f"UPDATE {sql.table(Resource)} SET {sql.column(Resource, 'name')} = %s "
        f"WHERE {sql.column(Resource, 'slug')} = %s",
        [name, resource.slug],
    )


def _pg() -> bool:
    return connection.vendor == "postgresql"


def test_in_a_pipeline_each_statement_gives_its_own_rows_read_later(resource: Resource) -> None:
    # when two reads are sent, with a write between them, and their rows read in reverse
    with transaction.atomic(), sql.pipeline():
        first = sql.send("SELECT %s::integer" if _pg() else "SELECT %s", [1], prepare=False)
        _rename(resource, "renamed in a pipeline")
        second = sql.send(
            f"SELECT {sql.column(Resource, 'name')} FROM {sql.table(Resource)} "
            f"WHERE {sql.column(Resource, 'slug')} = %s",
            [resource.slug],
        )
        # then each read gives its own rows, the second seeing the write sent before it
        assert second() == [("renamed in a pipeline",)]
        assert first() == [(1,)]
    resource.refresh_from_db()
    assert resource.name == "renamed in a pipeline"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's pipeline mode")
def test_in_a_pipeline_writes_wait_for_nothing_but_the_next_read(resource: Resource) -> None:
    def three_writes_and_a_read() -> None:
        with transaction.atomic(), sql.pipeline():
            for name in ("one", "two", "three"):
                _rename(resource, name)
            assert _slug_of(resource.pk) == [(resource.slug,)]

    with counted_round_trips() as server:
        three_writes_and_a_read()  # (its statements prepared)
        server.round_trips = 0
        three_writes_and_a_read()
        # BEGIN; the writes with the read; the pipeline's end; COMMIT (one each without it: 6)
        assert server.round_trips == 4
    resource.refresh_from_db()
    assert resource.name == "three"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's pipeline mode")
def test_a_failed_write_in_a_pipeline_raises_djangos_error_in_the_block_and_keeps_nothing(
    resource: Resource, other_resource: Resource
) -> None:
    # when a write that breaks a constraint is sent, then another, and nothing is read
    with pytest.raises(IntegrityError), transaction.atomic(), sql.pipeline():
        _rename(resource, "kept?")
        sql.send(
            f"UPDATE {sql.table(Resource)} SET {sql.column(Resource, 'slug')} = %s "
            f"WHERE {sql.column(Resource, 'slug')} = %s",
            [other_resource.slug, resource.slug],
        )
    # then the error was Django's, raised inside the transaction, which kept nothing
    resource.refresh_from_db()
    assert resource.name != "kept?"
    # and the connection carries on, in and out of pipelines
    with transaction.atomic(), sql.pipeline():
        assert _slug_of(resource.pk) == [(resource.slug,)]
    assert _slug_of(other_resource.pk) == [(other_resource.slug,)]


def _end_from_another_session(backend_pid: int) -> None:
    """The server ends this session (as a database host's restart or a network cut does)."""

    def terminate() -> None:
        with connection.cursor() as cursor:  # that thread's own connection
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
        connection.close()

    thread = threading.Thread(target=terminate)
    thread.start()
    thread.join(timeout=10)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a server that ends a session")
@pytest.mark.parametrize("through", ["fetch", "pipeline"])
def test_a_connection_that_died_while_idle_is_replaced_before_a_hot_statement(
    resource: Resource, through: str
) -> None:
    # given this thread's connection, ended by the server while idle
    assert _slug_of(resource.pk) == [(resource.slug,)]
    _end_from_another_session(connection.connection.info.backend_pid)
    close_old_connections()  # as before each request, and before a batch after a pause

    # when a hot statement runs, then it runs on a new connection (Django's health check)
    if through == "pipeline":
        with sql.pipeline():
            assert _slug_of(resource.pk) == [(resource.slug,)]
    else:
        assert _slug_of(resource.pk) == [(resource.slug,)]
