"""Calling's commands on the identity socket (/ws/, apps.accounts.consumers): each frame
`{"type": "call.<verb>", "callId"?, ...}` goes to apps.calls.signaling; errors come back as
`{"type": "error", "code", "message", "command"}` and the socket stays open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from apps.calls import signaling, turn
from apps.core.errors import ApiError

if TYPE_CHECKING:
    from apps.accounts.consumers import IdentityConsumer


def _ice_servers(consumer: IdentityConsumer) -> list[dict[str, Any]]:
    """The call configuration's ICE servers (TURN credentials for this identity)."""
    return turn.relay_configuration(consumer.principal.raw_id).ice_servers


def _invite(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.invite(consumer.principal, frame, consumer.channel_name)
    return {"type": "call.invited", "callId": str(call.pk), "iceServers": _ice_servers(consumer)}


def _accept(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.accept(consumer.principal, frame.get("callId"), consumer.channel_name)
    return {"type": "call.accepted", "callId": str(call.pk), "iceServers": _ice_servers(consumer)}


def _decline(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.decline(consumer.principal, frame.get("callId"))
    return {"type": "call.declined", "callId": str(call.pk)}


def _join(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    leg = signaling.join(consumer.principal, frame, consumer.channel_name)
    return {
        "type": "call.joined",
        "callId": str(leg.call.pk),
        "topology": leg.call.topology,
        "role": leg.role,
        "participants": signaling.roster(leg.call, without=leg.raw_id),
        "iceServers": _ice_servers(consumer),
    }


def _hang_up(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.hang_up(consumer.principal, frame.get("callId"), frame)
    return {"type": "call.hungUp", "callId": str(call.pk)}


def _signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
    signaling.relay(consumer.principal, frame.get("callId"), frame)


def _update(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    signaling.update_media(consumer.principal, frame.get("callId"), frame)
    return {"type": "call.updated", "callId": frame.get("callId")}


COMMANDS: dict[str, Callable[[IdentityConsumer, dict[str, Any]], Any]] = {
    "call.invite": _invite,
    "call.accept": _accept,
    "call.decline": _decline,
    "call.hangup": _hang_up,
    "call.signal": _signal,
    "call.join": _join,
    "call.update": _update,
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
