"""Calling's commands on the identity socket (/ws/, apps.accounts.consumers): each frame
`{"type": "call.<verb>", "callId"?, ...}` goes to apps.calls.signaling; errors come back as
`{"type": "error", "code", "message", "command"}` and the socket stays open.

In a group call through Janus (topology "sfu") the socket's own process holds the
participant's Janus session (apps.calls.sfu.JanusLeg): signals addressed to `sfu` (the
client's published media) or `sfu:<raw id>` (a feed it receives) go to Janus, and Janus's
offers for feeds come back as signals from `sfu:<raw id>`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.calls import janus_placement, media_link, sfu, signaling, turn
from apps.calls.exceptions import CallNotAllowed, InvalidCallRequest
from apps.calls.models import CallTopology
from apps.core.errors import ApiError

if TYPE_CHECKING:
    from apps.accounts.consumers import IdentityConsumer

logger = logging.getLogger(__name__)

# This process's Janus legs, by (socket channel name, call id).
_sfu_legs: dict[tuple[str, str], sfu.JanusLeg] = {}


def _ice_servers(consumer: IdentityConsumer) -> list[dict[str, Any]]:
    """The call configuration's ICE servers (TURN credentials for this identity)."""
    return turn.relay_configuration(consumer.principal.raw_id).ice_servers


def _invite(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.invite(consumer.principal, frame, consumer.channel_name)
    return {"type": "call.invited", "callId": str(call.pk), "iceServers": _ice_servers(consumer)}


def _accept(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.accept(consumer.principal, frame.get("callId"), consumer.channel_name, frame)
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
    reply: dict[str, Any] = {"type": "call.hungUp", "callId": str(call.pk)}
    if call.end_code is not None:  # the call is over (now or before): how it ended
        reply["callEndReason"] = {"code": call.end_code, "subCode": call.end_subcode or 0}
    return reply


def _signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
    signaling.relay(consumer.principal, frame.get("callId"), frame)


def _check_sfu_signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    return signaling.check_sfu_signal(consumer.principal, frame.get("callId"), frame)


def _update(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    signaling.update_media(consumer.principal, frame.get("callId"), frame)
    return {"type": "call.updated", "callId": frame.get("callId")}


def _send_dtmf(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    call = signaling.send_dtmf(consumer.principal, frame.get("callId"), frame)
    return {"type": "call.dtmfSent", "callId": str(call.pk), "topology": call.topology}


def _add_participant(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    leg = signaling.add_phone(consumer.principal, frame.get("callId"), frame)
    return {
        "type": "call.participantAdded",
        "callId": frame.get("callId"),
        "participant": signaling.roster_entry(leg),
    }


def _remove_participant(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    signaling.remove_phone(consumer.principal, frame.get("callId"), frame)
    return {"type": "call.participantRemoved", "callId": frame.get("callId")}


def _check_media_signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> dict[str, Any]:
    return signaling.check_media_signal(consumer.principal, frame.get("callId"), frame)


COMMANDS: dict[str, Callable[[IdentityConsumer, dict[str, Any]], Any]] = {
    "call.invite": _invite,
    "call.accept": _accept,
    "call.decline": _decline,
    "call.hangup": _hang_up,
    "call.signal": _signal,
    "call.join": _join,
    "call.update": _update,
    "call.sendDtmf": _send_dtmf,
    "call.addParticipant": _add_participant,
    "call.removeParticipant": _remove_participant,
}


# --- Group calls through Janus ---------------------------------------------------------------
async def _open_sfu_leg(consumer: IdentityConsumer, call_id: str) -> None:
    """Join the call's Janus room, on the server the call is placed on (placing it, for its
    first participant), for this socket; Janus's feed offers go to the client. Raises
    JanusError (NoJanusServer when no server can take the call)."""
    key = (consumer.channel_name, call_id)
    server = await database_sync_to_async(janus_placement.place)(call_id)

    async def on_event(event: dict[str, Any]) -> None:
        if event["kind"] == "disconnected":  # Janus went away: the participant's media with it
            await _close_sfu_leg(key)
            await _media_lost(consumer, call_id, server)
            return
        data = event["jsep"] if event["kind"] == "offer" else {"type": "bye"}
        await _send_signal(consumer, call_id, f"{signaling.SFU_PEER}:{event['feed']}", data)

    leg = sfu.JanusLeg(server, room=call_id, display=consumer.principal.raw_id, on_event=on_event)
    _sfu_legs[key] = leg
    try:
        await leg.open()
    except sfu.JanusError:
        _sfu_legs.pop(key, None)
        raise


async def _media_lost(consumer: IdentityConsumer, call_id: str, server: str) -> None:
    """The participant's Janus session failed or its connection dropped. If the server itself
    is gone, every call on it ends (503, 510503); else only this participant leaves (503)."""
    if server and await janus_placement.confirm_lost(server):
        await database_sync_to_async(signaling.end_janus_calls)(server)
    await database_sync_to_async(signaling.media_lost)(consumer.principal, call_id)


async def _close_sfu_leg(key: tuple[str, str]) -> None:
    leg = _sfu_legs.pop(key, None)
    if leg is not None:
        await leg.close()


async def _send_signal(
    consumer: IdentityConsumer, call_id: str, sender: str, data: dict[str, Any]
) -> None:
    await consumer.send_json(
        {"type": "call", "event": "signal", "callId": call_id, "from": sender, "data": data}
    )


async def _send_error(
    consumer: IdentityConsumer, frame: dict[str, Any], command: str, code: str, message: str
) -> None:
    error = {"type": "error", "code": code, "message": message, "command": command}
    await consumer.send_json(_answering(frame, error))


def _answering(frame: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """`reply` with the command's `requestId` (if it had one) and `callId`, so a client can
    tell which command it answers."""
    for field in ("requestId", "callId"):
        if field in frame and field not in reply:
            reply[field] = frame[field]
    return reply


async def _sfu_signal(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
    """A signal for Janus: publish or renegotiate (`sfu`), answer a feed (`sfu:<raw id>`), or
    trickle a candidate to either."""
    data = await database_sync_to_async(_check_sfu_signal)(consumer, frame)
    call_id, to = str(frame["callId"]), str(frame["to"])
    leg = _sfu_legs.get((consumer.channel_name, call_id))
    if leg is None:
        raise CallNotAllowed("This socket is not in the call's media.")
    target = "publish" if to == signaling.SFU_PEER else to.removeprefix(signaling.SFU_PEER + ":")
    if "candidate" in data:
        await leg.trickle(target, data["candidate"])
    elif target == "publish" and data.get("type") == "offer":
        await _send_signal(consumer, call_id, signaling.SFU_PEER, await leg.publish(data))
    elif target != "publish" and data.get("type") == "answer":
        await leg.answer_feed(target, data)
    else:
        raise InvalidCallRequest(
            "Send the sfu peer an offer, a feed an answer, or either a candidate.", target="data"
        )


def _to_bridge(
    consumer: IdentityConsumer, frame: dict[str, Any], kind: str, **fields: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "call": str(frame["callId"]),
        "rawId": consumer.principal.raw_id,
        "identity": str(consumer.principal.identity.pk),
        "channel": consumer.channel_name,
        **fields,
    }


def _stop_ringing(call_id: str) -> None:
    asyncio.ensure_future(database_sync_to_async(signaling.ring_timeout)(call_id))


async def socket_closed(channel_name: str) -> None:
    for key in [key for key in _sfu_legs if key[0] == channel_name]:
        await _close_sfu_leg(key)


def command(name: str) -> Callable[[IdentityConsumer, dict[str, Any]], Awaitable[None]]:
    handler = COMMANDS[name]

    async def run(consumer: IdentityConsumer, frame: dict[str, Any]) -> None:
        try:
            reply = await _run(consumer, name, handler, frame)
        except ApiError as error:
            await _send_error(consumer, frame, name, error.code, error.message)
            return
        except sfu.JanusError as error:
            logger.warning("Janus refused %s: %s", name, error)
            await _send_error(consumer, frame, name, "MediaServerError", str(error))
            return
        if reply is not None:
            await consumer.send_json(_answering(frame, reply))

    return run


async def _run(
    consumer: IdentityConsumer,
    name: str,
    handler: Callable[[IdentityConsumer, dict[str, Any]], Any],
    frame: dict[str, Any],
) -> Any:
    to = frame.get("to")
    if name == "call.signal" and isinstance(to, str) and to.startswith(signaling.SFU_PEER):
        await _sfu_signal(consumer, frame)
        return None
    if name == "call.signal" and to == signaling.MEDIA_PEER:
        # The media process answers the offer with a signal from `media` to this socket.
        data = await database_sync_to_async(_check_media_signal)(consumer, frame)
        await media_link.send(_to_bridge(consumer, frame, "signal", data=data))
        return None
    reply = await database_sync_to_async(handler)(consumer, frame)
    if name == "call.sendDtmf" and reply["topology"] == CallTopology.BRIDGE:
        tone = str(frame["tone"]).upper()
        await media_link.send(_to_bridge(consumer, frame, "dtmf", tone=tone))
    if name == "call.join" and reply["topology"] == CallTopology.SFU:
        # The client hears it joined before Janus's offers for the feeds already there.
        await consumer.send_json(_answering(frame, reply))
        try:
            await _open_sfu_leg(consumer, reply["callId"])
        except sfu.JanusError as error:
            logger.warning("Janus refused a join: %s", error)
            lost = error.code == sfu.CONNECTION_LOST and not isinstance(
                error, janus_placement.NoJanusServer
            )
            server = await database_sync_to_async(janus_placement.server_of)(reply["callId"])
            await _media_lost(consumer, reply["callId"], server if lost else "")
        return None
    if name == "call.invite":
        # The caller's process stops the ringing in time (if it goes, so does the call).
        asyncio.get_running_loop().call_later(
            settings.RING_TIMEOUT_SECONDS, _stop_ringing, reply["callId"]
        )
    if name == "call.hangup":
        # The client hears it left at once; its Janus session is closed after.
        await consumer.send_json(_answering(frame, reply))
        await _close_sfu_leg((consumer.channel_name, reply["callId"]))
        return None
    return reply
