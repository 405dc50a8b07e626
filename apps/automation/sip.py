"""One phone call through Janus's SIP plugin, placed to a carrier's trunks: the phone leg of a
bridged call. Its WebRTC side is an AudioBridge leg in the same Janus (bridge.join_offering()
makes the offer, bridge.complete_leg() takes the answer), so the call's room mixes phones and
browsers alike and no audio passes through Python.

    async def on_event(event):  # {"kind": "ringing"}, {"kind": "answered", "answer": jsep}, ...
        ...
    offer = await room.join_offering("4:+15550001111")
    phone = PhoneCall(janus_url, on_event)
    await phone.dial("+15550001111", "+15559990000", offer, [Trunk("sbc1.example.com"), ...])
    # on "early_media", or on "answered" with an "answer": await room.complete_leg(raw_id, answer)
    await phone.send_dtmf("12#")
    await phone.hang_up(); await phone.close()

Events, one at a time and in order:
- {"kind": "trying", "trunk": index, "sipCallId"}: the INVITE went to trunks[index]. A trunk that
  fails before the phone rings (a 5xx or 408, no sign of life within `setup_seconds`, or an
  address nothing listens on) is given up for the next one, with a new "trying"; busy, declined,
  unknown numbers and every other final answer are the phone's own, and end the call.
- {"kind": "ringing"} (180, or 183 without SDP).
- {"kind": "early_media", "answer": jsep}: a 18x with SDP (an announcement, the far end's
  ringback). The leg takes the answer now; the phone has not answered.
- {"kind": "answered"} (200), with "answer" unless early media gave it already.
- {"kind": "dtmf", "tone": "5"}: a key the phone pressed (SIP INFO).
- last, exactly once, {"kind": "ended", "code", "subCode", "reason"}: an EndReason (the
  phone's SIP status, or Spool's own reason), as the call should end with it.

What Janus 1.1.2's SIP plugin tells and what it does not (janus_sip.c at v1.1.2, and tried
against it): it reports 180 and 18x, never 100 Trying, so a trunk's "I am working on it" cannot
be told from silence; it reports SIP INFO DTMF (`info` events) but not RFC 2833 (its RTP
relay does not look at telephone-events, and the AudioBridge drops them); it has no session
timers, no in-dialog OPTIONS and no RTP timeout, and an INFO that times out does not end the
dialog. What it does do: when the trunk's host refuses the call's RTP (ICMP port unreachable:
the SBC is gone), its relay gives up after 100 errors (about 2 s) and hangs up by itself
("hangingup" without our asking), which ends the call here as LINE_SILENT. A trunk that
vanishes without a word (a network partition) is seen only as RTP that stops, in the Janus core
`media` events of the AudioBridge leg (bridge.py's mediaReceiving): the media process calls
silent() when that lasts SPOOL_PHONE_MEDIA_TIMEOUT_SECONDS.

Janus's SIP plugin registers nothing here (a "guest"): trunks take calls from addresses they
know, or challenge with digest auth, which the trunk's credentials answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.calls.sfu import CONNECTION_LOST, TIMEOUT, JanusError, OnEvent, _Session
from apps.core import rtpengine

logger = logging.getLogger(__name__)

PLUGIN = "janus.plugin.sip"
KEEPALIVE_SECONDS = 25.0  # as apps/automation/bridge.py: Janus drops silent sessions
# Janus does not report 100 Trying, so a trunk gets this long to ring (or answer, or refuse)
# before the next one is tried: long enough for a slow carrier's post-dial delay, short enough
# that a dead trunk does not cost the caller the 32 s of SIP's own INVITE timeout. The last
# trunk is never given up this way. (SPOOL_SIP_TRUNK_SETUP_SECONDS in the media process.)
SETUP_SECONDS = 8.0
CLOSED_GRACE_SECONDS = 2.0  # for the SIP plugin's "hangup" after Janus closed the WebRTC side
DTMF_MILLISECONDS = 160  # each key sent as SIP INFO (the SIP plugin's default)
DTMF_GAP_SECONDS = 0.08  # between keys
WRONG_STATE = 447  # the SIP plugin's code for a request the call's state does not allow
DTMF_KEYS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class EndReason:
    """How a phone leg ended, as ACS reports a PSTN call's end: `code` the SIP status (0 for a
    normal hang-up), `sub_code` 560000 + that status when the trunk sent it (ACS's mark for a
    status that came from the operator's SBC) or 510000 + code when Spool decided, and a
    message. docs/pstn.md has the table."""

    code: int
    sub_code: int
    message: str


FROM_TRUNK = 560000
FROM_SPOOL = 510000
HUNG_UP = EndReason(0, FROM_TRUNK, "The phone hung up.")
LINE_SILENT = EndReason(408, FROM_SPOOL + 408, "The phone line went silent.")
TRUNK_SILENT = EndReason(408, FROM_SPOOL + 408, "The trunk did not answer.")
NO_TRUNK = EndReason(503, FROM_SPOOL + 503, "No trunk of the route took the call.")
MEDIA_SERVER_GONE = EndReason(503, FROM_SPOOL + 503, "The media server went away.")
BRIDGE_DROPPED = EndReason(503, FROM_SPOOL + 503, "The media server dropped the phone's audio.")

# A trunk's final status -> the message the call ends with; statuses not here take their
# class's message (_CLASS_MESSAGES).
_MESSAGES = {
    403: "The trunk refused the call.",
    404: "The phone number does not exist.",
    408: "The phone did not answer.",
    410: "The phone number is no longer in service.",
    480: "The phone did not answer.",
    484: "The phone number is incomplete.",
    486: "The phone is busy.",
    487: "The call to the phone was cancelled.",
    488: "The phone cannot take the call's audio.",
    503: "The phone network could not be reached.",
    600: "The phone is busy.",
    603: "The phone declined the call.",
    604: "The phone number does not exist.",
}
_CLASS_MESSAGES = {
    3: "The trunk redirected the call, which Spool does not follow.",
    4: "The trunk refused the call.",
    5: "The phone network failed.",
    6: "The phone refused the call.",
}


def trunk_ended(status: int) -> EndReason:
    """What a trunk's final SIP status means for the call (a BYE after the answer is 200)."""
    if status < 300:
        return HUNG_UP
    message = _MESSAGES.get(status) or _CLASS_MESSAGES.get(status // 100, "The call failed.")
    return EndReason(status, FROM_TRUNK + status, message)


def tries_next_trunk(status: int) -> bool:
    """Whether a final status before the phone rang says the trunk failed rather than the
    phone answered: a timeout (408) or a server error (5xx). Busy, declined, unknown numbers
    and the other 4xx and 6xx are the phone's answer, the same through any trunk."""
    return status == 408 or 500 <= status < 600


TRUNK_HEADER = "X-Spool-Trunk"  # the edge's secret: a call Spool places through a trunk
TRANSPORT_HEADER = "X-Spool-Transport"  # how the edge reaches the trunk: udp, tcp or tls
TRUNK_TAG_HEADER = "X-Spool-Trunk-Tag"  # the trunk's To tag, as the edge saw it answer
MEDIA_HEADER = "X-Spool-Media"  # the edge's rtpengine offer flags: codecs, SRTP


@dataclass(frozen=True)
class Trunk:
    """Where a call goes out, and how the carrier knows us. With `edge` (Spool's SIP edge,
    host:port, and its `secret`) the INVITE goes through the edge, which reaches the trunk over
    `transport` (TLS included) and relays its audio through rtpengine (RFC 2833 keys, the
    trunk's `codecs` in its order, SRTP); without it, Janus sends it to the trunk itself, over
    UDP only, in G.711 A-law."""

    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str = ""  # digest credentials, when the carrier challenges
    password: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # added to the INVITE (the loopback carrier's)
    edge: str = ""
    secret: str = ""
    codecs: tuple[str, ...] = ("pcmu", "pcma")  # the trunk's, in its order (through the edge)
    srtp: bool = False  # encrypted audio (through the edge's rtpengine)
    caller_id_format: str = "e164"  # "e164" (+14255550100) or "digits" (14255550100)
    assert_identity: bool = False  # the caller id in P-Asserted-Identity too

    def shown_caller_id(self, caller_id: str) -> str:
        """The caller id (E.164) as this trunk wants it in From."""
        return caller_id.lstrip("+") if self.caller_id_format == "digits" else caller_id

    def uri(self, number: str) -> str:
        return f"sip:{number}@{self.host}:{self.port}"

    def invite_headers(self, caller_id: str) -> dict[str, str]:
        headers = dict(self.headers)
        if self.assert_identity:
            headers["P-Asserted-Identity"] = f"<sip:{self.shown_caller_id(caller_id)}@{self.host}>"
        if self.edge:
            headers[TRUNK_HEADER] = self.secret
            headers[TRANSPORT_HEADER] = self.transport
            headers[MEDIA_HEADER] = rtpengine.trunk_offer_flags(self.codecs, self.srtp)
        return headers


class _Requests(dict[str, tuple["asyncio.Future[dict[str, Any]]", bool]]):
    """sfu.py's pending requests by transaction, for a SIP session: one answered already
    claims no more messages. The SIP plugin sends a call's events under the transaction of
    the request that placed it, and an event right behind that answer (a trunk's instant 486)
    would otherwise be taken for a second answer and dropped, before the request is done."""

    def get(self, key: str, default: Any = None) -> Any:
        waiter = super().get(key)
        return default if waiter is None or waiter[0].done() else waiter


class _SipSession(_Session):
    """sfu.py's session, attaching SIP plugin handles. The SIP plugin sends a call's later
    events (ringing, accepted, hangup) under the transaction of the request that placed it,
    so events with a transaction are kept too (sfu.py drops them as late answers)."""

    async def attach(self) -> int:
        reply = await self.janus("attach", plugin=PLUGIN)
        return int(reply["data"]["id"])

    def _on_message(self, message: dict[str, Any] | None) -> None:
        self.events.put_nowait(message)


class _CallSession(_SipSession):
    """A PhoneCall's session: requests answered already claim no more messages (_Requests)."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(url, timeout)
        self.connection._pending = _Requests()


class _GiveUp(Exception):
    """This trunk failed before the phone rang: try the next one."""

    def __init__(self, reason: EndReason) -> None:
        super().__init__(reason.message)
        self.reason = reason


class PhoneCall:
    """One outbound phone call (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        on_event: OnEvent,
        *,
        timeout: float = TIMEOUT,
        setup_seconds: float = SETUP_SECONDS,
    ) -> None:
        self.url = url
        self.on_event = on_event
        self.timeout = timeout
        self.setup_seconds = setup_seconds
        self.sip_call_id = ""
        self.trunk: Trunk | None = None  # the trunk of the current (or last) INVITE
        # The trunk's To tag, when the edge relays the call's audio: its RFC 2833 keys are
        # reported by (sip_call_id, trunk_tag).
        self.trunk_tag = ""
        self.answered = False
        self._session: _CallSession | None = None
        self._handle: int | None = None
        self._ended = False  # "ended" was sent, or close() was called: nothing more comes
        self._hanging_up = False  # hang_up() was called
        self._progressed = False  # the phone rang or answered: no other trunk is tried
        self.early_media = False  # a 18x with SDP gave the leg its answer
        self._runner: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        """Whether this call holds a Janus session (its SIP handle) still."""
        return self._session is not None

    async def dial(
        self, number: str, caller_id: str, offer: dict[str, Any], trunks: Sequence[Trunk]
    ) -> None:
        """Call `number` (E.164) from `caller_id` (E.164) with the AudioBridge leg's offer,
        through `trunks` in order (the next when one fails before the phone rings). Returns at
        once: everything that follows, failures included, comes as events."""
        if not trunks:
            raise ValueError("a phone call needs a trunk")
        self._runner = asyncio.create_task(self._run(number, caller_id, offer, list(trunks)))

    async def hang_up(self) -> None:
        """Cancel the INVITE or send BYE; "ended" follows. Fine when it has ended already."""
        self._hanging_up = True
        if self._session is None or self._handle is None or self._ended:
            return
        with contextlib.suppress(JanusError):
            await self._session.message(self._handle, {"request": "hangup"})

    async def silent(self) -> None:
        """The phone's audio stopped for good (the trunk vanished without a word): end now as
        LINE_SILENT, with a BYE sent but not waited for (nobody may answer it)."""
        await self.hang_up()
        await self._end(LINE_SILENT)

    async def send_dtmf(self, tones: str) -> None:
        """Send keys ("0"-"9", "*", "#", "A"-"D") to the answered phone as SIP INFO
        (application/dtmf-relay), one after the other. Raises JanusError (the call is not up,
        or Janus refused)."""
        for tone in tones:
            if self._session is None or self._handle is None or self._ended or not self.answered:
                raise JanusError(WRONG_STATE, "the phone call is not up")
            await self._session.message(
                self._handle,
                {"request": "dtmf_info", "digit": tone, "duration": DTMF_MILLISECONDS},
            )
            await asyncio.sleep(DTMF_MILLISECONDS / 1000 + DTMF_GAP_SECONDS)

    async def close(self) -> None:
        """End the Janus session (and with it the call, if still up). No events follow."""
        self._ended = True
        runner = self._runner
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
        await self._drop_session()

    # --- internals ---------------------------------------------------------------------------
    async def _run(
        self, number: str, caller_id: str, offer: dict[str, Any], trunks: list[Trunk]
    ) -> None:
        reason = NO_TRUNK
        for index, trunk in enumerate(trunks):
            if self._hanging_up:
                reason = trunk_ended(487)
                break
            try:
                await self._attempt(number, caller_id, offer, trunk, index, len(trunks))
                return  # the call went on through this trunk, and has ended
            except _GiveUp as give_up:
                logger.info("trunk %s failed the call to %s: %s", trunk.host, number, give_up)
                reason = give_up.reason
                await self._drop_session()
        await self._end(reason)

    async def _attempt(
        self,
        number: str,
        caller_id: str,
        offer: dict[str, Any],
        trunk: Trunk,
        index: int,
        count: int,
    ) -> None:
        """The INVITE through one trunk, then its events until the call ends. Raises _GiveUp
        when the next trunk should be tried."""
        self.trunk, self.sip_call_id, self.trunk_tag = trunk, "", ""
        if trunk.transport != "udp" and not trunk.edge:
            message = f"{trunk.transport.upper()} trunks are reached through Spool's SIP edge only."
            raise _GiveUp(EndReason(503, FROM_SPOOL + 503, message))
        session = self._session = _CallSession(self.url, self.timeout)
        try:
            await session.create()
            handle = self._handle = await session.attach()
            register = {
                "request": "register",
                "type": "guest",
                "username": f"sip:{trunk.shown_caller_id(caller_id)}@{trunk.host}",
                "display_name": caller_id,
                "incoming_header_prefixes": [TRUNK_TAG_HEADER],
            }
            if trunk.edge:
                register["outbound_proxy"] = f"sip:{trunk.edge}"
            await session.message(handle, register)
            call: dict[str, Any] = {
                "request": "call",
                "uri": trunk.uri(number),
                "autoaccept_reinvites": True,
            }
            if trunk.username:
                call.update(authuser=trunk.username, secret=trunk.password)
            headers = trunk.invite_headers(caller_id)
            if headers:
                call["headers"] = headers
            data, jsep = await session.message(handle, call, offer)
        except JanusError as error:
            if error.code == CONNECTION_LOST:
                await self._drop_session()
                await self._end(MEDIA_SERVER_GONE)
                return
            # Janus refused to send it (an address it cannot use, say): the next trunk.
            message = f"The trunk could not be reached: {error.reason}"
            raise _GiveUp(EndReason(503, FROM_SPOOL + 503, message)) from error
        self.sip_call_id = str(data.get("call_id") or "")
        await self._emit({"kind": "trying", "trunk": index, "sipCallId": self.sip_call_id})
        if self._hanging_up:  # hang_up() came while the INVITE was on its way
            await self.hang_up()
        # A fast far end's 180 (or 486) can reach Janus before it says "calling": it then
        # comes as the answer to the request (same transaction), and is the first event.
        first = None
        if (data.get("result") or {}).get("event") != "calling":
            first = {"janus": "event", "sender": handle, "plugindata": {"data": data}}
            if jsep is not None:
                first["jsep"] = jsep
        keepalive = self._keepalive_task = asyncio.create_task(self._keepalive(session))
        try:
            await self._follow(session, first, last=index == count - 1)
        finally:
            keepalive.cancel()

    async def _follow(
        self, session: _SipSession, first: dict[str, Any] | None, *, last: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.setup_seconds
        closed_at: float | None = None  # when Janus closed the WebRTC side
        while not self._ended:
            message: dict[str, Any] | None = first
            if first is not None:
                first = None
            else:
                deadlines = [] if last or self._progressed or self._hanging_up else [give_up_at]
                if closed_at is not None:
                    deadlines.append(closed_at + CLOSED_GRACE_SECONDS)
                wait = max(0.0, min(deadlines) - loop.time()) if deadlines else None
                try:
                    async with asyncio.timeout(wait):  # (not wait_for: apps/calls/sfu.py)
                        message = await session.events.get()
                except TimeoutError:
                    gone = closed_at is not None and loop.time() >= closed_at + CLOSED_GRACE_SECONDS
                    reason = BRIDGE_DROPPED if gone else TRUNK_SILENT
                    if self._progressed or last:
                        await self._end(reason)
                        return
                    raise _GiveUp(reason) from None
            if message is None or message.get("janus") == "timeout":
                await self._end(MEDIA_SERVER_GONE)
                return
            if message.get("sender") != self._handle:
                continue
            if message.get("janus") == "hangup" and not self._hanging_up and closed_at is None:
                # Janus closed the call's WebRTC side: after the SIP call ended ("Close PC",
                # its "hangup" event, which says why, may come a moment after this one), or
                # because the bridge leg went (the plugin then hangs up the phone). Either
                # way the plugin's "hangup" comes next; without it, the leg's audio is gone.
                closed_at = loop.time()
                continue
            if message.get("janus") != "event":
                continue
            data = message.get("plugindata", {}).get("data", {})
            if "error_code" in data:
                code = int(data.get("error_code") or 500)
                await self._end(EndReason(500, FROM_SPOOL + 500, f"Janus error {code}"))
                return
            result = data.get("result") or {}
            bridge_gone = closed_at is not None
            if await self._on_result(result, message.get("jsep"), last, bridge_gone):
                return

    async def _on_result(
        self, result: dict[str, Any], jsep: dict[str, Any] | None, last: bool, bridge_gone: bool
    ) -> bool:
        """One SIP plugin event (`last`: on the last trunk; `bridge_gone`: after Janus closed
        the WebRTC side); True once the call has ended. Raises _GiveUp."""
        # A hangup the plugin made by itself: it gave up on the phone's RTP, or on the bridge.
        gave_up = BRIDGE_DROPPED if bridge_gone else LINE_SILENT
        event = result.get("event")
        if event in ("ringing", "proceeding", "progress", "accepted"):
            self._progressed = True
            tag = (result.get("headers") or {}).get(TRUNK_TAG_HEADER)
            self.trunk_tag = str(tag or self.trunk_tag)
        if event == "ringing":
            await self._emit({"kind": "ringing"})
        elif (
            event == "progress" and jsep is not None and not self.early_media and not self.answered
        ):
            self.early_media = True
            await self._emit({"kind": "early_media", "answer": jsep})
        elif event == "accepted" and not self.answered:
            self.answered = True
            answered: dict[str, Any] = {"kind": "answered"}
            if jsep is not None and not self.early_media:
                answered["answer"] = jsep
            await self._emit(answered)
        elif event == "info":
            tone = dtmf_tone(str(result.get("type") or ""), str(result.get("content") or ""))
            if tone:
                await self._emit({"kind": "dtmf", "tone": tone})
        elif event == "hangingup" and not self._hanging_up:
            # The plugin hangs up by itself: its RTP relay gave up on the phone's RTP (the
            # trunk's host refuses it: the SBC is gone), or Janus closed the WebRTC side. Its
            # BYE may go unanswered: the call is over now.
            await self._end(gave_up)
            return True
        elif event == "hangup":
            status = int(result.get("code") or 200)
            if not (self._progressed or self._hanging_up or last) and tries_next_trunk(status):
                raise _GiveUp(trunk_ended(status))
            if result.get("reason") == "to BYE" and not self._hanging_up:
                # The end of a BYE the plugin sent by itself (sofia's phrase for the outcome
                # of our own BYE), when its "hangingup" did not come first: as above.
                await self._end(gave_up)
            else:
                await self._end(trunk_ended(status))
            return True
        return False

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

    async def _drop_session(self) -> None:
        """Destroy the current Janus session (its SIP handle, and any INVITE or call on it)."""
        session, self._session, self._handle = self._session, None, None
        keepalive, self._keepalive_task = self._keepalive_task, None
        if keepalive is not None and keepalive is not asyncio.current_task():
            keepalive.cancel()
        if session is not None:
            await session.destroy()

    async def _end(self, reason: EndReason) -> None:
        if self._ended:
            return
        self._ended = True
        ended = {"code": reason.code, "subCode": reason.sub_code, "reason": reason.message}
        await self._emit({"kind": "ended", **ended})

    async def _emit(self, event: dict[str, Any]) -> None:
        try:
            await self.on_event(event)
        except Exception:  # the caller's bug must not stop the events that follow
            logger.exception("on_event failed for %s", event.get("kind"))


def dtmf_tone(content_type: str, content: str) -> str:
    """The key a SIP INFO carries: `application/dtmf-relay` ("Signal=5\\r\\nDuration=160"; some
    gateways send 10 and 11 for * and #) or `application/dtmf` (the key alone); "" for
    anything else."""
    kind = content_type.split(";")[0].strip().lower()
    value = ""
    if kind == "application/dtmf-relay":
        for line in content.splitlines():
            name, _, field = line.partition("=")
            if name.strip().lower() == "signal":
                value = field.strip()
    elif kind == "application/dtmf":
        value = content.strip()
    value = {"10": "*", "11": "#"}.get(value, value).upper()
    return value if value in DTMF_KEYS else ""


async def register(
    session: _Session, handle: int, body: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send a SIP plugin `register` request (at Spool's SIP edge, through its `proxy`) and wait
    until Janus says the handle is registered; returns the plugin's data (`master_id` for a
    master). Raises JanusError when the edge refuses it or Janus goes away."""
    data, _ = await session.message(handle, {"request": "register", **body})
    event = (data.get("result") or {}).get("event")
    while event not in ("registered", "registration_failed"):
        async with asyncio.timeout(timeout):  # (not wait_for: apps/calls/sfu.py)
            message = await session.events.get()
        if message is None:
            raise JanusError(CONNECTION_LOST, "the connection to Janus closed")
        if message.get("sender") == handle:
            data = message.get("plugindata", {}).get("data", {})
            event = (data.get("result") or {}).get("event")
    if event != "registered":
        raise JanusError(-1, f"the SIP edge refused the REGISTER: {data}")
    return dict(data)
