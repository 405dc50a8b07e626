"""The web process's guard around the ASGI app: a WebSocket whose consumer cannot reach Redis
is closed with 1013 and a reason, never answered with a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from channels_redis.pubsub import RedisPubSubChannelLayer

from apps.core.broker_guard import (
    CLOSE_TRY_AGAIN_LATER,
    BrokerOutageGuard,
    forget_unsubscribed_channels,
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(dict(message))


def _app(*, accept_first: bool = False, error: Exception | None = None) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if accept_first:
            await send({"type": "websocket.accept"})
        if error is not None:
            raise error

    return app


async def test_an_upgrade_that_cannot_reach_redis_is_accepted_and_closed_with_1013() -> None:
    # given a consumer that fails before accepting, as Channels does when it cannot subscribe
    guard = BrokerOutageGuard(_app(error=redis.exceptions.ConnectionError("refused")))
    client = Recorder()

    # when
    await guard({"type": "websocket"}, client.receive, client.send)

    # then
    assert [m["type"] for m in client.sent] == ["websocket.accept", "websocket.close"]
    assert client.sent[1]["code"] == CLOSE_TRY_AGAIN_LATER == 1013
    assert "unavailable" in client.sent[1]["reason"]
    assert len(client.sent[1]["reason"].encode()) <= 123  # what a close frame can carry


async def test_an_accepted_socket_whose_consumer_loses_redis_is_closed_with_1013() -> None:
    # given a consumer that accepted, then failed to join its group
    guard = BrokerOutageGuard(
        _app(accept_first=True, error=redis.exceptions.TimeoutError("no answer"))
    )
    client = Recorder()

    # when
    await guard({"type": "websocket"}, client.receive, client.send)

    # then it is not accepted twice
    assert [m["type"] for m in client.sent] == ["websocket.accept", "websocket.close"]
    assert client.sent[1]["code"] == 1013


async def test_other_errors_and_http_pass_through_untouched() -> None:
    # given
    client = Recorder()

    # when / then: a bug stays a bug (the server logs it and answers 500)
    with pytest.raises(ValueError):
        await BrokerOutageGuard(_app(error=ValueError("bug")))(
            {"type": "websocket"}, client.receive, client.send
        )
    with pytest.raises(redis.exceptions.ConnectionError):
        await BrokerOutageGuard(_app(error=redis.exceptions.ConnectionError("x")))(
            {"type": "http"}, client.receive, client.send
        )
    assert client.sent == []


async def test_refused_sockets_leave_no_channel_behind_in_the_layer(tmp_path: Path) -> None:
    # given the pub/sub layer on a Redis that is not there
    layer = RedisPubSubChannelLayer(hosts=[{"address": f"unix://{tmp_path / 'gone.sock'}"}])
    for _ in range(3):
        with pytest.raises(redis.exceptions.ConnectionError):
            await layer.new_channel()
    assert len(layer._get_layer().channels) == 3  # channels-redis keeps each failed one

    # when
    forget_unsubscribed_channels(layer)

    # then
    assert layer._get_layer().channels == {}
    await layer.flush()
