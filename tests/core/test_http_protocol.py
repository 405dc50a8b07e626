"""The web tier's HTTP/1.1 protocol (runweb's _HttpProtocol): an answer's head and body go out
in one write, keep-alive and WebSocket upgrades working as with uvicorn's own."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import connect

from apps.core.management.commands.runweb import _HttpProtocol, _JoinedWrites, _WebSocketProtocol
from tests.core.test_websocket_protocol import served


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else default


async def test_writes_in_one_turn_of_the_loop_go_out_as_one() -> None:
    transport = RecordingTransport()
    joined = _JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]

    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    joined.write(b"ok")
    assert transport.writes == []  # not yet: the turn is not over
    await asyncio.sleep(0)

    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    assert joined.get_extra_info("peername") == ("127.0.0.1", 1234)  # the rest, passed on


async def test_closing_sends_what_is_pending_first_and_nothing_is_written_after() -> None:
    transport = RecordingTransport()
    joined = _JoinedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]

    joined.write(b"last answer")
    joined.close()
    joined.write(b"too late")  # e.g. an answer to a client that went away
    await asyncio.sleep(0)

    assert transport.writes == [b"last answer"] and transport.closed


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await receive()
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})


async def test_each_keep_alive_answer_is_one_write_and_websockets_still_work(
    monkeypatch: Any,
) -> None:
    # given the server's joined writes, recorded as they go out to the socket
    sent: list[bytes] = []
    flush = _JoinedWrites.flush

    def recorded_flush(self: _JoinedWrites) -> None:
        if self.pending:
            sent.append(b"".join(self.pending))
        flush(self)

    monkeypatch.setattr(_JoinedWrites, "flush", recorded_flush)

    async with served(app, http=_HttpProtocol, ws=_WebSocketProtocol) as (_, port):
        # when two requests come on one keep-alive connection
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in ("/first", "/second"):
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(path.encode()), 5)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()

        # then each answer, head and body, went out in one write
        assert len(sent) == 2
        assert sent[0].startswith(b"HTTP/1.1 200 OK") and sent[0].endswith(b"\r\n\r\n/first")
        assert sent[1].endswith(b"\r\n\r\n/second")

        # and a WebSocket's frames go straight to its socket
        async with connect(f"ws://127.0.0.1:{port}/ws") as websocket:
            await websocket.send("hello")
            assert await asyncio.wait_for(websocket.recv(), 5) == "echo hello"
        assert len(sent) == 2
