"""WebSockets while Redis (the channel layer) is away: a clean "try again later" close rather
than a 500, while `manage.py serve` restarts the private Redis (or an operator's comes back)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis.exceptions
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# RFC 6455 "Try Again Later": the server cannot take the socket now, a retry will work.
CLOSE_TRY_AGAIN_LATER = 1013
BROKER_DOWN_REASON = "Realtime service unavailable (restarting); reconnect shortly."
BROKER_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class BrokerOutageGuard:
    """Closes a WebSocket whose consumer fails because Redis (the channel layer) is
    unreachable with 1013 and a reason the client can act on, instead of uvicorn answering
    the upgrade with 500 (or closing an accepted socket with 1011) and logging a traceback per
    socket while `serve` restarts Redis. Other errors pass through untouched.

    Wraps the WebSocket router in spool/asgi.py, so every server gets it."""

    REPORT_EVERY_SECONDS = 10.0

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.refused = 0
        self.reported_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        state = {"accepted": False, "closed": False}

        async def tracked_send(message: Message) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] in ("websocket.close", "websocket.http.response.start"):
                state["closed"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except BROKER_ERRORS as error:
            self._report(error)
            forget_unsubscribed_channels(get_channel_layer())
            if state["closed"]:
                return
            try:
                if not state["accepted"]:
                    await send({"type": "websocket.accept"})
                await send(
                    {
                        "type": "websocket.close",
                        "code": CLOSE_TRY_AGAIN_LATER,
                        "reason": BROKER_DOWN_REASON,
                    }
                )
            except Exception:
                pass  # the client has gone meanwhile

    def _report(self, error: Exception) -> None:
        # Once per period, not once per socket: clients reconnect in bursts.
        self.refused += 1
        now = time.monotonic()
        if now - self.reported_at >= self.REPORT_EVERY_SECONDS:
            logger.warning(
                "Closed %d WebSocket(s) with %d since the last such line: Redis (the channel "
                "layer) is unreachable: %s",
                self.refused,
                CLOSE_TRY_AGAIN_LATER,
                error,
            )
            self.refused, self.reported_at = 0, now


def forget_unsubscribed_channels(layer: Any) -> None:
    """channels-redis's pub/sub layer registers a consumer's channel before subscribing to
    it and keeps the entry when the subscription fails: one leaked queue per refused socket.
    Drop entries no shard is subscribed to (a subscription in progress re-creates its own
    when it first receives)."""
    try:
        loop_layer = layer._get_layer()
        for name in list(loop_layer.channels):
            if name not in loop_layer._get_shard(name)._subscribed_to:
                del loop_layer.channels[name]
    except Exception:  # another layer, or internals that changed: nothing to tidy
        pass
