"""The console's virtual phones: phones outside the deployment, on the loopback voice carrier
(SPOOL_VOICE_CARRIER=loopback), as virtual handsets are for SMS. A virtual phone is a handle of
Janus's SIP plugin registered at Spool's SIP edge as `<number>@<resource slug>.phones`, and the
console page is the WebRTC side of that handle: the page's browser sends and hears the audio,
Janus turns it into the phone's RTP. So a call between a virtual phone and Spool takes the
same path as a carrier's: the SIP edge, the SIP line, a phone leg in the call's AudioBridge.

- A call to a number that no SIP route takes goes through the loopback carrier; a number no
  resource owns reaches the virtual phone of that number opened under the calling resource
  (apps/automation/phoning.py), which rings on its page (480 when no page has it open).
- A virtual phone dials the deployment's numbers through the edge, marked with the loopback
  secret: the call comes in as from the loopback carrier (apps/pstn/inbound.py).

    phone = VirtualPhone(janus_url, edge, "contoso.phones", "+15551234567", on_event)
    await phone.open()                      # registered
    await phone.call("+14255550100", offer) # the page's offer; events follow
    # on_event({"kind": "incoming", "from": "+1425...", "offer": jsep}) -> accept(answer)
    await phone.close()

Events, in order: incoming (with Janus's offer), ringing, answered (with Janus's answer, for
a call it placed), ended (code, reason) once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings

from apps.automation.sip import KEEPALIVE_SECONDS, _SipSession, register
from apps.automation.sip_line import number_of
from apps.calls.sfu import CONNECTION_LOST, TIMEOUT, JanusError, OnEvent

logger = logging.getLogger(__name__)

LOOPBACK_HEADER = "X-Spool-Loopback"  # what the edge knows the loopback carrier by
PHONES_HEADER = "X-Spool-Phones"  # a loopback call to this resource's virtual phones
REGISTER_SECONDS = 60


def phones_domain(resource_slug: str) -> str:
    """The SIP domain a resource's virtual phones register under."""
    return f"{resource_slug}.phones"


def loopback_headers() -> dict[str, str]:
    return {LOOPBACK_HEADER: settings.SIP_EDGE_SECRET}


class VirtualPhone:
    """One virtual phone (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        edge: str,
        domain: str,
        number: str,
        on_event: OnEvent,
        *,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self.edge = edge
        self.domain = domain
        self.number = number
        self.on_event = on_event
        self.timeout = timeout
        self.in_call = False
        self._session: _SipSession | None = None
        self._handle: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Register at the edge. Raises JanusError (nothing is left open)."""
        session = self._session = _SipSession(self.url, self.timeout)
        try:
            await session.create()
            handle = self._handle = await session.attach()
            await register(
                session,
                handle,
                {
                    "username": f"sip:{self.number}@{self.domain}",
                    "display_name": self.number,
                    "secret": "unused",  # the edge takes Janus's REGISTERs by its address
                    "proxy": f"sip:{self.edge}",
                    "register_ttl": REGISTER_SECONDS,
                },
                self.timeout,
            )
        except BaseException:
            await self.close()
            raise
        self._tasks = [
            asyncio.create_task(self._dispatch(session)),
            asyncio.create_task(self._keepalive(session)),
        ]

    async def call(self, number: str, offer: dict[str, Any]) -> None:
        """Call one of the deployment's numbers with the page's offer. Raises JanusError."""
        self.in_call = True
        try:
            await self._request(
                {
                    "request": "call",
                    "uri": f"sip:{number}@{self.edge}",
                    "headers": loopback_headers(),
                    "autoaccept_reinvites": True,
                },
                offer,
            )
        except JanusError:
            self.in_call = False
            raise

    async def accept(self, answer: dict[str, Any]) -> None:
        await self._request({"request": "accept"}, answer)

    async def decline(self, code: int = 486) -> None:
        with contextlib.suppress(JanusError):
            await self._request({"request": "decline", "code": code})

    async def hang_up(self) -> None:
        with contextlib.suppress(JanusError):
            await self._request({"request": "hangup"})

    async def send_dtmf(self, tone: str) -> None:
        """A key pressed on the keypad: SIP INFO (application/dtmf-relay) to the far end."""
        await self._request({"request": "dtmf_info", "digit": tone, "duration": 160})

    async def close(self) -> None:
        """Unregister and end the Janus session (and any call with it)."""
        session, self._session = self._session, None
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if session is not None:
            if self._handle is not None:
                with contextlib.suppress(JanusError):
                    await session.message(self._handle, {"request": "unregister"})
            await session.destroy()

    # --- internals ---------------------------------------------------------------------------
    async def _request(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> None:
        if self._session is None or self._handle is None:
            raise JanusError(CONNECTION_LOST, "the virtual phone is closed")
        await self._session.message(self._handle, body, jsep)

    async def _dispatch(self, session: _SipSession) -> None:
        while True:
            message = await session.events.get()
            if message is None or message.get("janus") == "timeout":
                await self._emit({"kind": "lost"})
                return
            if message.get("janus") != "event" or message.get("sender") != self._handle:
                continue
            result = message.get("plugindata", {}).get("data", {}).get("result") or {}
            event = result.get("event")
            if event == "incomingcall":
                self.in_call = True
                caller = number_of(str(result.get("username") or ""))
                await self._emit({"kind": "incoming", "from": caller, "offer": message.get("jsep")})
            elif event == "ringing":
                await self._emit({"kind": "ringing"})
            elif event in ("progress", "accepted"):
                answer = message.get("jsep")
                await self._emit(
                    {"kind": "answered", "answer": answer} if answer else {"kind": "answered"}
                )
            elif event == "hangup" and self.in_call:
                self.in_call = False
                code = int(result.get("code") or 200)
                await self._emit(
                    {"kind": "ended", "code": code, "reason": str(result.get("reason", ""))}
                )

    async def _keepalive(self, session: _SipSession) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await session.janus("keepalive")
            except JanusError as error:
                logger.warning(
                    "Janus keepalive for virtual phone %s failed: %s", self.number, error
                )
                if error.code == CONNECTION_LOST:
                    return

    async def _emit(self, event: dict[str, Any]) -> None:
        try:
            await self.on_event(event)
        except Exception:
            logger.exception("a virtual phone event failed: %s", event.get("kind"))
