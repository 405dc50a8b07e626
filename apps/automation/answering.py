"""The media process's incoming phone calls (a mixin of MediaProcess): its SIP line
(apps/automation/sip_line.py) is registered at the SIP edge, and each call a trunk sends in is
put to apps/calls/incoming_phones.py, which refuses it (with a SIP status) or makes it a ringing
bridged call. The phone waits, hearing ringback from its carrier, until the call is answered
(an "answer_phone" message): then it joins the call's AudioBridge room and its INVITE is
accepted. A call that ends before that refuses the phone with the call's end code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.automation import services
from apps.automation.call_media import CallMedia
from apps.automation.sip_line import IncomingPhoneCall, SipLine
from apps.calls import incoming_phones, janus_placement, phones
from apps.calls.sfu import JanusError
from apps.core import rtpengine
from apps.pstn.inbound import InboundRefused

logger = logging.getLogger(__name__)

EARLY_ANSWER_SECONDS = 60.0


class Answering:
    """MediaProcess's incoming phone calls; MediaProcess gives the rooms, Phoning the events of
    a phone leg."""

    janus_url: str
    calls: dict[str, CallMedia]
    # By (call id, the phone's raw id), until answered: a group call takes several phones.
    incoming: dict[tuple[str, str], IncomingPhoneCall]
    # Phones answered before they were filed in `incoming` (the built-in IVR answers in the
    # very transaction that makes the call, a group call at once): key -> when (forgotten
    # after a minute).
    early_answers: dict[tuple[str, str], float]

    if TYPE_CHECKING:

        async def _media(self, call_id: str) -> CallMedia: ...

        def _on_phone_event(self, media: CallMedia, raw_id: str) -> Any: ...

        async def _start_runner(self, call_id: str) -> None: ...

        async def _legs_changed(self, media: CallMedia, rejoined: str = "") -> None: ...

        async def _dtmf(self, call_id: str, raw_id: str, tone: str) -> None: ...

    async def _run_line(self) -> None:
        """Take phone calls while the process runs (nothing to do without a SIP edge)."""
        if not settings.SIP_EDGE:
            return

        async def pick_url() -> str:
            plane = janus_placement.MEDIA
            return self.janus_url or await database_sync_to_async(janus_placement.up_server)(plane)

        line = SipLine(
            self.janus_url,
            settings.SIP_EDGE,
            self._on_incoming,
            max_calls=settings.SIP_LINE_MAX_CALLS,
            pick_url=pick_url,
        )
        await line.run()

    async def _on_incoming(self, phone: IncomingPhoneCall) -> None:
        try:
            call = await database_sync_to_async(incoming_phones.call_in)(
                phone.source, phone.caller, phone.number, phone.sip_call_id
            )
        except InboundRefused as refusal:
            logger.info(
                "refused a call from %s to %s via %s: %s",
                phone.caller,
                phone.number,
                phone.source,
                refusal,
            )
            await phone.decline(refusal.code, refusal.reason)
            return
        call_id = str(call.pk)
        key = (call_id, phone.raw_id)
        self.incoming[key] = phone
        answered_early = self.early_answers.pop(key, None) is not None

        async def hung_up_while_ringing(event: dict[str, Any]) -> None:
            if self.incoming.get(key) is phone:
                del self.incoming[key]
            await database_sync_to_async(phones.phone_ended)(
                call_id,
                phone.raw_id,
                int(event["code"]),
                str(event["reason"]),
                int(event.get("subCode") or 0),
            )

        phone.on_event = hung_up_while_ringing
        if answered_early:
            await self._answer_phone({"call": call_id, "rawId": phone.raw_id})

    async def _answer_phone(self, message: dict[str, Any]) -> None:
        call_id = str(message["call"])
        key = (call_id, str(message["rawId"]))
        phone = self.incoming.pop(key, None)
        if phone is None:
            now = time.monotonic()
            for early, at in list(self.early_answers.items()):
                if now - at > EARLY_ANSWER_SECONDS:
                    del self.early_answers[early]
            self.early_answers[key] = now
            return
        if phone.ended or phone.offer is None:
            return
        raw_id = phone.raw_id
        media = await self._media(call_id)
        on_phone_event = self._on_phone_event(media, raw_id)

        async def on_event(event: dict[str, Any]) -> None:
            if event["kind"] == "dtmf":  # SIP INFO or RFC 2833, as Janus reports them
                await self._dtmf(call_id, raw_id, str(event["tone"]))
            else:
                await on_phone_event(event)

        try:
            answer = await media.room.join(raw_id, phone.offer, codec="pcma")
            phone.on_event = on_event
            await phone.accept(answer)
        except JanusError as error:
            logger.warning("could not answer the phone %s in call %s: %s", raw_id, call_id, error)
            await media.room.leave(raw_id)
            await phone.decline(500)
            await database_sync_to_async(phones.phone_ended)(call_id, raw_id, 500, str(error))
            return
        media.phones[raw_id] = phone  # type: ignore[assignment]
        media.legs[raw_id] = ""  # no socket: the phone's signaling is SIP
        # The application's CallConnected waits for the caller's media, as for a browser.
        await database_sync_to_async(services.media_joined)(call_id, raw_id)
        await self._start_runner(call_id)
        await self._legs_changed(media)

    async def _run_dtmf_log(self) -> None:
        """Hear the keys phones send as RFC 2833, as the edge's rtpengine reports them (JSON
        over UDP to SPOOL_SIP_DTMF_LOG: apps/core/rtpengine.py); nothing to do without one."""
        if not settings.SIP_DTMF_LOG:
            return
        host, _, port = settings.SIP_DTMF_LOG.rpartition(":")
        reports: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                with contextlib.suppress(asyncio.QueueFull):  # a flood is dropped, not kept
                    reports.put_nowait(data)

        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                Receiver, local_addr=(host, int(port))
            )
        except (OSError, ValueError) as error:
            logger.error("cannot hear RFC 2833 keys on %s: %s", settings.SIP_DTMF_LOG, error)
            return
        try:
            while True:
                await self._phone_key(await reports.get())
        finally:
            transport.close()

    async def _phone_key(self, report: bytes) -> None:
        """One rtpengine DTMF report: a key an answered phone pressed (called in or out) goes to
        its call's DTMF path; keys from Spool's side (in-band tones it plays) are not the
        phone's: the report's source is the trunk's tag."""
        try:
            event = json.loads(report)
        except ValueError:
            return
        key = rtpengine.key_of(event) if isinstance(event, dict) else ""
        if not key:
            return
        for media in list(self.calls.values()):
            for raw_id, phone in list(media.phones.items()):
                if (
                    phone.trunk_tag
                    and phone.sip_call_id == event.get("callid")
                    and phone.trunk_tag == event.get("source_tag")
                ):
                    await self._dtmf(media.call_id, raw_id, key)
                    return

    async def _sweep_incoming(self) -> None:
        """Refuse the phones of calls that ended while their "end" message was lost."""
        if self.incoming:
            call_ids = list({call_id for call_id, _ in self.incoming})
            for call_id in await database_sync_to_async(incoming_phones.ended_calls)(call_ids):
                await self._refuse_unanswered(call_id)

    async def _refuse_unanswered(self, call_id: str) -> None:
        """The call ended before its phones were answered: refuse them with its end code."""
        waiting = [key for key in self.incoming if key[0] == call_id]
        if waiting:
            code = await database_sync_to_async(incoming_phones.answer_code)(call_id)
            for key in waiting:
                await self.incoming.pop(key).decline(code)
