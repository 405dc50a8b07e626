"""The identity socket (/ws/): a user access token's live connection.

Connects with `?access_token=<token>`; answers with a hello frame; closes (code 4001) when
the token expires or is revoked, or its identity is deleted. A client renews its token in place
(`token.renew`), so what the socket holds, such as a call's leg, outlives the old token. Revocation is pushed through
the identity's group at once; the token is also re-checked every RECHECK_SECONDS, so a lost
push (a Redis outage) cannot keep a refused token connected. Chat and calling add their
events to the same connection through the identity's group: a higher app registers the
commands it answers (`register_command`) and the scopes a socket needs to receive its frames
(`register_frame_scopes`), so this module never imports it.

Frames are read by the same JSON reader as every API (`apps.core.parsers.loads`): a frame it
refuses (binary, not JSON, not an object, nested too deep, a huge number, a lone surrogate or
NUL), like a command that fails, gets an error frame and leaves the socket as it was; whatever
happens, a socket that closes runs every close hook (a call's other leg hears the hang-up).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from apps.accounts import services, sockets, tokens
from apps.core import parsers
from apps.core.broker_guard import BROKER_ERRORS
from apps.core.errors import ApiError
from apps.metrics import exporter

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOO_MANY = 4029  # the identity holds SPOOL_MAX_SOCKETS_PER_IDENTITY already
CLOSE_INTERNAL_ERROR = 1011
RECHECK_SECONDS = 30
RECHECK_BATCH_SECONDS = 0.5  # how long a due re-check may wait for others

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


Count = Callable[[Any, str], None]  # apps.accounts.sockets' open/keep/close_socket
_thread_contexts = threading.local()


def _in_thread_context(count: Count, identity_id: Any, channel: str) -> None:
    """`count(identity_id, channel)` in a context the current thread keeps.

    Django's cache handle lives in a context variable (asgiref's Local): called from a
    socket's own context, the socket counts would build a cache client with a Redis connection
    pool of its own and keep it, and its connection, as long as the socket (80 KiB per idle
    socket instead of 36 in a web process whose start-up had not used the cache yet, as under
    a plain `uvicorn spool.asgi:application`). In the worker thread's own context, every
    socket shares one."""
    context = getattr(_thread_contexts, "context", None)
    if context is None:
        context = _thread_contexts.context = contextvars.Context()
    context.run(count, identity_id, channel)


async def _count_socket(count: Count, identity_id: Any, channel: str) -> None:
    await sync_to_async(_in_thread_context)(count, identity_id, channel)


Recheck = tuple[str, Any, str]  # a socket's token, identity id and channel name


def _recheck(due: list[Recheck]) -> list[str | None]:
    """For each socket, why its token is refused now, or None when it still holds (its count
    is then renewed). A failure other than a refusal (the database or Redis is away) keeps the
    socket: it is checked again next time."""
    refusals: list[str | None] = []
    for token, identity_id, channel in due:
        try:
            services.authenticate_token(token)
            _in_thread_context(sockets.keep_socket, identity_id, channel)
        except ApiError as error:
            refusals.append(error.message)
            continue
        except Exception:
            logger.exception("Re-checking a socket's token failed")
        refusals.append(None)
    return refusals


class _Rechecks:
    """The periodic token re-checks of this process's sockets, made together: the ones due
    within RECHECK_BATCH_SECONDS share one hop to a worker thread, where each was two (a
    thread hop cost more than the check itself: at 10,000 idle sockets, 333 a second took
    half a core, bench/chat.py)."""

    def __init__(self) -> None:
        self.due: list[tuple[Recheck, asyncio.Future[str | None]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def check(self, token: str, identity_id: Any, channel: str) -> str | None:
        """Why the token is refused now, or None when it still holds (see _recheck)."""
        loop = asyncio.get_running_loop()
        if not self.due or loop is not self.loop:  # (tests run a loop each)
            self.due, self.loop = [], loop
            loop.call_later(RECHECK_BATCH_SECONDS, lambda: asyncio.ensure_future(self._run()))
        outcome: asyncio.Future[str | None] = loop.create_future()
        self.due.append(((token, identity_id, channel), outcome))
        return await outcome

    async def _run(self) -> None:
        due, self.due = self.due, []
        try:
            refusals = await database_sync_to_async(_recheck)([recheck for recheck, _ in due])
        except Exception:  # not a refusal: keep the sockets, check again next time
            logger.exception("Re-checking %d sockets' tokens failed", len(due))
            refusals = [None] * len(due)
        for (_, outcome), refused in zip(due, refusals, strict=True):
            if not outcome.done():  # (its socket may have closed meanwhile)
                outcome.set_result(refused)


_rechecks = _Rechecks()


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
        try:
            await _count_socket(sockets.open_socket, principal.identity.id, self.channel_name)
        except ApiError as error:  # too many sockets for this identity
            await self.send_json({"type": "error", "code": error.code, "message": error.message})
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.token = token
        self.principal = principal
        group = services.identity_group(principal.identity.id)
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except BaseException:
            await _count_socket(sockets.close_socket, principal.identity.id, self.channel_name)
            raise
        self.group = group
        exporter.WEBSOCKETS_OPEN.inc()  # down again in disconnect, which runs once per group
        self._watch_token(tokens.verify(token)["exp"])
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
        if not getattr(self, "group", None) or getattr(self, "hooks_ran", False):
            return
        self.hooks_ran = True  # once, though a failure and then the server may both call it
        exporter.WEBSOCKETS_OPEN.dec()
        self.watch.cancel()
        # Each step on its own: a failing one (a Redis outage, a hook's bug) must not keep the
        # others, such as hanging up this socket's calls, from running.
        try:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        except Exception:
            logger.exception("Leaving the identity group failed for %s", self.channel_name)
        try:
            await _count_socket(sockets.close_socket, self.principal.identity.id, self.channel_name)
        except Exception:
            logger.exception("Uncounting socket %s failed", self.channel_name)
        for hook in _on_close:
            try:
                if inspect.iscoroutinefunction(hook):
                    await hook(self.channel_name)
                else:
                    await database_sync_to_async(hook)(self.channel_name)
            except Exception:
                logger.exception("Close hook %r failed for %s", hook, self.channel_name)

    def _watch_token(self, expires_at: float, pause: float | None = None) -> None:
        """Close at expiry, or earlier when a periodic re-check refuses the token. The first
        re-check comes at a random point of the period, so sockets that opened together
        (after a restart) do not all re-check at once. A timer waits between checks, not a
        task: an idle socket then holds no task and coroutine (issue 18's 10,000 idle
        sockets)."""
        if pause is None:
            pause = random.uniform(0, RECHECK_SECONDS)
        delay = max(0.0, min(expires_at - time.time(), pause))
        loop = asyncio.get_running_loop()
        self.watch: asyncio.TimerHandle | asyncio.Future[None] = loop.call_later(
            delay, self._check_token, expires_at
        )

    def _check_token(self, expires_at: float) -> None:
        self.watch = asyncio.ensure_future(self._recheck_token(expires_at))

    async def _recheck_token(self, expires_at: float) -> None:
        if expires_at - time.time() <= 0:
            await self._refuse("The token has expired.")
            return
        refused = await _rechecks.check(self.token, self.principal.identity.id, self.channel_name)
        if refused is not None:
            await self._refuse(refused)
            return
        self._watch_token(expires_at, RECHECK_SECONDS)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return parsers.loads(text_data)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """One client frame. Channels' own `receive` raises on a binary frame and lets a
        decoding or command error through, which ends the consumer without `disconnect`:
        here each of those is answered with an error frame and the socket carries on."""
        if not getattr(self, "group", None):
            return  # refused: closing
        if text_data is None:
            await self._error("InvalidFrame", "Frames are JSON text; a binary frame is refused.")
            return
        if len(text_data) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            await self._error(
                "RequestEntityTooLarge",
                f"A frame holds at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} characters.",
            )
            return
        try:
            content = await self.decode_json(text_data)
        except ApiError as error:
            await self._error(error.code, error.message, target=error.target)
            return
        if not isinstance(content, dict):
            await self._error("InvalidFrame", 'A frame is a JSON object with a "type".')
            return
        try:
            await self.receive_json(content, **kwargs)
        except ApiError as error:
            await self._error(error.code, error.message, target=error.target, frame=content)
        except Exception:
            logger.exception("A %r frame failed", content.get("type"))
            await self._error(
                "InternalError", "The server failed to handle the frame.", frame=content
            )

    async def _error(
        self, code: str, message: str, *, target: str | None = None, frame: Any = None
    ) -> None:
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if target:
            error["target"] = target
        if isinstance(frame, dict) and isinstance(frame.get("type"), str):
            error["command"] = frame["type"]
            if "requestId" in frame:
                error["requestId"] = frame["requestId"]
        await self.send_json(error)

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
        try:
            # Channels hops to a thread to close stale database connections before every
            # handler; forwarding a realtime event touches no database, and that hop per
            # delivery was the largest cost of a busy socket process (bench/chat.py).
            if message.get("type") == "realtime.event":
                await self.realtime_event(message)
                return
            await super().dispatch(message)
        except (StopConsumer, *BROKER_ERRORS):
            raise  # Redis away: the router's BrokerOutageGuard closes it with 1013
        except Exception:
            # Whatever fails past `receive`'s own answers ends this consumer: close the socket
            # cleanly and run the close hooks first, rather than leave a call's other leg
            # waiting and the token watch running on a dead socket.
            logger.exception("The identity socket failed on a %r message", message.get("type"))
            try:
                await self.close(code=CLOSE_INTERNAL_ERROR)
            except Exception:  # (the socket may be gone already)
                logger.exception("Closing a failed identity socket failed")
            await self.disconnect(CLOSE_INTERNAL_ERROR)
            raise StopConsumer() from None

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
        self._watch_token(expires_at)
        await self.send_json(
            {"type": "token.renewed", "scopes": sorted(principal.scopes), "expiresOn": expires_at}
        )

    async def _refuse(self, reason: str) -> None:
        await self.send_json({"type": "error", "code": "InvalidToken", "message": reason})
        await self.close(code=CLOSE_UNAUTHORIZED)
