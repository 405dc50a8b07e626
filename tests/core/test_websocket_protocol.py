"""The web tier's WebSocket protocol (runweb's _WebSocketProtocol): permessage-deflate without
context takeover, so that an idle socket holds no compression state, and neither the
handshake's headers nor the empty deques of an asyncio.Queue and Event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from apps.core.management.commands.runweb import _Flag, _Inbox, _WebSocketProtocol


@contextlib.asynccontextmanager
async def served(app: Any, **options: Any) -> AsyncIterator[tuple[uvicorn.Server, int]]:
    """`app` served by uvicorn on a free port, with runweb's protocol classes in `options`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield server, port
    finally:
        server.should_exit = True
        await serving


def echo_server() -> contextlib.AbstractAsyncContextManager[tuple[uvicorn.Server, int]]:
    """`echo` served on runweb's WebSocket protocol."""
    return served(echo, ws=_WebSocketProtocol)


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"]})


async def test_deflate_is_agreed_without_context_takeover_and_messages_still_flow() -> None:
    async with echo_server() as (_, port):
        async with connect(f"ws://127.0.0.1:{port}/", compression="deflate") as client:
            agreed = client.response.headers["Sec-WebSocket-Extensions"]
            text = json.dumps({"type": "chatMessageReceived", "body": "hello " * 50})
            for _ in range(3):
                await client.send(text)
                assert await client.recv() == text

    assert "permessage-deflate" in agreed
    assert "server_no_context_takeover" in agreed and "client_no_context_takeover" in agreed


async def test_an_open_socket_keeps_no_handshake_headers_and_a_burst_arrives_in_order() -> None:
    # given a server on runweb's protocol and an open socket
    async with echo_server() as (server, port):
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers={"X-Big": "y" * 2000}):
            await asyncio.sleep(0.05)
            (protocol,) = server.server_state.connections

            # then neither uvicorn nor websockets' parser (a local of its generator) keeps the
            # handshake's headers
            assert "request" not in protocol.__dict__ and "response" not in protocol.__dict__
            assert len(protocol.conn.parser.gi_frame.f_locals["request"].headers) == 0

        # and when a client sends a burst, every message comes back in order
        async with connect(f"ws://127.0.0.1:{port}/") as client:
            for n in range(200):
                await client.send(str(n))
            assert [await client.recv() for _ in range(200)] == [str(n) for n in range(200)]


async def test_the_inbox_hands_messages_over_in_order_and_waits_when_empty() -> None:
    # given an empty inbox with a reader waiting
    inbox = _Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert inbox.empty() and not reader.done()

    # when messages arrive
    inbox.put_nowait(1)
    inbox.put_nowait(2)

    # then the reader gets them in order, and the inbox is empty again
    assert await reader == 1
    assert not inbox.empty()
    assert await inbox.get() == 2
    assert inbox.empty() and inbox.items is None


async def test_the_flag_lets_writers_through_only_while_set() -> None:
    # given a cleared flag and a writer waiting on it
    flag = _Flag()
    writer = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not writer.done()

    # when it is set, the writer goes; once cleared, the next one waits again
    flag.set()
    await asyncio.wait_for(writer, 1)
    await flag.wait()
    flag.clear()
    late = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not late.done()
    late.cancel()
    await asyncio.gather(late, return_exceptions=True)
    assert flag.waiters == []
