"""The identity socket (/ws/): a user access token's live connection.

Connects with `?access_token=<token>`; answers with a hello frame; closes (code 4001) when
the token expires or is revoked, or its identity is deleted. A client renews its token in place
(`token.renew`), so what the socket holds, such as a call's leg, outlives the old token. Revocation is pushed through
the identity's group at once; the token is also re-checked every RECHECK_SECONDS, so a lost
push (a Redis outage) cannot keep a refused token connected. Chat and calling add their
events to the same connection through the identity's group: a higher app registers the
commands it answers (`register_command`) and the scopes a socket needs to receive its frames
(`register_frame_scopes`), so this module never imports it.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from apps.accounts import services, tokens
from apps.core.errors import ApiError

CLOSE_UNAUTHORIZED = 4001
RECHECK_SECONDS = 30

Command = Callable[["IdentityConsumer", dict[str, Any]], Awaitable[None]]
_commands: dict[str, Command] = {}
_frame_scopes: dict[str, frozenset[str]] = {}
_on_close: list[Callable[[str], Any]] = []


def register_command(name: str, handler: Command) -> None:
    """Answer client frames of type `name` with `handler(consumer, frame)`."""
    _commands[name] = handler


def register_close_hook(hook: Callable[[str], Any]) -> None:
    """Call `hook(channel_name)` when a socket closes: awaited if it is a coroutine function,
    else (a sync service) run in a thread. Hooks run in the order they were registered."""
    _on_close.append(hook)


def register_frame_scopes(frame_type: str, scopes: Iterable[str]) -> None:
    """Forward frames of `frame_type` only to sockets whose token has one of `scopes`."""
    _frame_scopes[frame_type] = frozenset(scopes)


class IdentityConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        token = (query.get("access_token") or [""])[0]
        await self.accept()
        host = dict(self.scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        try:
            principal = await database_sync_to_async(services.authenticate_socket)(token, host)
        except ApiError as error:
            await self.send_json({"type": "error", "code": error.code, "message": error.message})
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.token = token
        self.principal = principal
        self.group = services.identity_group(principal.identity.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.watch = asyncio.ensure_future(self._watch_token(tokens.verify(token)["exp"]))
        await self.send_json(
            {
                "type": "hello",
                "socketId": self.channel_name,
                "identity": principal.raw_id,
                "scopes": sorted(principal.scopes),
                # A reconnecting client asks for what it missed since this time.
                "serverTime": timezone.now().isoformat().replace("+00:00", "Z"),
            }
        )

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            self.watch.cancel()
            await self.channel_layer.group_discard(self.group, self.channel_name)
            for hook in _on_close:
                if inspect.iscoroutinefunction(hook):
                    await hook(self.channel_name)
                else:
                    await database_sync_to_async(hook)(self.channel_name)

    async def _watch_token(self, expires_at: float) -> None:
        """Close at expiry, or earlier when a periodic re-check refuses the token. The first
        re-check comes at a random point of the period, so sockets that opened together
        (after a restart) do not all re-check at once."""
        pause = random.uniform(0, RECHECK_SECONDS)
        while True:
            remaining = expires_at - time.time()
            await asyncio.sleep(max(0.0, min(remaining, pause)))
            pause = RECHECK_SECONDS
            if expires_at - time.time() <= 0:
                await self._refuse("The token has expired.")
                return
            try:
                await database_sync_to_async(services.authenticate_token)(self.token)
            except ApiError as error:
                await self._refuse(error.message)
                return

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if not getattr(self, "group", None):
            return  # refused: closing
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "token.renew":
            await self._renew(content.get("token"))
        elif isinstance(kind, str) and kind in _commands:
            await _commands[kind](self, content)
        else:
            await self.send_json(
                {"type": "error", "code": "UnknownCommand", "message": f"Unknown type {kind!r}."}
            )

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels hops to a thread to close stale database connections before every handler;
        # forwarding a realtime event touches no database, and that hop per delivery was the
        # largest cost of a busy socket process (bench/chat.py).
        if message.get("type") == "realtime.event":
            await self.realtime_event(message)
            return
        await super().dispatch(message)

    async def realtime_event(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        kind = payload.get("type")
        if kind == "tokensRevoked":
            await self._refuse(payload.get("reason", "The token has been revoked."))
            return
        needed = _frame_scopes.get(kind)
        if needed is not None and not needed & self.principal.scopes:
            return
        if payload.get("toChannel", self.channel_name) != self.channel_name:
            return  # addressed to another socket of the same identity
        await self.send_json(payload)

    async def _renew(self, token: Any) -> None:
        """Carry on with a new token of the same identity (a renewal before expiry), so what
        this socket holds (a call's leg) outlives the old token. A refused token changes
        nothing: the socket keeps the one it has."""
        try:
            if not isinstance(token, str):
                raise ApiError("token must be a user access token.")
            principal = await database_sync_to_async(services.authenticate_token)(token)
            if principal.identity.id != self.principal.identity.id:
                raise ApiError("The token is for another identity.")
        except ApiError as error:
            await self.send_json(
                {
                    "type": "error",
                    "code": "InvalidToken",
                    "message": error.message,
                    "command": "token.renew",
                }
            )
            return
        self.token, self.principal = token, principal
        self.watch.cancel()
        expires_at = tokens.verify(token)["exp"]
        self.watch = asyncio.ensure_future(self._watch_token(expires_at))
        await self.send_json(
            {"type": "token.renewed", "scopes": sorted(principal.scopes), "expiresOn": expires_at}
        )

    async def _refuse(self, reason: str) -> None:
        await self.send_json({"type": "error", "code": "InvalidToken", "message": reason})
        await self.close(code=CLOSE_UNAUTHORIZED)
