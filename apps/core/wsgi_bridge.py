"""Serve a WSGI app from an ASGI server with one thread hand-off per request.

a2wsgi streams both ways, so a request crosses between the event loop and its worker thread
for the body, for start_response and for each chunk: under load every crossing waits for
the GIL, which made the tail of a 2 ms API call reach 100+ ms. Django's API and console
answers are small, so this bridge reads the whole body on the loop, runs the app on a
thread pool, and buffers the answer: one crossing in, one out. It reuses a2wsgi's environ
builder. Bodies past SPOOL_BODY_MEMORY bytes are spooled to a temporary file, so a large
upload does not grow the process; bodies over `max_body` (or announcing more in
Content-Length) are refused with 413 before the app sees them.

Shortcuts answer the busiest requests without Django's request machinery (the token route,
apps/accounts/token_route.py; SMS sends, apps/sms/send_route.py; chat posts,
apps/chat/message_route.py): each is tried first, with the ASGI scope and the body, and
answers or returns None to leave the request to Django. A shortcut may answer with a Future
instead (a write committed by another thread, apps/core/batching.GroupCommit): the event loop
awaits it, and the request threads take the next requests meanwhile; if the Future fails, or
holds None (the batch's checks left the request to Django), Django answers the request. The
Future may hold the function that makes the answer instead, which the loop then calls: making
a chat post's answer (its headers, its request log line) was a tenth of the commit thread's
time, and every batch waits for that thread (apps/chat/message_route.py).

`loop_shortcuts` run on the event loop itself, `shortcuts` on a request thread. The token
route is CPU work around one indexed read, and handing it to a thread and back (a queue, two
GIL hand-offs, a wake-up of the loop) cost a fifth of a token request: on the loop, with
runweb's one write per answer, bench/tokens.py went from ~3,400 to ~4,200 tokens/s on SQLite
and from ~2,250 to ~2,700 on PostgreSQL. SMS sends and chat posts are read there too, and checked
against the database in their batch on the commit thread (apps/sms/send_route.py,
apps/chat/message_route.py).

While a shortcut runs, the loop serves nothing else, so a database that answers slowly must
not keep it: one that took over LOOP_LOAN_LIMIT sends the loop's shortcuts to the request
threads for LOOP_LOAN_PAUSE, where a slow read holds up only the requests behind it. One read is bounded too: PostgreSQL cancels a loop read after
LOOP_STATEMENT_TIMEOUT_MS (sql.limit_statements), and the connection's timeouts give up on a
database that stopped answering (settings.py). Once one request has failed for want of the
database, none waits on it: Django answers 503 at once until it is back (apps/core/outage.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from a2wsgi.wsgi import build_environ

from apps.core import outage, sql
from apps.core.errors import database_unreachable

logger = logging.getLogger(__name__)

SPOOL_BODY_MEMORY = 1024 * 1024
SHORTCUT_MAX_BODY = 64 * 1024  # larger bodies go to Django: no shortcut takes one
LOOP_LOAN_LIMIT = 0.1  # seconds: a loop shortcut slower than this ...
LOOP_LOAN_PAUSE = 10.0  # ... sends the loop's shortcuts to the request threads for this long
LOOP_STATEMENT_TIMEOUT_MS = 1000  # PostgreSQL cancels a loop shortcut's read after this
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
# A shortcut's answer, or a Future of it or of the function that makes it (of None: Django
# answers after all), or None to leave the request to Django. (Any: a Future of Answer is one too, and Future is invariant.)
Deferred = Future[Any]
Shortcut = Callable[[dict[str, Any], bytes], "Answer | Deferred | None"]


class BufferedWsgi:
    def __init__(
        self,
        app: WsgiApp,
        *,
        threads: int,
        max_body: int,
        shortcuts: Sequence[Shortcut] = (),
        loop_shortcuts: Sequence[Shortcut] = (),
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.shortcuts = tuple(shortcuts)  # tried on a request thread
        self.loop_shortcuts = tuple(loop_shortcuts)  # tried on the event loop, first
        self.threads = threads
        self._jobs: queue.SimpleQueue[
            tuple[_Inbox, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]
        ] = queue.SimpleQueue()
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._started = threading.Lock()
        self._running = False
        self._loop_lent_from = 0.0  # time.monotonic() from which shortcuts run on the loop

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if self._announced_length(scope) > self.max_body:
            await self._too_large(send)
            return
        body = tempfile.SpooledTemporaryFile(max_size=SPOOL_BODY_MEMORY)
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                body.close()
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                body.close()
                await self._too_large(send)
                return
            body.write(chunk)
            more = message.get("more_body", False)
        body.seek(0)
        try:
            answer = None
            on_thread = self.shortcuts
            if not outage.database_up():
                on_thread = ()  # Django answers 503 at once (apps/core/outage.py)
            elif self.loop_shortcuts and size <= SHORTCUT_MAX_BODY:
                if time.monotonic() >= self._loop_lent_from:
                    answer = self._shortcut_on_loop(scope, body)
                    body.seek(0)
                else:
                    on_thread = self.loop_shortcuts + self.shortcuts
            if answer is None:
                answer = await self._on_thread(self._answer, scope, body, size, on_thread)
            if isinstance(answer, Future):
                try:
                    answer = await self._on_loop(answer)
                    if callable(answer):
                        answer = answer()
                except Exception as error:
                    if database_unreachable(error):
                        outage.mark_down()  # so Django answers 503 at once
                    else:
                        logger.exception("A shortcut's deferred answer failed; Django answers")
                    answer = None
                if answer is None:
                    body.seek(0)
                    answer = await self._on_thread(self._run, scope, body)
        finally:
            body.close()
        status, headers, content = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def _shortcut_on_loop(self, scope: dict[str, Any], body: Any) -> Answer | Deferred | None:
        """The loop's shortcuts, run on the event loop's thread as on a thread of their own: with no
        running loop set, Django lets them use its connection (its guard against blocking a
        loop) and that connection is the thread's, kept between requests, instead of one per
        request (asgiref's storage follows each request's context while a loop runs)."""
        content = body.read()
        loop = asyncio.events._get_running_loop()
        started = time.monotonic()
        asyncio.events._set_running_loop(None)
        try:
            try:
                sql.limit_statements(LOOP_STATEMENT_TIMEOUT_MS)
            except Exception:  # no read on the loop without its limit: Django answers
                logger.warning("No database connection for the event loop's reads", exc_info=True)
                return None
            answer = self._try(self.loop_shortcuts, scope, content)
            _close_broken_connection()
            return answer
        finally:
            asyncio.events._set_running_loop(loop)
            took = time.monotonic() - started
            if took > LOOP_LOAN_LIMIT:
                self._loop_lent_from = time.monotonic() + LOOP_LOAN_PAUSE
                logger.warning(
                    "A shortcut held the event loop %.0f ms: shortcuts run on the request "
                    "threads for %.0f s",
                    took * 1000,
                    LOOP_LOAN_PAUSE,
                )

    def _on_thread(self, work: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """`work(*args)` on a request thread, its outcome settled on the loop through the
        loop's inbox. A plain queue and threads rather than ThreadPoolExecutor and
        run_in_executor, whose futures, locks and one wake-up of the loop per answer were a
        tenth of a token request's CPU (profiled)."""
        inbox = self._inbox()
        outcome: asyncio.Future[Any] = inbox.loop.create_future()
        if not self._running:
            self._start_threads()
        self._jobs.put((inbox, outcome, work, args))
        return outcome

    def _on_loop(self, deferred: Future[Any]) -> asyncio.Future[Any]:
        """An awaitable of a Future another thread settles (GroupCommit's), through the loop's
        inbox: a batch of commits wakes the loop once. If the request goes away first, the
        Future is cancelled (GroupCommit then leaves its write out, apps/core/batching.py)."""
        inbox = self._inbox()
        outcome: asyncio.Future[Any] = inbox.loop.create_future()

        def hand_over(done: Future[Any]) -> None:
            if done.cancelled():
                inbox.loop.call_soon_threadsafe(outcome.cancel)
                return
            error = done.exception()
            inbox.put(outcome, None if error else done.result(), error)

        def give_up(awaited: asyncio.Future[Any]) -> None:
            if awaited.cancelled():
                deferred.cancel()

        outcome.add_done_callback(give_up)
        deferred.add_done_callback(hand_over)
        return outcome

    def _inbox(self) -> _Inbox:
        loop = asyncio.get_running_loop()
        inbox = self._inboxes.get(loop)
        if inbox is None:  # a server's one loop; tests run one per test
            for closed in [known for known in self._inboxes if known.is_closed()]:
                del self._inboxes[closed]
            inbox = self._inboxes[loop] = _Inbox(loop)
        return inbox

    def _start_threads(self) -> None:
        with self._started:
            if self._running:
                return
            for n in range(self.threads):
                threading.Thread(target=self._serve, name=f"wsgi_{n}", daemon=True).start()
            self._running = True

    def _serve(self) -> None:
        while True:
            inbox, outcome, work, args = self._jobs.get()
            try:
                result = work(*args)
            except BaseException as error:  # handed to the awaiting request
                inbox.put(outcome, None, error)
            else:
                inbox.put(outcome, result, None)

    @staticmethod
    def _announced_length(scope: dict[str, Any]) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def _answer(
        self, scope: dict[str, Any], body: Any, size: int, shortcuts: tuple[Shortcut, ...]
    ) -> Answer | Deferred:
        """On a request thread: the answer of one of `shortcuts`, else Django's."""
        if shortcuts and size <= SHORTCUT_MAX_BODY:
            answer = self._try(shortcuts, scope, body.read())
            if answer is not None:
                return answer
            body.seek(0)
        return self._run(scope, body)

    @staticmethod
    def _try(
        shortcuts: tuple[Shortcut, ...], scope: dict[str, Any], content: bytes
    ) -> Answer | Deferred | None:
        for shortcut in shortcuts:
            try:
                answer = shortcut(scope, content)
            except Exception:  # Django answers instead, with its own error handling
                logger.exception("Shortcut %s failed; Django answers", shortcut)
                answer = None
            if answer is not None:
                return answer
        return None

    def _run(self, scope: dict[str, Any], body: Any) -> Answer:
        environ: dict[str, Any] = dict(build_environ(scope, body))  # type: ignore[arg-type]
        environ["wsgi.input_terminated"] = True
        started: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[..., Any]:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
            ]
            return lambda data: None  # the legacy write() callable; Django never uses it

        result = self.app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return started["status"], started["headers"], content

    async def _too_large(self, send: Callable[..., Any]) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "RequestEntityTooLarge",
                    "message": "The request body is too large.",
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


class _Inbox:
    """Answers from the request threads to one event loop. The loop is woken (a system call)
    only when no wake-up is pending: under load the answers a thread finishes meanwhile are
    settled by the same wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._answers: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._woken = False

    def put(self, outcome: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        self._answers.append((outcome, result, error))
        if not self._woken:
            self._woken = True
            try:
                self.loop.call_soon_threadsafe(self._settle_all)
            except RuntimeError:  # the loop is closed: nobody awaits these answers
                self._answers.clear()

    def _settle_all(self) -> None:
        # Cleared before draining: an answer put after the drain's last pop wakes the loop
        # again, one put meanwhile is settled by this drain (and its wake-up finds none).
        self._woken = False
        while self._answers:
            _settle(*self._answers.popleft())


def _close_broken_connection() -> None:
    """Close this thread's connection (the one sql.fetch reads through) if an error left it
    unusable, so the next shortcut connects anew, as Django does after each request it answers
    (the loop's connection serves shortcuts only; a shortcut leaves a database error to Django)."""
    db = sql.database()
    if db.errors_occurred and not db.in_atomic_block:
        try:
            db.close_if_unusable_or_obsolete()
        except Exception:  # the answer still goes out; the next error tries again
            logger.exception("Could not close a broken database connection")


def _settle(outcome: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if outcome.cancelled():  # the request went away meanwhile
        return
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(result)
