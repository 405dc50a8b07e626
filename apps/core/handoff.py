"""Connections handed to the web process holding the fewest.

`serve` accepts on the HTTP and HTTPS ports itself and hands each new connection to one of its
web processes (`Dispatcher`), over a Unix socket pair per process (`SOCK_SEQPACKET`: one
message per connection, the socket passed with SCM_RIGHTS); the web process serves it
(`Receiver`, runweb) and reports back how many it holds. Each process had its own listening
socket before (SO_REUSEPORT), and the kernel picks one by a hash of the client's address and
port: 32 keep-alive connections came out 20 and 12 as often as 16 and 16, and the process with
20 set the p99 (bench/sms.py on PostgreSQL: p99 78 ms at 20/12, 63 ms at 17/15). A load
balancer keeping a few connections open to Spool is split as unevenly. Handing off by load
also keeps new connections away from a process busy with long ones (WebSockets).

The process holding the fewest gets the next connection: what it reported open, plus what was
handed to it since that it had not received then. A process whose channel is full (its loop
stuck) is passed over; one whose channel closed (it died) gets nothing until `serve` restarts
it with a fresh channel. With no web process up, nothing is accepted: clients wait in the
listening socket's backlog, as they would for a busy server.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

HTTP, HTTPS = b"h", b"s"  # which listening socket a handed connection came from
REPORT = struct.Struct("!QI")  # connections received so far, connections open now
ACCEPT_BURST = 64  # connections accepted per wake-up before the channels are read again


@dataclass(eq=False)
class _Process:
    channel: socket.socket
    handed: int = 0  # connections sent to it
    received: int = 0  # of those, how many it said it had received
    open: int = 0  # how many it said it held

    @property
    def load(self) -> int:
        return self.open + self.handed - self.received


class Dispatcher:
    """serve's side: accepts on `listeners` (tag -> listening socket) in a thread of its own
    and hands every connection to the least-loaded web process."""

    def __init__(self, listeners: dict[bytes, socket.socket]) -> None:
        self.listeners = listeners
        self.processes: list[_Process] = []
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.joining: list[_Process] = []  # channels made by connect(), for the thread to add
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.stopping = False
        self.accepting = False
        self.turn = 0  # where the search for the least-loaded starts: ties go round
        self.thread = threading.Thread(target=self._run, name="web-handoff", daemon=True)

    def start(self) -> None:
        for sock in self.listeners.values():
            sock.setblocking(False)
        self.wake_reader.setblocking(False)
        self.selector.register(self.wake_reader, selectors.EVENT_READ, self._woken)
        self.thread.start()

    def connect(self) -> socket.socket:
        """A channel for one web process about to start: returns its end, for the process to
        inherit (close it here once the process has started)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        with self.lock:
            self.joining.append(_Process(ours))
        self._wake()
        return theirs

    def stop(self) -> None:
        """Stop accepting (what is in the backlog stays there) and end the thread."""
        self.stopping = True
        self._wake()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _wake(self) -> None:
        try:
            self.wake_writer.send(b"\0")
        except OSError:
            pass  # a wake-up is pending already (buffer full) or the thread has ended

    def _run(self) -> None:
        try:
            while not self.stopping:
                for key, _ in self.selector.select():
                    handler: Callable[[socket.socket], None] = key.data
                    handler(key.fileobj)  # type: ignore[arg-type]
        except Exception:
            logger.exception("the web connection hand-off stopped")
        finally:
            for process in self.processes + self.joining:
                process.channel.close()
            self.selector.close()
            self.wake_reader.close()
            self.wake_writer.close()

    def _woken(self, wake_reader: socket.socket) -> None:
        try:
            while wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            joining, self.joining = self.joining, []
        for process in joining:
            self.processes.append(process)
            self.selector.register(process.channel, selectors.EVENT_READ, self._report)
        self._accept_while_any()

    def _accept_while_any(self) -> None:
        """Listen while some web process can take connections; else leave them in the backlog."""
        wanted = bool(self.processes) and not self.stopping
        if wanted == self.accepting:
            return
        for sock in self.listeners.values():
            if wanted:
                self.selector.register(sock, selectors.EVENT_READ, self._accept)
            else:
                self.selector.unregister(sock)
        self.accepting = wanted

    def _tag(self, listener: socket.socket) -> bytes:
        return next(tag for tag, sock in self.listeners.items() if sock is listener)

    def _accept(self, listener: socket.socket) -> None:
        tag = self._tag(listener)
        for _ in range(ACCEPT_BURST):
            try:
                connection, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, say: try again next wake-up
                logger.warning("accepting a web connection failed: %s", error)
                return
            with connection:  # our copy closes once handed over
                self._hand(tag, connection)

    def _hand(self, tag: bytes, connection: socket.socket) -> None:
        count = len(self.processes)
        order = sorted(
            (self.processes[(self.turn + i) % count] for i in range(count)),
            key=lambda process: process.load,
        )
        self.turn += 1
        for process in order:
            try:
                socket.send_fds(process.channel, [tag], [connection.fileno()])
            except BlockingIOError:
                continue  # its loop is behind: the next one
            except OSError:
                self._drop(process)
                continue
            process.handed += 1
            return
        logger.warning("no web process could take a connection: closed")

    def _report(self, channel: socket.socket) -> None:
        process = next(p for p in self.processes if p.channel is channel)
        while True:
            try:
                message = channel.recv(REPORT.size)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if len(message) != REPORT.size:  # closed: the process ended
                self._drop(process)
                return
            process.received, process.open = REPORT.unpack(message)

    def _drop(self, process: _Process) -> None:
        if process in self.processes:
            self.processes.remove(process)
            self.selector.unregister(process.channel)
            process.channel.close()
            self._accept_while_any()


class Receiver:
    """A web process's side: takes the connections `serve` hands it over `channel` and gives
    each to `serve_connection(tag, socket)`; reports how many it holds (`open_count()`) every
    REPORT_SECONDS while that changes."""

    REPORT_SECONDS = 0.02

    def __init__(
        self,
        channel: socket.socket,
        serve_connection: Callable[[bytes, socket.socket], None],
        open_count: Callable[[], int],
    ) -> None:
        self.channel = channel
        self.serve_connection = serve_connection
        self.open_count = open_count
        self.received = 0
        self.reported: tuple[int, int] | None = None
        self.loop: Any = None

    def start(self, loop: Any) -> None:
        self.loop = loop
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take)
        self._report()

    def stop(self) -> None:
        """Take nothing more; the channel's close tells `serve` to hand nothing more."""
        if self.loop is not None:
            self.loop.remove_reader(self.channel.fileno())
            self.loop = None
        self.channel.close()

    def _take(self) -> None:
        while True:
            try:
                tag, fds, _flags, _address = socket.recv_fds(self.channel, 1, 1)
            except BlockingIOError:
                return
            except OSError:
                tag, fds = b"", []
            if not tag:  # serve is gone: nothing more comes
                if self.loop is not None:
                    self.loop.remove_reader(self.channel.fileno())
                return
            for fd in fds:
                self.received += 1
                self.serve_connection(tag, socket.socket(fileno=fd))

    def _report(self) -> None:
        if self.loop is None:
            return
        now = (self.received, self.open_count())
        if now != self.reported:
            try:
                self.channel.send(REPORT.pack(*now))
                self.reported = now
            except BlockingIOError:
                pass  # serve reads them all; a later report says the same
            except OSError:
                return
        self.loop.call_later(self.REPORT_SECONDS, self._report)
