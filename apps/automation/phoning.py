"""The media process's phone legs (a mixin of MediaProcess): a call a client placed to a phone
number (apps/calls/phones.py) gets a leg in the call's AudioBridge room that Janus offers, and
Janus's SIP plugin takes that offer to the route's trunks, one after the other until one takes
the call (apps/automation/sip.py). Early media (a 18x with SDP) completes the leg while the
phone still rings; the phone's answer connects the call; its end ends the call. Keys the phone
presses (SIP INFO) reach the call's DTMF, and DTMF sent to the phone goes as SIP INFO. No audio
passes through this process."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from apps.automation.call_media import CallMedia
from apps.automation.sip import NO_TRUNK, EndReason, PhoneCall, Trunk
from apps.automation.virtual_phones import LOOPBACK_HEADER, PHONES_HEADER
from apps.calls import phones
from apps.calls.models import Call
from apps.calls.sfu import JanusError
from apps.core.sealed import SealBroken
from apps.pstn import loopback
from apps.pstn.models import SipTrunk

logger = logging.getLogger(__name__)

NO_BRIDGE_LEG = EndReason(503, 510503, "The media server could not take the phone's audio.")


class Phoning:
    """MediaProcess's phone legs; MediaProcess gives the rooms and the DTMF path."""

    if TYPE_CHECKING:

        async def _media(self, call_id: str) -> CallMedia: ...

        async def _dtmf(self, call_id: str, raw_id: str, tone: str) -> None: ...

        async def _end_early_media(self, media: CallMedia) -> None: ...

    async def _dial(self, message: dict[str, Any]) -> None:
        call_id, raw_id = str(message["call"]), str(message["rawId"])
        number = raw_id.split(":", 1)[1]
        trunks = await database_sync_to_async(_trunks)(call_id, list(message["trunks"]), number)
        if not trunks:
            await _ended(call_id, raw_id, NO_TRUNK)
            return
        try:
            media = await self._media(call_id)
            offer = await media.room.join_offering(raw_id)
        except JanusError as error:
            logger.warning("no bridge leg for %s in call %s: %s", raw_id, call_id, error)
            await _ended(call_id, raw_id, NO_BRIDGE_LEG)
            return
        fqdns = [fqdn for fqdn, _ in trunks]
        phone = PhoneCall(
            media.server,
            self._on_phone_event(media, raw_id, fqdns),
            setup_seconds=settings.SIP_TRUNK_SETUP_SECONDS,
        )
        media.phones[raw_id] = phone
        await phone.dial(number, str(message["callerId"]), offer, [trunk for _, trunk in trunks])

    def _on_phone_event(self, media: CallMedia, raw_id: str, fqdns: list[str] | None = None) -> Any:
        """on_event for a phone leg: an outbound PhoneCall's (through the trunks `fqdns`), or
        an answered incoming call's (apps/automation/answering.py)."""

        async def on_event(event: dict[str, Any]) -> None:
            kind = event["kind"]
            logger.info("phone %s in call %s: %s", raw_id, media.call_id, kind)
            if kind == "trying" and fqdns:  # each trunk tried overwrites the last one
                wanted = await database_sync_to_async(phones.phone_placed)(
                    media.call_id, raw_id, fqdns[int(event["trunk"])], str(event["sipCallId"])
                )
                phone = media.phones.get(raw_id)
                if not wanted and phone is not None:  # cancelled, or its call ended, meanwhile
                    await phone.hang_up()  # "ended" follows
            elif kind in ("early_media", "answered"):
                if "answer" in event and not await self._complete_leg(media, raw_id, event):
                    return
                if kind == "early_media":
                    await database_sync_to_async(phones.phone_early_media)(media.call_id)
                else:
                    media.legs[raw_id] = ""  # no socket: the phone's signaling is SIP
                    await database_sync_to_async(phones.phone_answered)(media.call_id, raw_id)
                    await self._end_early_media(media)
            elif kind == "dtmf":
                await self._dtmf(media.call_id, raw_id, str(event["tone"]))
            elif kind == "ended":
                phone = media.phones.pop(raw_id, None)
                media.legs.pop(raw_id, None)
                try:
                    await media.room.leave(raw_id)
                except Exception as error:  # the room may be closing meanwhile (call ended)
                    logger.info("%s left call %s's room: %s", raw_id, media.call_id, error)
                await database_sync_to_async(phones.phone_ended)(
                    media.call_id,
                    raw_id,
                    int(event["code"]),
                    str(event["reason"]),
                    int(event.get("subCode") or 0),
                )
                if phone is not None:
                    await phone.close()  # its Janus session: nothing more comes

        return on_event

    async def _complete_leg(self, media: CallMedia, raw_id: str, event: dict[str, Any]) -> bool:
        """The phone's SDP answer to the bridge leg; False (and the phone hung up) if refused."""
        try:
            await media.room.complete_leg(raw_id, event["answer"])
        except JanusError as error:
            logger.warning("the bridge refused %s's answer: %s", raw_id, error)
            phone = media.phones.get(raw_id)
            if phone is not None:
                await phone.hang_up()  # "ended" follows
            return False
        return True

    async def _send_dtmf_to_phones(
        self, media: CallMedia, tones: str, targets: list[str] | None
    ) -> list[str] | None:
        """Send `tones` as SIP INFO to the answered phones among `targets` (a carrier passes
        INFO on; in-band tones may not survive its codecs). Returns the targets left for
        in-band tones: the others, and phones that refused INFO (None: the whole room)."""
        if targets is None:
            return None
        left = []
        for raw_id in targets:
            phone = media.phones.get(raw_id)
            # (An incoming phone, apps/automation/answering.py, gets in-band tones.)
            if not isinstance(phone, PhoneCall) or not phone.answered:
                left.append(raw_id)
                continue
            try:
                await phone.send_dtmf(tones)
            except JanusError as error:
                logger.info("DTMF as SIP INFO to %s failed (%s): sent in-band", raw_id, error)
                left.append(raw_id)
        return left

    def _phone_media(self, media: CallMedia, raw_id: str, receiving: bool) -> None:
        """An answered phone's audio stopped reaching Janus, or came back. A trunk that
        vanished without a word (no BYE, no ICMP refusal) sends nothing more: after
        SPOOL_PHONE_MEDIA_TIMEOUT_SECONDS of that, the phone is given up as a silent line."""
        waiting = media.silences.pop(raw_id, None)
        if waiting is not None:
            waiting.cancel()
        phone = media.phones.get(raw_id)
        timeout = settings.PHONE_MEDIA_TIMEOUT_SECONDS
        if receiving or phone is None or raw_id not in media.legs or not timeout:
            return  # (a phone still ringing with early media is not in `legs`)

        async def give_up() -> None:
            await asyncio.sleep(timeout)
            if media.silences.get(raw_id) is asyncio.current_task():
                del media.silences[raw_id]
            if media.phones.get(raw_id) is phone:
                logger.info("phone %s in call %s went silent: given up", raw_id, media.call_id)
                await phone.silent()  # "ended" follows, as for any end

        media.silences[raw_id] = asyncio.create_task(give_up())

    async def _hang_up_phone(self, media: CallMedia, raw_id: str) -> None:
        phone = media.phones.pop(raw_id, None)
        if phone is not None:
            await phone.hang_up()
            await phone.close()

    async def _hang_up_phones(self, media: CallMedia) -> None:
        for raw_id in list(media.phones):
            await self._hang_up_phone(media, raw_id)


async def _ended(call_id: str, raw_id: str, reason: EndReason) -> None:
    await database_sync_to_async(phones.phone_ended)(
        call_id, raw_id, reason.code, reason.message, reason.sub_code
    )


def _trunks(call_id: str, fqdns: list[str], number: str) -> list[tuple[str, Trunk]]:
    """The call's resource's enabled trunks among `fqdns`, in that order, as the SIP plugin
    needs them; "loopback" is the loopback carrier, through Spool's own SIP edge."""
    call = Call.objects.filter(pk=call_id).select_related("resource").first()
    if call is None:
        return []
    resource_id = call.resource_id
    if fqdns == [loopback.LOOPBACK]:
        return [(loopback.LOOPBACK, _loopback_trunk(call.resource.slug, number))]
    rows = {
        trunk.fqdn: trunk
        for trunk in SipTrunk.objects.filter(resource_id=resource_id, fqdn__in=fqdns, enabled=True)
    }
    return [(fqdn, _trunk(rows[fqdn])) for fqdn in fqdns if fqdn in rows]


def _trunk(row: SipTrunk) -> Trunk:
    """A resource's trunk as the SIP plugin needs it: through Spool's SIP edge when there is
    one (TLS trunks, RFC 2833 keys through its rtpengine), else straight from Janus."""
    try:
        password = row.digest_password
    except SealBroken:
        # SECRET_KEY changed without the old one kept as a fallback: the trunk's challenge
        # goes unanswered and the call fails with its status, which the operator can see.
        logger.error("the digest password of trunk %s cannot be read: set it again", row.fqdn)
        password = ""
    return Trunk(
        host=row.target_host,
        port=row.signaling_port,
        transport=row.transport,
        username=row.digest_username,
        password=password,
        edge=settings.SIP_EDGE,
        secret=settings.SIP_EDGE_SECRET,
        codecs=tuple(row.codecs or ()),
        srtp=row.srtp,
        caller_id_format=row.caller_id_format,
        assert_identity=row.assert_identity,
    )


def _loopback_trunk(resource_slug: str, number: str) -> Trunk:
    """The loopback carrier: Spool's SIP edge, with the secret that marks its calls; a number
    no resource here owns is the calling resource's virtual phone."""
    host, port = settings.SIP_EDGE.rsplit(":", 1)
    headers = [(LOOPBACK_HEADER, settings.SIP_EDGE_SECRET)]
    if not loopback.is_deployment_number(number):
        headers.append((PHONES_HEADER, resource_slug))
    return Trunk(host=host, port=int(port), headers=tuple(headers))
