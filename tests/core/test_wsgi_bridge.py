"""The ASGI-to-WSGI bridge the web tier serves HTTP through."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from django.db import DatabaseError

from apps.core import sql, wsgi_bridge
from apps.core.wsgi_bridge import SHORTCUT_MAX_BODY, BufferedWsgi


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "application/json"), ("X-Seen", "yes")])
    answer = {
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "body": body.decode(),
        "raw": environ["asgi.scope"]["raw_path"].decode(),
    }
    return [json.dumps(answer).encode()]


async def _call(app: BufferedWsgi, chunks: list[bytes]) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/r/x/identities/8:acs:a_b",
        "raw_path": b"/r/x/identities/8%3Aacs%3Aa_b",
        "query_string": b"api-version=1",
        "headers": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_request_body_in_chunks_reaches_the_app_and_the_answer_comes_back_whole() -> None:
    # when
    sent = await _call(BufferedWsgi(echo_app, threads=2, max_body=100), [b'{"a":', b" 1}"])

    # then
    assert sent[0]["status"] == 201 and (b"x-seen", b"yes") in sent[0]["headers"]
    answer = json.loads(sent[1]["body"])
    assert answer == {
        "path": "/r/x/identities/8:acs:a_b",
        "query": "api-version=1",
        "body": '{"a": 1}',
        "raw": "/r/x/identities/8%3Aacs%3Aa_b",
    }


async def test_a_body_over_the_limit_gets_413_in_acs_shape_without_running_the_app() -> None:
    calls = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ)
        return []

    sent = await _call(BufferedWsgi(app, threads=1, max_body=10), [b"x" * 8, b"x" * 8])
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "RequestEntityTooLarge"
    assert calls == []


async def test_an_announced_oversized_body_is_refused_before_reading_it() -> None:
    app = BufferedWsgi(echo_app, threads=1, max_body=10)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", b"999999")],
    }

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body must not be read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_a_large_body_reaches_the_app_through_a_temporary_file() -> None:
    big = b'"' + b"x" * (3 * 1024 * 1024) + b'"'
    sent = await _call(
        BufferedWsgi(echo_app, threads=1, max_body=10 * 1024 * 1024), [big[:1000], big[1000:]]
    )
    assert len(json.loads(sent[1]["body"])["body"]) == len(big)


async def test_a_shortcut_answers_before_the_app_with_the_scope_and_the_whole_body() -> None:
    seen: list[tuple[str, bytes]] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        seen.append((scope["path"], body))
        return 200, [(b"content-type", b"text/plain")], b"short"

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("the app is not called when a shortcut answers")

    bridge = BufferedWsgi(app, threads=1, max_body=100, shortcuts=[shortcut])
    sent = await _call(bridge, [b'{"a":', b" 1}"])

    assert seen == [("/r/x/identities/8:acs:a_b", b'{"a": 1}')]
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"short")


async def test_the_app_answers_what_a_shortcut_leaves_or_fails_on() -> None:
    def leaves(scope: dict[str, Any], body: bytes) -> Any:
        return None

    def fails(scope: dict[str, Any], body: bytes) -> Any:
        raise RuntimeError("a bug in a shortcut")

    for shortcut in (leaves, fails):
        bridge = BufferedWsgi(echo_app, threads=1, max_body=100, shortcuts=[shortcut])
        sent = await _call(bridge, [b'{"a": 1}'])
        assert sent[0]["status"] == 201
        assert json.loads(sent[1]["body"])["body"] == '{"a": 1}'  # the body, still unread


async def test_a_large_body_skips_the_shortcuts() -> None:
    called: list[int] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        called.append(len(body))
        return None

    bridge = BufferedWsgi(echo_app, threads=1, max_body=10**6, shortcuts=[shortcut])
    sent = await _call(bridge, [b"x" * (SHORTCUT_MAX_BODY + 1)])

    assert called == [] and sent[0]["status"] == 201


async def test_a_deferred_answer_is_awaited_while_the_worker_thread_takes_the_next_request() -> (
    None
):
    # given a shortcut that answers with a Future, resolved only when a second request comes
    pending: list[Future[Any]] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        if body == b"second":
            pending[0].set_result((202, [], b"first, committed"))
            return 200, [], b"second"
        pending.append(Future())
        return pending[0]

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, shortcuts=[shortcut])

    # when the first waits on its Future and the second comes on the one worker thread
    first = asyncio.create_task(_call(bridge, [b"first"]))
    while not pending:
        await asyncio.sleep(0.01)
    second = await _call(bridge, [b"second"])

    # then both are answered: the thread was not held by the first
    assert second[1]["body"] == b"second"
    answered = await asyncio.wait_for(first, 5)
    assert (answered[0]["status"], answered[1]["body"]) == (202, b"first, committed")


async def test_django_answers_a_request_whose_deferred_answer_fails() -> None:
    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        failed: Future[Any] = Future()
        failed.set_exception(RuntimeError("the commit failed"))
        return failed

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, shortcuts=[shortcut])
    sent = await _call(bridge, [b'{"a": 1}'])

    assert sent[0]["status"] == 201
    assert json.loads(sent[1]["body"])["body"] == '{"a": 1}'  # the body, read again from the start


async def test_django_answers_a_request_whose_deferred_answer_leaves_it_to_django() -> None:
    # given a loop shortcut whose batch found, later, that the request is not one it answers
    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        declined: Future[Any] = Future()
        threading.Timer(0.01, declined.set_result, [None]).start()
        return declined

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])
    sent = await _call(bridge, [b'{"a": 2}'])

    assert sent[0]["status"] == 201
    assert json.loads(sent[1]["body"])["body"] == '{"a": 2}'  # the body, read again from the start


async def test_a_request_that_goes_away_while_the_app_works_leaves_the_next_one_unharmed(
    caplog: Any,
) -> None:
    # given an app still working when its request is cancelled (the client went away)
    started, release = asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        loop.call_soon_threadsafe(started.set)
        release.wait(5)
        return echo_app(environ, start_response)

    app = BufferedWsgi(slow_app, threads=1, max_body=100)
    request = asyncio.ensure_future(_call(app, [b"first"]))
    await started.wait()
    request.cancel()
    release.set()
    # then its late answer is dropped quietly, and the next request is answered
    sent = await _call(app, [b"second"])
    assert json.loads(sent[1]["body"])["body"] == "second"
    assert request.cancelled()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_a_request_that_goes_away_cancels_its_deferred_answer() -> None:
    # given a shortcut whose answer waits on a write not done yet
    pending: list[Future[Any]] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        pending.append(Future())
        return pending[0]

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, shortcuts=[shortcut])
    request = asyncio.ensure_future(_call(bridge, [b"x"]))
    while not pending:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    # when the client goes away
    request.cancel()
    await asyncio.sleep(0.01)
    # then the write is called off (GroupCommit leaves a cancelled Future's row out)
    assert pending[0].cancelled()


async def test_many_requests_at_once_each_get_their_own_answer() -> None:
    # given two request threads, and deferred answers a third thread settles in batches
    # (as GroupCommit does): answers reach the loop many at a time, with one wake-up each
    batch: list[tuple[Future[Any], bytes]] = []
    lock = threading.Lock()

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        if body.startswith(b"deferred"):
            deferred: Future[Any] = Future()
            with lock:
                batch.append((deferred, body))
            return deferred
        return None  # the app echoes it

    stop = threading.Event()

    def committer() -> None:
        while not stop.is_set():
            with lock:
                settled, batch[:] = list(batch), []
            for deferred, body in settled:
                deferred.set_result((202, [], body))
            stop.wait(0.005)

    threading.Thread(target=committer, daemon=True).start()
    bridge = BufferedWsgi(echo_app, threads=2, max_body=100, shortcuts=[shortcut])
    try:
        # when 400 requests come at once, half answered by the app, half deferred
        bodies = [f"{'deferred' if n % 2 else 'plain'} {n}".encode() for n in range(400)]
        answers = await asyncio.wait_for(
            asyncio.gather(*(_call(bridge, [body]) for body in bodies)), 10
        )
    finally:
        stop.set()

    # then every request gets its own answer, none lost or swapped
    for body, sent in zip(bodies, answers, strict=True):
        if body.startswith(b"deferred"):
            assert (sent[0]["status"], sent[1]["body"]) == (202, body)
        else:
            assert json.loads(sent[1]["body"])["body"] == body.decode()


@pytest.mark.django_db
async def test_loop_shortcuts_run_on_the_event_loop_and_keep_one_database_connection() -> None:
    # given a shortcut that reads the database, as the token route does
    ran: list[tuple[int, int]] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        assert sql.fetch("SELECT 1", [], prepare=False) == [(1,)]  # Django's guard let it
        ran.append((threading.get_ident(), id(sql.database())))
        return 200, [], b"read"

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])

    # when two requests come, each in its own context as the server gives them
    for _ in range(2):
        sent = await asyncio.create_task(_call(bridge, [b"{}"]), context=contextvars.Context())
        assert sent[1]["body"] == b"read"

    # then both ran on the loop's own thread, on the same connection
    assert ran[0][0] == threading.get_ident()
    assert ran[1] == ran[0]


@pytest.mark.django_db  # the loop's connection (sql.limit_statements)
async def test_a_slow_loop_shortcut_sends_the_next_ones_to_the_request_threads(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # given a shortcut that holds the loop too long once (a database that answered slowly)
    monkeypatch.setattr(wsgi_bridge, "LOOP_LOAN_LIMIT", 0.05)
    monkeypatch.setattr(wsgi_bridge, "LOOP_LOAN_PAUSE", 0.5)
    threads: list[int] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        threads.append(threading.get_ident())
        if len(threads) == 1:
            time.sleep(0.1)
        return 200, [], b"answered"

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])
    loop_thread = threading.get_ident()

    # when requests follow it, and again once the pause is over
    for _ in range(3):
        assert (await _call(bridge, [b"{}"]))[1]["body"] == b"answered"
    await asyncio.sleep(0.6)
    assert (await _call(bridge, [b"{}"]))[1]["body"] == b"answered"

    # then the next ones ran on a request thread, and after the pause on the loop again
    assert threads[0] == loop_thread and threads[3] == loop_thread
    assert loop_thread not in threads[1:3]
    assert "held the event loop" in caplog.text


@pytest.mark.django_db(transaction=True)
async def test_a_connection_a_database_error_broke_is_replaced_for_the_next_shortcut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a shortcut whose read fails as on a connection the database dropped
    connections_used: list[Any] = []

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        db = sql.database()
        db.ensure_connection()
        connections_used.append(db.connection)
        if len(connections_used) == 1:
            monkeypatch.setattr(db, "is_usable", lambda: False)
            try:
                sql.fetch("SELECT * FROM no_such_table", [], prepare=False)
            except DatabaseError:
                return None  # left to Django, as the routes do
        return 200, [], b"read"

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])

    # when the next request comes
    assert (await _call(bridge, [b"{}"]))[0]["status"] == 201  # Django's answer
    monkeypatch.undo()
    assert (await _call(bridge, [b"{}"]))[1]["body"] == b"read"

    # then it ran on a new connection
    assert connections_used[1] is not connections_used[0]


@pytest.mark.django_db  # the loop's connection (sql.limit_statements)
async def test_what_the_loop_shortcuts_leave_goes_to_the_thread_shortcuts_then_the_app() -> None:
    # given a loop shortcut for one path, and a thread shortcut for another
    ran: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    def on_loop(scope: dict[str, Any], body: bytes) -> Any:
        ran.append(("loop", threading.get_ident() == loop_thread))
        return (200, [], b"loop") if body == b"tokens" else None

    def on_thread(scope: dict[str, Any], body: bytes) -> Any:
        ran.append(("thread", threading.get_ident() == loop_thread))
        return (202, [], b"thread") if body == b"sms" else None

    bridge = BufferedWsgi(
        echo_app, threads=1, max_body=100, loop_shortcuts=[on_loop], shortcuts=[on_thread]
    )

    # when each kind of request comes
    answers = [(await _call(bridge, [body]))[1]["body"] for body in (b"tokens", b"sms", b"{}")]

    # then each is answered by its own, the loop's on the loop, the others on a thread
    assert answers[:2] == [b"loop", b"thread"]
    assert json.loads(answers[2])["body"] == "{}"  # the app, with the body unread
    assert ran == [("loop", True), ("loop", True), ("thread", False)] + [
        ("loop", True),
        ("thread", False),
    ]


async def test_the_loops_reads_are_limited_before_each_loop_shortcut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given the limit's setter and a loop shortcut, each noting when it ran
    ran: list[tuple[str, Any]] = []
    monkeypatch.setattr(sql, "limit_statements", lambda ms: ran.append(("limit", ms)))

    def shortcut(scope: dict[str, Any], body: bytes) -> Any:
        ran.append(("shortcut", None))
        return 200, [], b"read"

    bridge = BufferedWsgi(echo_app, threads=1, max_body=100, loop_shortcuts=[shortcut])

    await _call(bridge, [b"{}"])

    # then the limit came first (it acts only on a connection not yet open: sql.py)
    assert ran == [("limit", wsgi_bridge.LOOP_STATEMENT_TIMEOUT_MS), ("shortcut", None)]
