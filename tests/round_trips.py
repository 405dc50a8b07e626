"""Counting a PostgreSQL connection's round trips: the test's Django connection goes through a
loopback proxy that counts each time the server answers after the client has spoken (one
round trip, however many statements the client sent before it waits)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections


class RoundTripProxy:
    """A TCP proxy to PostgreSQL that counts round trips while `counting`."""

    def __init__(self, host: str, port: int) -> None:
        self._server = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.round_trips = 0
        self._client_spoke = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        self._pumps: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._server)
            self._sockets += [client, server]
            for pump in (
                threading.Thread(target=self._pump, args=(client, server, True), daemon=True),
                threading.Thread(target=self._pump, args=(server, client, False), daemon=True),
            ):
                self._pumps.append(pump)
                pump.start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                target.close()
                return
            with self._lock:
                if from_client:
                    self._client_spoke = True
                elif self._client_spoke:
                    self._client_spoke = False
                    self.round_trips += 1
            try:
                target.sendall(data)
            except OSError:
                source.close()
                return

    def close(self) -> None:
        """Once the client has closed its connection (its last words passed on, so the
        server's session ends as it would without the proxy)."""
        self._listener.close()
        for pump in self._pumps:
            pump.join(timeout=5)
        for each in self._sockets:
            each.close()


@contextmanager
def counted_round_trips() -> Iterator[RoundTripProxy]:
    """This thread's default connection replaced, inside the block, by a new one to the same
    database through a RoundTripProxy; the proxy's count starts at 0 when the block does."""
    original = connections[DEFAULT_DB_ALIAS]
    settings = original.settings_dict
    proxy = RoundTripProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    proxied = type(original)({**settings, "HOST": "127.0.0.1", "PORT": proxy.port})
    connections[DEFAULT_DB_ALIAS] = proxied
    try:
        proxied.ensure_connection()
        proxy.round_trips = 0
        yield proxy
    finally:
        connections[DEFAULT_DB_ALIAS] = original
        proxied.close()
        proxy.close()
