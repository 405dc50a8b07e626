"""The identity socket (/ws/): a user access token's live connection.

Connects with `?access_token=<token>`; answers with a hello frame; closes (code 4001) when
the token expires or is revoked, or its identity is deleted. Revocation is pushed through
the identity's group at once; the token is also re-checked every RECHECK_SECONDS, so a lost
push (a Redis outage) cannot keep a refused token connected. Chat and calling add their
events to the same connection through the identity's group.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts import services, tokens
from apps.core.errors import ApiError

CLOSE_UNAUTHORIZED = 4001
RECHECK_SECONDS = 30


class IdentityConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        token = (query.get("access_token") or [""])[0]
        await self.accept()
        try:
            principal = await database_sync_to_async(services.authenticate_token)(token)
        except ApiError as error:
            await self.send_json({"type": "error", "code": error.code, "message": error.message})
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.token = token
        self.group = services.identity_group(principal.identity.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.watch = asyncio.ensure_future(self._watch_token(tokens.verify(token)["exp"]))
        await self.send_json(
            {
                "type": "hello",
                "socketId": self.channel_name,
                "identity": principal.raw_id,
                "scopes": sorted(principal.scopes),
            }
        )

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            self.watch.cancel()
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _watch_token(self, expires_at: float) -> None:
        """Close at expiry, or earlier when a periodic re-check refuses the token."""
        while True:
            remaining = expires_at - time.time()
            await asyncio.sleep(max(0.0, min(remaining, RECHECK_SECONDS)))
            if remaining <= RECHECK_SECONDS:
                await self._refuse("The token has expired.")
                return
            try:
                await database_sync_to_async(services.authenticate_token)(self.token)
            except ApiError as error:
                await self._refuse(error.message)
                return

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def realtime_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        if payload.get("type") == "tokensRevoked":
            await self._refuse(payload.get("reason", "The token has been revoked."))
            return
        await self.send_json(payload)

    async def _refuse(self, reason: str) -> None:
        await self.send_json({"type": "error", "code": "InvalidToken", "message": reason})
        await self.close(code=CLOSE_UNAUTHORIZED)
