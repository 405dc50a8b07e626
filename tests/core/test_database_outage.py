"""A request that fails because the database cannot be reached (or answer in time) is told so:
503 ServiceUnavailable with Retry-After, which the ACS SDKs retry, not 500 InternalError,
which says the request itself broke something. After one such failure no request waits on
the database: each is answered 503 at once until /healthz's check finds it again."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection
from django.test import Client

from apps.accounts import services
from apps.core import outage, views
from apps.core.errors import DATABASE_RETRY_AFTER_SECONDS
from apps.core.wsgi_bridge import BufferedWsgi
from tests.conftest import AcsClient, wait_for
from tests.core.test_wsgi_bridge import _call, echo_app

UNAVAILABLE = {
    "error": {
        "code": "ServiceUnavailable",
        "message": "The service cannot reach its database; try again shortly.",
    }
}


def django_error(kind: type[Exception], cause: Exception) -> Exception:
    """`kind` as Django raises it from the driver's `cause`."""
    error = kind(str(cause))
    error.__cause__ = cause
    return error


# The connection lost, as Django raises it from psycopg's error.
LOST = django_error(OperationalError, psycopg.OperationalError("server closed the connection"))


def failing(error: Exception) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    return fail


class HeldCheck:
    """/healthz's database check, held until the test lets it answer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.runs = 0
        checked = views._check_database

        def check() -> list[str]:
            self.runs += 1
            assert self.release.wait(10), "the check was never let go"
            return checked()

        monkeypatch.setattr(views, "_check_database", check)


@pytest.fixture
def held_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldCheck]:
    held = HeldCheck(monkeypatch)
    yield held
    held.release.set()
    # the check's thread has a connection of its own: closed, so the test database can go
    views._database_checker.submit(lambda: connection.close()).result(timeout=10)


def create_identity(acs: AcsClient) -> Any:
    return acs.call("POST", "/identities", {"createTokenWithScopes": ["chat"]})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error, unreachable",
    [
        (
            django_error(OperationalError, psycopg.OperationalError("connection timeout expired")),
            True,
        ),
        (
            django_error(
                OperationalError, psycopg.OperationalError("server closed the connection")
            ),
            True,
        ),
        (InterfaceError("connection already closed"), True),
        # the server answers: it refused or cancelled a statement
        (django_error(OperationalError, psycopg.errors.QueryCanceled("statement timeout")), False),
        (django_error(OperationalError, sqlite3.OperationalError("database is locked")), False),
    ],
)
def test_an_api_call_without_its_database_answers_503_with_retry_after(
    acs: AcsClient,
    monkeypatch: pytest.MonkeyPatch,
    held_check: HeldCheck,
    error: Exception,
    unreachable: bool,
) -> None:
    # given the database fails the request's write
    monkeypatch.setattr(services, "create_identity", failing(error))
    acs.client = Client(raise_request_exception=False)

    # when an SDK creates an identity
    response = create_identity(acs)

    # then it is told to come back, in the ACS shape, without the server's words
    assert response.status_code == 503
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert response.json() == UNAVAILABLE
    # and only a database out of reach holds up the requests after it
    assert outage.database_up() is not unreachable


@pytest.mark.django_db
def test_any_other_failure_is_still_an_internal_error(
    acs: AcsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a bug, not the database
    monkeypatch.setattr(services, "create_identity", failing(KeyError("oops")))
    acs.client = Client(raise_request_exception=False)

    # when
    response = create_identity(acs)

    # then
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalError"
    assert "Retry-After" not in response
    assert outage.database_up()  # and the next request is not refused


@pytest.mark.django_db
def test_a_console_page_without_its_database_says_so(
    client: Client, owner: Any, monkeypatch: pytest.MonkeyPatch, held_check: HeldCheck
) -> None:
    # given a signed-in owner and a database that has gone away
    client.force_login(owner)
    client.raise_request_exception = False
    monkeypatch.setattr(services, "list_resources", failing(LOST))

    # when the console lists the owner's resources
    response = client.get("/resources/")

    # then a plain 503 page that asks to try again
    assert response.status_code == 503
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert b"try again shortly" in response.content


@pytest.mark.django_db
def test_after_one_failure_requests_are_refused_at_once_until_the_health_check_answers(
    acs: AcsClient, monkeypatch: pytest.MonkeyPatch, held_check: HeldCheck
) -> None:
    # given one request failed for want of the database
    calls = []
    create = services.create_identity

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise LOST
        return create(*args, **kwargs)

    monkeypatch.setattr(services, "create_identity", counted)
    acs.client = Client(raise_request_exception=False)
    assert create_identity(acs).status_code == 503

    # when the next requests come while /healthz's check of the database has not answered
    refused = [create_identity(acs) for _ in range(3)]

    # then they are answered 503 without reaching the database (the view never ran)
    assert [r.status_code for r in refused] == [503, 503, 503]
    assert refused[0].json() == UNAVAILABLE
    assert len(calls) == 1
    wait_for(lambda: held_check.runs == 1, 5)
    assert held_check.runs == 1  # one check at a time, not one per request
    # and /healthz itself still answers (its check times out: database down)
    health = Client().get("/healthz")
    assert (health.status_code, health.json()["down"]) == (503, ["database"])

    # when the check succeeds
    held_check.release.set()
    views.start_database_check()[0].result(timeout=10)

    # then requests reach the database again
    response = create_identity(acs)
    assert response.status_code == 201, response.content
    assert len(calls) == 2


def test_a_check_that_started_before_the_failure_does_not_end_the_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a check that succeeded before the database was found down
    earlier: Future[list[str]] = Future()
    earlier.set_result([])
    last = {"check": earlier, "at": 0.0}
    started = []
    monkeypatch.setattr(views, "last_database_check", lambda: (last["check"], last["at"]))
    monkeypatch.setattr(views, "start_database_check", lambda: started.append(1))
    outage.mark_down()

    # then that success says nothing of now: another check is started
    assert not outage.database_up()
    assert started == [1]

    # and a check started after the failure that succeeds ends it
    last["at"] = float("inf")
    assert outage.database_up()
    assert outage.database_up()
    assert started == [1]


def test_a_failed_check_keeps_the_outage_and_starts_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed: Future[list[str]] = Future()
    failed.set_exception(LOST)
    started = []
    monkeypatch.setattr(views, "last_database_check", lambda: (failed, float("inf")))
    monkeypatch.setattr(views, "start_database_check", lambda: started.append(1))
    outage.mark_down()

    assert not outage.database_up()
    assert started == [1]


@pytest.mark.django_db  # the loop's connection (sql.limit_statements)
async def test_a_shortcut_whose_batch_lost_the_database_is_answered_by_django_and_the_next_skip_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a shortcut whose batch fails for want of the database
    tried = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        tried.append(1)
        failed: Future[Any] = Future()
        failed.set_exception(LOST)
        return failed

    pending: Future[list[str]] = Future()  # the health check, not answered yet
    monkeypatch.setattr(views, "last_database_check", lambda: (pending, float("inf")))
    monkeypatch.setattr(views, "start_database_check", lambda: (pending, float("inf")))
    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])

    # when two requests come, one after the other
    first = await _call(bridge, [b'{"a": 1}'])
    second = await _call(bridge, [b'{"a": 2}'])

    # then Django answers both (here the app; in serve its outage middleware says 503), and
    # the second never reached the shortcut: its batch would have waited on the database
    assert [first[0]["status"], second[0]["status"]] == [201, 201]
    assert json.loads(second[1]["body"])["body"] == '{"a": 2}'
    assert len(tried) == 1

    # when the health check answers, the shortcut takes requests again
    pending.set_result([])
    await _call(bridge, [b'{"a": 3}'])
    assert len(tried) == 2
