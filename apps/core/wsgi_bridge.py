"""Serve a WSGI app from an ASGI server with one thread hand-off per request.

a2wsgi streams both ways, so a request crosses between the event loop and its worker thread
for the body, for start_response and for each chunk: under load every crossing waits for
the GIL, which made the tail of a 2 ms API call reach 100+ ms. Django's API and console
answers are small, so this bridge reads the whole body on the loop, runs the app on a
thread pool, and buffers the answer: one crossing in, one out. It reuses a2wsgi's environ
builder. Bodies past SPOOL_BODY_MEMORY bytes are spooled to a temporary file, so a large
upload does not grow the process; bodies over `max_body` (or announcing more in
Content-Length) are refused with 413 before the app sees them.

`shortcuts` answer the busiest requests without Django's request machinery (the token
route, apps/accounts/token_route.py): each is tried first, on the same worker thread, with
the ASGI scope and the body, and answers or returns None to leave the request to Django.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from a2wsgi.wsgi import build_environ

logger = logging.getLogger(__name__)

SPOOL_BODY_MEMORY = 1024 * 1024
SHORTCUT_MAX_BODY = 64 * 1024  # larger bodies go to Django: no shortcut takes one
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
Shortcut = Callable[[dict[str, Any], bytes], Answer | None]


class BufferedWsgi:
    def __init__(
        self, app: WsgiApp, *, threads: int, max_body: int, shortcuts: Sequence[Shortcut] = ()
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.shortcuts = tuple(shortcuts)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

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
        loop = asyncio.get_running_loop()
        try:
            status, headers, content = await loop.run_in_executor(
                self.executor, self._answer, scope, body, size
            )
        finally:
            body.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    def _announced_length(scope: dict[str, Any]) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    def _answer(self, scope: dict[str, Any], body: Any, size: int) -> Answer:
        if self.shortcuts and size <= SHORTCUT_MAX_BODY:
            content = body.read()
            body.seek(0)
            for shortcut in self.shortcuts:
                try:
                    answer = shortcut(scope, content)
                except Exception:  # Django answers instead, with its own error handling
                    logger.exception("Shortcut %s failed; Django answers", shortcut)
                    answer = None
                if answer is not None:
                    return answer
        return self._run(scope, body)

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
