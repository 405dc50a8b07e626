"""Call Automation tests: sockets on the identity WebSocket (as tests/calls), a real callback
receiver on 127.0.0.1 (as tests/events), the ACS API signed like the SDK, and the media
process's side seen through its channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.cache import cache
from moto.server import ThreadedMotoServer

from apps.accounts import services as accounts
from apps.accounts.models import IncomingCalls
from apps.automation import services, storage
from apps.events.models import Event
from tests.calls.conftest import Socket, close_thread_connections, connect  # noqa: F401
from tests.conftest import AcsClient, free_port
from tests.events.conftest import Receiver

API = "2026-03-12"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def quick_callbacks(settings: Any) -> None:
    settings.CALLBACK_TIMEOUT_SECONDS = 2
    settings.CALLBACK_RETRY_SECONDS = (30, 60)


@pytest.fixture
def media_alive() -> Iterator[None]:
    """As if the media process were running (it refreshes this mark)."""
    cache.set(services.MEDIA_ALIVE_KEY, 1, 600)
    yield
    cache.delete(services.MEDIA_ALIVE_KEY)


def callbacks_of(receiver: Receiver) -> list[dict[str, Any]]:
    """The CloudEvents the receiver was sent, in arrival order."""
    events = []
    for received in receiver.received:
        if received.method == "POST":
            events.extend(json.loads(received.body))
    return events


def types_of(receiver: Receiver) -> list[str]:
    return [
        event["type"].removeprefix("Microsoft.Communication.") for event in callbacks_of(receiver)
    ]


async def wait_for_callback(receiver: Receiver, name: str, timeout: float = 5) -> dict[str, Any]:
    for _ in range(int(timeout / 0.05)):
        for event in callbacks_of(receiver):
            if event["type"] == f"Microsoft.Communication.{name}":
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {name} callback; got {types_of(receiver)}")


async def api(acs: AcsClient, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return await database_sync_to_async(acs.call)(method, path, body, api_version=API, **kwargs)


async def route_to_application(socket: Socket, resource: Any) -> None:
    identity = await database_sync_to_async(accounts.access_identity)(resource, socket.raw_id)
    identity.incoming_calls = IncomingCalls.APPLICATION
    await database_sync_to_async(identity.save)()


async def incoming_call_event(timeout: float = 5) -> dict[str, Any]:
    for _ in range(int(timeout / 0.05)):
        event = await database_sync_to_async(
            lambda: (
                Event.objects.filter(event_type="Microsoft.Communication.IncomingCall")
                .order_by("-event_time")
                .first()
            )
        )()
        if event is not None:
            return dict(event.data)
        await asyncio.sleep(0.05)
    raise AssertionError("no IncomingCall event")


@pytest.fixture(autouse=True)
def empty_media_channel() -> None:
    """Earlier tests' messages to the media process (nobody reads them here) would fill the
    in-memory channel, and a message sent to a full channel is dropped. (Redis expires them;
    a receive cancelled there would lose the next message instead.)"""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        layer.channels.pop(settings.MEDIA_CHANNEL, None)


async def media_message(kind: str, timeout: float = 3) -> dict[str, Any]:
    """The next message of `kind` the media process would have received."""
    layer = get_channel_layer()
    assert layer is not None
    while True:
        message = await asyncio.wait_for(layer.receive(settings.MEDIA_CHANNEL), timeout)
        if message.get("type") == kind:
            return dict(message)


@pytest.fixture
def bucket(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "spool")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "spool-secret")
    settings.RECORDINGS_DIR = tmp_path
    settings.RECORDINGS_S3_BUCKET = "calls"
    settings.RECORDINGS_S3_ENDPOINT = f"http://127.0.0.1:{port}"
    settings.RECORDINGS_S3_REGION = "us-east-1"
    storage._client.cache_clear()
    s3 = boto3.client("s3", endpoint_url=settings.RECORDINGS_S3_ENDPOINT, region_name="us-east-1")
    s3.create_bucket(Bucket="calls")
    yield s3
    storage._client.cache_clear()
    server.stop()
