"""WebSocket fallbacks shared by every app."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Refuses a WebSocket to a path nobody serves (the handshake gets 403), instead of the
    router raising and the server logging a 500."""

    async def connect(self) -> None:
        await self.close()
