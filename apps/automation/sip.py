"""One phone call through Janus's SIP plugin, placed to a carrier's trunk: the phone leg of a
bridged call. Its WebRTC side is an AudioBridge leg in the same Janus (bridge.join_offering()
makes the offer, bridge.complete_leg() takes the answer), so the call's room mixes phones and
browsers alike and no audio passes through Python.

    async def on_event(event):  # {"kind": "ringing"}, {"kind": "answered", "answer": jsep}, ...
        ...
    offer = await room.join_offering("4:+15550001111")
    phone = PhoneCall(janus_url, on_event)
    await phone.dial("+15550001111", "+15559990000", offer, Trunk("sbc.example.com", 5060))
    # on "answered": await room.complete_leg("4:+15550001111", event["answer"])
    await phone.hang_up(); await phone.close()

Events, one at a time and in order: {"kind": "ringing"} (180), {"kind": "answered", "answer"}
(200, with the SDP answer as a jsep), and last, exactly once, {"kind": "ended", "code",
"reason"}: the SIP status that ended it (486 busy, 480 or 408 no answer, 603 declined, 404 no
such number, 200 after an answered call's BYE) or 503 when Janus went away.

Janus's SIP plugin registers nothing here (a "guest"): trunks take calls from addresses they
know, or challenge with digest auth, which the trunk's credentials answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from apps.calls.sfu import CONNECTION_LOST, TIMEOUT, JanusError, OnEvent, _Session

logger = logging.getLogger(__name__)

PLUGIN = "janus.plugin.sip"
KEEPALIVE_SECONDS = 25.0  # as apps/automation/bridge.py: Janus drops silent sessions
ENDED_MEDIA_LOST = 503


class _SipSession(_Session):
    """sfu.py's session, attaching SIP plugin handles. The SIP plugin sends a call's later
    events (ringing, accepted, hangup) under the transaction of the request that placed it,
    so events with a transaction are kept too (sfu.py drops them as late answers)."""

    async def attach(self) -> int:
        reply = await self.janus("attach", plugin=PLUGIN)
        return int(reply["data"]["id"])

    def _on_message(self, message: dict[str, Any] | None) -> None:
        self.events.put_nowait(message)


@dataclass(frozen=True)
class Trunk:
    """Where a call goes out, and how the carrier knows us."""

    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str = ""  # digest credentials, when the carrier challenges
    password: str = ""

    def uri(self, number: str) -> str:
        scheme = "sips" if self.transport == "tls" else "sip"
        params = f";transport={self.transport}" if self.transport != "udp" else ""
        return f"{scheme}:{number}@{self.host}:{self.port}{params}"


class PhoneCall:
    """One outbound phone call (see the module's docstring)."""

    def __init__(self, url: str, on_event: OnEvent, *, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.on_event = on_event
        self.timeout = timeout
        self.sip_call_id = ""
        self._session: _SipSession | None = None
        self._handle: int | None = None
        self._ended = False
        self._tasks: list[asyncio.Task[None]] = []

    async def dial(self, number: str, caller_id: str, offer: dict[str, Any], trunk: Trunk) -> None:
        """Send the INVITE for `number` (E.164) from `caller_id` (E.164) with the AudioBridge
        leg's offer. Returns once Janus has sent it; what follows comes as events. Raises
        JanusError (nothing is left open)."""
        session = self._session = _SipSession(self.url, self.timeout)
        try:
            await session.create()
            handle = self._handle = await session.attach()
            await session.message(
                handle,
                {
                    "request": "register",
                    "type": "guest",
                    "username": f"sip:{caller_id}@{trunk.host}",
                    "display_name": caller_id,
                },
            )
            call: dict[str, Any] = {
                "request": "call",
                "uri": trunk.uri(number),
                "autoaccept_reinvites": True,
            }
            if trunk.username:
                call.update(authuser=trunk.username, secret=trunk.password)
            data, jsep = await session.message(handle, call, offer)
            self.sip_call_id = str(data.get("call_id") or "")
        except BaseException:
            await self.close()
            raise
        # A fast far end's 180 (or 486) can reach Janus before it says "calling": it then
        # comes as the answer to the request (same transaction), and is the first event.
        first = None
        if (data.get("result") or {}).get("event") != "calling":
            first = {"janus": "event", "sender": handle, "plugindata": {"data": data}}
            if jsep is not None:
                first["jsep"] = jsep
        self._tasks = [
            asyncio.create_task(self._dispatch(session, first)),
            asyncio.create_task(self._keepalive(session)),
        ]

    async def hang_up(self) -> None:
        """Cancel the INVITE or send BYE; "ended" follows. Fine when it has ended already."""
        if self._session is None or self._handle is None or self._ended:
            return
        with contextlib.suppress(JanusError):
            await self._session.message(self._handle, {"request": "hangup"})

    async def close(self) -> None:
        """End the Janus session (and with it the call, if still up). No events follow."""
        self._ended = True
        session, self._session = self._session, None
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if session is not None:
            await session.destroy()

    # --- internals ---------------------------------------------------------------------------
    async def _dispatch(self, session: _SipSession, first: dict[str, Any] | None) -> None:
        while not self._ended:
            message: dict[str, Any] | None = first
            if first is not None:
                first = None
            else:
                message = await session.events.get()
            if message is None or message.get("janus") == "timeout":
                await self._end(ENDED_MEDIA_LOST, "The media server went away.")
                return
            if message.get("janus") != "event" or message.get("sender") != self._handle:
                continue
            data = message.get("plugindata", {}).get("data", {})
            if "error_code" in data:
                await self._end(int(data.get("error_code") or 500), str(data.get("error", "")))
                return
            result = data.get("result") or {}
            event = result.get("event")
            if event == "ringing":
                await self._emit({"kind": "ringing"})
            elif event in ("progress", "accepted") and message.get("jsep"):
                await self._emit({"kind": "answered", "answer": message["jsep"]})
            elif event == "hangup":
                await self._end(int(result.get("code") or 200), str(result.get("reason") or ""))
                return

    async def _keepalive(self, session: _SipSession) -> None:
        while not self._ended:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await session.janus("keepalive")
            except JanusError as error:
                logger.warning(
                    "Janus keepalive for phone call %s failed: %s", self.sip_call_id, error
                )
                if error.code == CONNECTION_LOST:
                    return

    async def _end(self, code: int, reason: str) -> None:
        if self._ended:
            return
        self._ended = True
        await self._emit({"kind": "ended", "code": code, "reason": reason})

    async def _emit(self, event: dict[str, Any]) -> None:
        try:
            await self.on_event(event)
        except Exception:  # the caller's bug must not stop the events that follow
            logger.exception("on_event failed for %s", event.get("kind"))
