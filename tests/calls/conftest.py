"""Sockets on the identity WebSocket for calling tests (Channels' in-process communicator)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from apps.accounts import services as accounts
from spool.asgi import application


@pytest.fixture
async def close_thread_connections() -> AsyncIterator[None]:
    yield
    await database_sync_to_async(connections.close_all)()


class Socket:
    def __init__(self, communicator: WebsocketCommunicator, raw_id: str) -> None:
        self.communicator = communicator
        self.raw_id = raw_id

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_json_to(frame)

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        return await self.communicator.receive_json_from(timeout=timeout)

    async def expect(self, **fields: Any) -> dict[str, Any]:
        frame = await self.next()
        assert {k: frame.get(k) for k in fields} == fields, frame
        return frame

    async def until(self, timeout: float = 5, **fields: Any) -> dict[str, Any]:
        """The next frame with these fields, passing over others (replies and pushed frames
        can arrive in either order), each within `timeout` seconds."""
        for _ in range(10):
            frame = await self.next(timeout)
            if {k: frame.get(k) for k in fields} == fields:
                return frame
        raise AssertionError(f"no frame with {fields}")

    async def nothing(self) -> None:
        assert await self.communicator.receive_nothing(timeout=0.3)


@pytest.fixture
async def connect(
    resource: Any, close_thread_connections: None
) -> AsyncIterator[Callable[..., Awaitable[Socket]]]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(scopes: list[str] | None = None, token: Any = None) -> Socket:
        if token is None:
            identity, token = await database_sync_to_async(accounts.create_identity)(
                resource, scopes=scopes or ["voip"]
            )
        communicator = WebsocketCommunicator(application, f"/ws/?access_token={token.token}")
        connected, _ = await communicator.connect()
        assert connected
        opened.append(communicator)
        hello = await communicator.receive_json_from(timeout=5)
        return Socket(communicator, hello["identity"])

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()
