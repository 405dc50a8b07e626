"""The web tier's WebSocket protocol (runweb's _WebSocketProtocol): permessage-deflate without
context takeover, so that an idle socket holds no compression state."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import uvicorn
from websockets.asyncio.client import connect

from apps.core.management.commands.runweb import _WebSocketProtocol


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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        echo,
        host="127.0.0.1",
        port=port,
        ws=_WebSocketProtocol,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{port}/", compression="deflate") as client:
            agreed = client.response.headers["Sec-WebSocket-Extensions"]
            text = json.dumps({"type": "chatMessageReceived", "body": "hello " * 50})
            for _ in range(3):
                await client.send(text)
                assert await client.recv() == text
    finally:
        server.should_exit = True
        await serving

    assert "permessage-deflate" in agreed
    assert "server_no_context_takeover" in agreed and "client_no_context_takeover" in agreed
