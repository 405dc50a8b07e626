"""Calling's commands on the identity socket (/ws/, apps.accounts.consumers): each frame
`{"type": "call.<verb>", "callId"?, ...}` goes to apps.calls.signaling; errors come back as
`{"type": "error", "code", "message", "command"}` and the socket stays open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from apps.calls import signaling
from apps.core.errors import ApiError

if TYPE_CHECKING:
    from apps.accounts.consumers import IdentityConsumer


def _invite(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.invite(consumer.principal, frame, consumer.channel_name)
    return {"type": "call.invited", "callId": str(call.pk)}


def _accept(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.accept(consumer.principal, frame.get("callId"), consumer.channel_name)
    return {"type": "call.accepted", "callId": str(call.pk)}


def _decline(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.decline(consumer.principal, frame.get("callId"))
    return {"type": "call.declined", "callId": str(call.pk)}


def _hang_up(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.hang_up(consumer.principal, frame.get("callId"))
    return {"type": "call.hungUp", "callId": str(call.pk)}


def _signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
    signaling.relay(consumer.principal, frame.get("callId"), frame)


COMMANDS: dict[str, Callable[[IdentityConsumer, dict[str, Any]], Any]] = {
    "call.invite": _invite,
    "call.accept": _accept,
    "call.decline": _decline,
    "call.hangup": _hang_up,
    "call.signal": _signal,
}


def command(name: str) -> Callable[[IdentityConsumer, dict[str, Any]], Awaitable[None]]:
    handler = COMMANDS[name]

    async def run(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
        try:
            reply = await database_sync_to_async(handler)(consumer, frame)
        except ApiError as error:
            await consumer.send_json(
                {"type": "error", "code": error.code, "message": error.message, "command": name}
            )
            return
        if reply is not None:
            await consumer.send_json(reply)

    return run
