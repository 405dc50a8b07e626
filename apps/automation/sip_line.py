"""Spool's SIP line: how phone calls come in. Carriers' trunks call Spool's SIP edge (Kamailio,
docker/kamailio/kamailio.cfg), which hands every INVITE to the one contact registered there as
"spool": a "master" handle of Janus's SIP plugin that this line registers, with "helper"
handles beside it (Janus gives a call to the master, or to an idle helper when the master is
busy, and answers 486 when none is idle). The line keeps a few helpers idle, up to `max_calls`.

Each call that comes in is an IncomingPhoneCall, handed to `on_call`: who called (`caller`), which
number (`number`, as the edge saw it in the Request-URI), from where (`source`, the peer's IP as
the edge saw it: X-Spool-Source, which the edge sets and a peer cannot) and Janus's WebRTC
offer for its audio. Whoever takes it then accepts it with an answer (an AudioBridge leg's:
bridge.join(offer, codec="pcma")), or declines it with a SIP status. Until then Janus has sent
180 Ringing.

    async def on_call(call):
        if not wanted(call.number):
            await call.decline(404)
            return
        call.on_event = on_event  # {"kind": "ended", "code", "subCode", "reason"}, once
        await call.accept(await room.join(call.raw_id, call.offer, codec="pcma"))

    line = SipLine(janus_url, "127.0.0.1:5060", on_call)
    await line.run()  # registers, and registers again whenever Janus or the edge comes back

The registration lasts REGISTER_SECONDS and is refreshed by Janus, so an edge that restarted
(and forgot it) learns it again within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from apps.automation.sip import (
    DTMF_KEYS,
    KEEPALIVE_SECONDS,
    LINE_SILENT,
    MEDIA_SERVER_GONE,
    EndReason,
    _SipSession,
    dtmf_tone,
    register,
    trunk_ended,
)
from apps.calls.sfu import CONNECTION_LOST, TIMEOUT, JanusError, OnEvent

logger = logging.getLogger(__name__)

LINE_URI = "sip:spool@line"  # where the edge hands calls to (docker/kamailio/kamailio.cfg)
REGISTER_SECONDS = 60
SPARE_HELPERS = 4  # idle handles kept ready: how many calls may arrive at the same moment
RETRY_SECONDS = 2.0  # before registering again after Janus or the edge went away
HEADER_PREFIX = "X-Spool-"
NOT_E164 = re.compile(r"[^0-9+]")

OnCall = Callable[["IncomingPhoneCall"], Awaitable[None]]


def number_of(sip_uri: str) -> str:
    """The phone number in a SIP URI's user part, E.164 when it looks like one
    ("sip:+15550001111@carrier" and "sip:15550001111@carrier" are "+15550001111"); other
    users ("anonymous") as they are."""
    user = sip_uri.split(":", 1)[-1].split("@", 1)[0].split(";", 1)[0]
    digits = NOT_E164.sub("", user)
    if digits.lstrip("+").isdigit() and 7 <= len(digits.lstrip("+")) <= 15 and user == digits:
        return "+" + digits.lstrip("+")
    return user or "anonymous"


def dtmf_of(result: dict[str, Any]) -> str:
    """The key of a SIP INFO (sip.dtmf_tone) or of an RFC 2833 event that Janus reports
    ("signal": "5"); "" for anything else."""
    if result.get("event") == "dtmf":
        tone = str(result.get("signal") or "").upper()
        return tone if tone in DTMF_KEYS else ""
    return dtmf_tone(str(result.get("type") or ""), str(result.get("content") or ""))


class IncomingPhoneCall:
    """One call that came in on the line's handle `handle` (see the module's docstring)."""

    def __init__(
        self, line: SipLine, handle: int, result: dict[str, Any], jsep: dict[str, Any] | None
    ) -> None:
        headers = result.get("headers") or {}
        self.line = line
        self.handle = handle
        self.sip_call_id = str(result.get("call_id") or "")
        self.caller = number_of(str(result.get("username") or ""))
        called = headers.get("X-Spool-Number")
        self.number = number_of(f"sip:{called}" if called else str(result.get("callee") or ""))
        self.source = str(headers.get("X-Spool-Source") or "")
        # The trunk's From tag, when the edge's rtpengine relays the call: its RFC 2833 keys
        # are reported with it (apps/automation/answering.py).
        self.trunk_tag = str(headers.get("X-Spool-From-Tag") or "")
        self.offer = jsep
        self.on_event: OnEvent | None = None
        self.accepted = False
        self.ended = False

    @property
    def raw_id(self) -> str:
        return f"4:{self.caller}"

    async def accept(self, answer: dict[str, Any]) -> None:
        """200 OK with `answer` (an AudioBridge leg's). Raises JanusError."""
        await self.line.request(self.handle, {"request": "accept"}, answer)
        self.accepted = True

    async def decline(self, code: int = 603, reason: str = "") -> None:
        """Refuse the call with a SIP status (403, 404, 486, 480, 603...)."""
        if self.ended:
            return
        self.ended = True
        body: dict[str, Any] = {"request": "decline", "code": code}
        if reason:
            body["reason"] = reason[:100]
        with contextlib.suppress(JanusError):
            await self.line.request(self.handle, body)

    async def hang_up(self, code: int = 480) -> None:
        """BYE once accepted, else decline with `code`. Fine when it has ended already."""
        if self.ended:
            return
        if not self.accepted:
            await self.decline(code)
            return
        with contextlib.suppress(JanusError):
            await self.line.request(self.handle, {"request": "hangup"})

    async def silent(self) -> None:
        """The phone's audio stopped for good (the trunk vanished): BYE, not waited for, and
        "ended" now as a silent line."""
        await self.hang_up()
        await self._end(LINE_SILENT)

    async def close(self) -> None:
        """No more events from this call (its handle stays with the line for the next one)."""
        self.ended = True
        self.on_event = None

    async def _dtmf(self, tone: str) -> None:
        """A key the phone pressed: {"kind": "dtmf", "tone"} (once accepted)."""
        if self.on_event is not None and self.accepted:
            try:
                await self.on_event({"kind": "dtmf", "tone": tone})
            except Exception:
                logger.exception("a key from phone call %s failed", self.sip_call_id)

    async def _end(self, reason: EndReason) -> None:
        if self.ended and self.on_event is None:
            return
        self.ended = True
        on_event, self.on_event = self.on_event, None
        ended = {"code": reason.code, "subCode": reason.sub_code, "reason": reason.message}
        if on_event is not None:
            try:
                await on_event({"kind": "ended", **ended})
            except Exception:
                logger.exception("the end of phone call %s failed", self.sip_call_id)


class SipLine:
    """The line (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        edge: str,
        on_call: OnCall,
        *,
        max_calls: int = 50,
        timeout: float = TIMEOUT,
        pick_url: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.url = url
        # Called before each registration, when given: the line moves to a Janus that is up
        # when its own went away (several Janus servers, apps/calls/janus_placement.py).
        self.pick_url = pick_url
        self.edge = edge  # host:port
        self.on_call = on_call
        self.max_calls = max_calls
        self.timeout = timeout
        self.registered = asyncio.Event()
        self._session: _SipSession | None = None
        self._handles: dict[int, IncomingPhoneCall | None] = {}  # handle -> its call, if any
        self._master_id: Any = None  # Janus's id of the master, which helpers name
        self._keepalive_task: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()  # on_call runs, apart from events

    async def run(self) -> None:
        """Register and take calls; after Janus or the edge went away, again. Runs until
        cancelled."""
        while True:
            try:
                await self._open()
                await self._dispatch()
            except (JanusError, TimeoutError, OSError) as error:
                # An edge that does not answer yet (it is still starting) times out the REGISTER.
                logger.warning("the SIP line at %s is down: %r", self.edge, error)
            except Exception:  # a bug must not leave Spool without phone calls until a restart
                logger.exception("the SIP line at %s failed", self.edge)
            finally:
                await self._close()
            await asyncio.sleep(RETRY_SECONDS)

    async def request(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self._session is None:
            raise JanusError(CONNECTION_LOST, "the SIP line is down")
        data, _ = await self._session.message(handle, body, jsep)
        return data

    @property
    def calls(self) -> int:
        return sum(1 for call in self._handles.values() if call is not None)

    # --- internals ---------------------------------------------------------------------------
    async def _open(self) -> None:
        if self.pick_url is not None:
            self.url = await self.pick_url() or self.url
        session = self._session = _SipSession(self.url, self.timeout)
        await session.create()
        master = await session.attach()
        self._handles[master] = None
        data = await register(
            session,
            master,
            {
                "username": LINE_URI,
                "secret": "unused",  # the edge takes the line by its address
                "proxy": f"sip:{self.edge}",
                "register_ttl": REGISTER_SECONDS,
                "incoming_header_prefixes": [HEADER_PREFIX],
            },
            self.timeout,
        )
        self._master_id = (data.get("result") or {}).get("master_id") or master
        for _ in range(SPARE_HELPERS):
            await self._add_helper()
        self._keepalive_task = asyncio.create_task(self._keepalive(session))
        self.registered.set()
        logger.info("the SIP line is registered at %s", self.edge)

    async def _add_helper(self) -> None:
        if self._session is None or len(self._handles) >= self.max_calls:
            return
        handle = await self._session.attach()
        await self._session.message(
            handle,
            {
                "request": "register",
                "type": "helper",
                "username": LINE_URI,
                "master_id": self._master_id,
                "incoming_header_prefixes": [HEADER_PREFIX],
            },
        )
        self._handles[handle] = None

    async def _dispatch(self) -> None:
        assert self._session is not None
        while True:
            message = await self._session.events.get()
            if message is None or message.get("janus") == "timeout":
                raise JanusError(CONNECTION_LOST, "Janus went away")
            handle = message.get("sender")
            if message.get("janus") != "event" or handle not in self._handles:
                continue
            result = message.get("plugindata", {}).get("data", {}).get("result") or {}
            event = result.get("event")
            if event == "incomingcall":
                await self._incoming(int(handle), result, message.get("jsep"))
            elif event in ("info", "dtmf") and self._handles.get(handle) is not None:
                tone = dtmf_of(result)
                call = self._handles[handle]
                if tone and call is not None:
                    await call._dtmf(tone)
            elif event == "hangup":
                call = self._handles.get(handle)
                self._handles[handle] = None
                if call is not None:
                    await call._end(trunk_ended(int(result.get("code") or 200)))
            elif event == "missed_call":
                logger.warning("a call to %s was refused: every line is busy", result.get("callee"))
            elif event in ("registration_failed", "unregistered"):
                raise JanusError(-1, f"the line lost its registration: {result}")

    async def _incoming(self, handle: int, result: dict[str, Any], jsep: Any) -> None:
        call = IncomingPhoneCall(self, handle, result, jsep)
        self._handles[handle] = call
        if sum(1 for c in self._handles.values() if c is None) < SPARE_HELPERS:
            try:
                await self._add_helper()
            except JanusError as error:
                logger.warning("no new helper for the SIP line: %s", error)
        if call.offer is None:  # an offerless INVITE: Spool answers offers only
            await call.decline(488)
            return
        # Deciding on a call takes the database; the line's events must not wait for it.
        task = asyncio.create_task(self._take(call))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _take(self, call: IncomingPhoneCall) -> None:
        try:
            await self.on_call(call)
        except Exception:
            logger.exception("an incoming call from %s failed", call.caller)
            await call.decline(500)

    async def _keepalive(self, session: _SipSession) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await session.janus("keepalive")
            except JanusError as error:
                logger.warning("Janus keepalive for the SIP line failed: %s", error)

    async def _close(self) -> None:
        self.registered.clear()
        for task in list(self._answering):
            task.cancel()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        calls = [call for call in self._handles.values() if call is not None]
        self._handles = {}
        session, self._session = self._session, None
        for call in calls:  # their Janus session goes with the line's
            await call._end(MEDIA_SERVER_GONE)
        if session is not None:
            await session.destroy()
