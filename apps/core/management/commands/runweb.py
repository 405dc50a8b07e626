"""One web process: serves HTTP and HTTPS on listening sockets inherited from `serve`."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand


class _Server(uvicorn.Server):
    # Signals are handled once for both servers below, not by each one.
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Command(BaseCommand):
    help = "Run one web process on inherited sockets (started by `manage.py serve`)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--http-fd", type=int, required=True)
        parser.add_argument("--https-fd", type=int, required=True)

    def handle(self, *args: Any, http_fd: int, https_fd: int, **options: Any) -> None:
        plain = _Server(_config())
        secure = _Server(
            _config(ssl_certfile=str(settings.TLS_CERT), ssl_keyfile=str(settings.TLS_KEY))
        )
        listeners = [
            (plain, socket.socket(fileno=http_fd)),
            (secure, socket.socket(fileno=https_fd)),
        ]

        def stop() -> None:
            for server, _ in listeners:
                server.should_exit = True

        # With a thousand sockets open, a full garbage collection took 110-160 ms and came
        # every few seconds under load, which set the p99 of chat deliveries (bench/chat.py):
        # keep start-up objects out of collections and collect the young generation less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in listeners))

        uvloop.run(main())


def _config(ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app="spool.asgi:application",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        ws_max_size=1024 * 1024,
        timeout_graceful_shutdown=5,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
