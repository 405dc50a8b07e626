"""A real webhook receiver on 127.0.0.1 that records what it is sent, and a clock to move."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Resource
from apps.events import services
from apps.events.models import EventSubscription
from tests.conftest import free_port

_real_now = timezone.now


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Receiver:
    """Answers webhooks as told: `statuses` for the next notifications (then 200), the
    Event Grid handshake by `validation` ("echo", "accept", "wrong", or an HTTP status), the
    CloudEvents handshake with `allowed_origin` (None: no header)."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    validation: str | int = "echo"
    allowed_origin: str | None = "*"
    delay: float = 0.0  # before answering a notification
    validation_delay: float = 0.0  # before answering the handshake
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def notifications(self) -> list[Received]:
        return [
            r
            for r in self.received
            if r.method == "POST" and r.header("aeg-event-type") == "Notification"
        ]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(
                    Received("POST", self.path, dict(self.headers.items()), body)
                )
                if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                    time.sleep(receiver.validation_delay)
                    self._validation(json.loads(body))
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self._answer(status, {"received": True})

            def do_OPTIONS(self) -> None:
                receiver.received.append(
                    Received("OPTIONS", self.path, dict(self.headers.items()), b"")
                )
                headers = {}
                if receiver.allowed_origin is not None:
                    headers["WebHook-Allowed-Origin"] = receiver.allowed_origin
                self._answer(200, None, headers)

            def _validation(self, events: list[dict[str, Any]]) -> None:
                code = events[0]["data"]["validationCode"]
                mode = receiver.validation
                if mode == "echo":
                    self._answer(200, {"validationResponse": code})
                elif mode == "wrong":
                    self._answer(200, {"validationResponse": "not-the-code"})
                elif mode == "accept":
                    self._answer(200, None)
                else:
                    self._answer(int(mode), {"error": "no"})

            def _answer(
                self, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver; `receiver.stop()` takes it down (connection refused)."""
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def fast_webhooks(settings: Any) -> None:
    settings.EVENT_DELIVERY_TIMEOUT_SECONDS = 2
    settings.EVENT_RETRY_SECONDS = [10, 30, 60]
    settings.EVENT_TTL_MINUTES = 60
    settings.EVENT_MAX_ATTEMPTS = 30


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return _real_now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """`timezone.now()` everywhere, moved forward by `clock.advance(seconds)`."""
    c = Clock()
    monkeypatch.setattr(timezone, "now", c.now)
    return c


@pytest.fixture
def subscribe(resource: Resource, receiver: Receiver) -> Any:
    """Create a subscription of `resource` pointing at the receiver, and make its handshake
    as the worker does (active when the receiver echoes, as by default)."""

    def make(
        name: str = "hook",
        *,
        event_types: list[str] | None = None,
        schema: str | None = None,
        on: Resource | None = None,
        path: str = "",
    ) -> EventSubscription:
        subscription = services.create_subscription(
            on or resource,
            name=name,
            endpoint_url=f"http://127.0.0.1:{receiver.port}{path or '/hook'}",
            event_types=event_types,
            schema=schema,
        )
        services.validate_subscription(subscription.pk)
        subscription.refresh_from_db()
        return subscription

    return make
