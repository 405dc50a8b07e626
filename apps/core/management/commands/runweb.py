"""One web process: serves HTTP and HTTPS on listening sockets inherited from `serve`."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.server import ServerProtocol

from apps.core.signals import web_serving

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    # Signals are handled once for both servers below, not by each one.
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpsListeners:
    """HTTPS servers on extra ports (resources' own origins) that open and close while the
    process runs. Each web process binds its own socket per port (SO_REUSEPORT), as `serve`
    does for the main ports, so the kernel spreads connections over the processes."""

    def __init__(self) -> None:
        self.servers: dict[int, tuple[_Server, asyncio.Task[None]]] = {}
        self.refused: set[int] = set()
        self.closing: list[asyncio.Task[None]] = []
        self.stopped = False

    def ports(self) -> set[int]:
        return set(self.servers)

    def open(self, port: int) -> bool:
        if self.stopped:
            return False
        family = socket.AF_INET6 if ":" in settings.BIND_ADDRESS else socket.AF_INET
        sock = socket.socket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((settings.BIND_ADDRESS, port))
            sock.listen(2048)
        except OSError as error:
            sock.close()
            if port not in self.refused:  # say it once; it is retried quietly
                logger.error("Cannot listen on resource port %s: %s", port, error)
                self.refused.add(port)
            return False
        self.refused.discard(port)
        server = _Server(_config(secure=True, lifespan="off"))
        self.servers[port] = (server, asyncio.ensure_future(server.serve(sockets=[sock])))
        return True

    def close(self, port: int) -> None:
        server, task = self.servers.pop(port)
        server.should_exit = True
        self.closing.append(task)

    def stop(self) -> None:
        self.stopped = True
        for port in list(self.servers):
            self.close(port)

    async def wait_closed(self) -> None:
        await asyncio.gather(*self.closing, return_exceptions=True)


class Command(BaseCommand):
    help = "Run one web process on inherited sockets (started by `manage.py serve`)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--http-fd", type=int, required=True)
        parser.add_argument("--https-fd", type=int, required=True)

    def handle(self, *args: Any, http_fd: int, https_fd: int, **options: Any) -> None:
        plain = _Server(_config())
        secure = _Server(_config(secure=True))
        extra = HttpsListeners()
        listeners = [
            (plain, socket.socket(fileno=http_fd)),
            (secure, socket.socket(fileno=https_fd)),
        ]

        def stop() -> None:
            for server, _ in listeners:
                server.should_exit = True
            extra.stop()

        # With a thousand sockets open, a full garbage collection took 110-160 ms and came
        # every few seconds under load, which set the p99 of chat deliveries (bench/chat.py):
        # keep start-up objects out of collections and collect the young generation less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        _lighter_log_records()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            web_serving.send(sender=self.__class__, listeners=extra)
            await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in listeners))
            await extra.wait_closed()

        uvloop.run(main())


def _lighter_log_records() -> None:
    """Every API request is a log line (apps/core/request_log.py), and building its record was
    a tenth of a token request's CPU (profiled, bench/tokens.py), a third of it looking up the
    caller's file and line, the thread and the process, which no Spool format prints. These
    are the logging HOWTO's own switches for that ("Optimization")."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, sending an answer's head and body in one write.

    uvicorn writes the status line and headers as soon as the app starts its answer, and the
    body apart: two sends per answer (two TLS records on HTTPS), the costlier part of writing
    it (profiled: a tenth of a token request's CPU in RequestResponseCycle.send). The app
    (wsgi_bridge) sends both at once, so what is written in one turn of the event loop goes
    out together at its end."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        # A WebSocket's frames go straight to the socket, as uvicorn writes them.
        joined = self.transport
        if isinstance(joined, _JoinedWrites):
            joined.flush()
            self.transport = joined.transport
        super().handle_websocket_upgrade()


class _JoinedWrites:
    """A transport whose writes in one turn of the event loop are sent together."""

    __slots__ = ("transport", "loop", "pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        if self.pending:
            data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
            self.pending = []
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's own WebSocket protocol (websockets' sans-I/O), lighter on idle sockets.

    permessage-deflate (every browser offers it) keeps no compression context between
    messages: with one, each socket holds a zlib compressor and decompressor from its first
    byte, ~46 KiB that an idle socket keeps for nothing (issue 18: more than all the rest of
    the socket, 68-73 KiB per idle socket in bench/chat.py --deflate). Each message is
    compressed on its own instead: about 3 us more per frame, and chat's frames of a few
    hundred bytes compress a little less. The window and memLevel are uvicorn's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            deflate = ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
            self.conn = ServerProtocol(
                extensions=[deflate],
                max_size=self.config.ws_max_size,
                logger=logging.getLogger("uvicorn.error"),
            )
        # An asyncio.Queue and an asyncio.Event hold four empty deques (~3.5 KiB) for every
        # socket; these hold what one reader and one writer use, made when first needed.
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        # The handshake's parsed request and response (~2 KiB of headers) are read only until
        # the accept goes out; an open socket need not keep them. websockets' parser holds the
        # request too, for the socket's life (a local of its generator): its headers go.
        if message["type"] == "websocket.accept" and self.handshake_complete:
            request = self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
            if request is not None:
                request.headers.clear()


class _Inbox:
    """The ASGI messages of one socket for its one reader: asyncio.Queue's put_nowait, get
    and empty, holding nothing while empty."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: deque[Any] | None = None
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self.items is None:
            self.items = deque()
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self) -> Any:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        item = self.items.popleft()
        if not self.items:
            self.items = None
        return item

    def empty(self) -> bool:
        return not self.items


class _Flag:
    """asyncio.Event's set, clear and wait for a socket's writer, holding no deque."""

    __slots__ = ("is_set", "waiters")

    def __init__(self) -> None:
        self.is_set = False
        self.waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self.is_set = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters = []

    def clear(self) -> None:
        self.is_set = False

    async def wait(self) -> None:
        if self.is_set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)


def _config(
    *, secure: bool = False, lifespan: Literal["auto", "on", "off"] = "auto"
) -> uvicorn.Config:
    return uvicorn.Config(
        app="spool.asgi:application",
        log_level="warning",
        access_log=False,
        # Its own lines (uvicorn.error) go through Django's LOGGING: JSON with the rest when
        # SPOOL_LOG_FORMAT=json, instead of uvicorn's plain handler.
        log_config=None,
        # Behind a load balancer, the client's address (request log, sign-in throttling,
        # the loopback-only plain-HTTP API) comes from the trusted proxy's X-Forwarded-For.
        proxy_headers=settings.BEHIND_PROXY,
        forwarded_allow_ips=settings.TRUSTED_PROXIES,
        http=_HttpProtocol,
        ws=_WebSocketProtocol,
        ws_max_size=1024 * 1024,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(settings.TLS_CERT) if secure else None,
        ssl_keyfile=str(settings.TLS_KEY) if secure else None,
        lifespan=lifespan,
    )
