"""The media process's phone legs (a mixin of MediaProcess): a call a client placed to a phone
number (apps/calls/phones.py) gets a leg in the call's AudioBridge room that Janus offers, and
Janus's SIP plugin takes that offer to the trunk (apps/automation/sip.py). The phone's answer
completes the leg; its end ends the call. No audio passes through this process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from apps.automation.call_media import CallMedia
from apps.automation.sip import PhoneCall, Trunk
from apps.calls import phones
from apps.calls.models import Call
from apps.calls.sfu import JanusError
from apps.pstn.models import SipTrunk

logger = logging.getLogger(__name__)

END_NO_TRUNK = (503, "No trunk of the route took the call.")


class Phoning:
    """MediaProcess's phone legs; MediaProcess gives the rooms."""

    janus_url: str

    if TYPE_CHECKING:

        async def _media(self, call_id: str) -> CallMedia: ...

    async def _dial(self, message: dict[str, Any]) -> None:
        call_id, raw_id = str(message["call"]), str(message["rawId"])
        number = raw_id.split(":", 1)[1]
        trunks = await database_sync_to_async(_trunks)(call_id, list(message["trunks"]))
        try:
            media = await self._media(call_id)
            offer = await media.room.join_offering(raw_id)
        except JanusError as error:
            logger.warning("no bridge leg for %s in call %s: %s", raw_id, call_id, error)
            await database_sync_to_async(phones.phone_ended)(call_id, raw_id, 503, str(error))
            return
        for fqdn, trunk in trunks:
            phone = PhoneCall(self.janus_url, self._on_phone_event(media, raw_id))
            try:
                await phone.dial(number, str(message["callerId"]), offer, trunk)
            except JanusError as error:
                logger.warning("trunk %s refused the call to %s: %s", fqdn, number, error)
                continue
            media.phones[raw_id] = phone
            await database_sync_to_async(phones.phone_placed)(
                call_id, raw_id, fqdn, phone.sip_call_id
            )
            return
        await media.room.leave(raw_id)
        await database_sync_to_async(phones.phone_ended)(call_id, raw_id, *END_NO_TRUNK)

    def _on_phone_event(self, media: CallMedia, raw_id: str) -> Any:
        async def on_event(event: dict[str, Any]) -> None:
            kind = event["kind"]
            logger.info("phone %s in call %s: %s", raw_id, media.call_id, kind)
            if kind == "answered":
                try:
                    await media.room.complete_leg(raw_id, event["answer"])
                except JanusError as error:
                    logger.warning("the bridge refused %s's answer: %s", raw_id, error)
                    await self._hang_up_phone(media, raw_id)
                    return
                media.legs[raw_id] = ""  # no socket: the phone's signaling is SIP
                await database_sync_to_async(phones.phone_answered)(media.call_id, raw_id)
            elif kind == "ended":
                phone = media.phones.pop(raw_id, None)
                if phone is not None:
                    await phone.close()  # its Janus session: nothing more comes
                media.legs.pop(raw_id, None)
                await media.room.leave(raw_id)
                await database_sync_to_async(phones.phone_ended)(
                    media.call_id, raw_id, int(event["code"]), str(event["reason"])
                )

        return on_event

    async def _hang_up_phone(self, media: CallMedia, raw_id: str) -> None:
        phone = media.phones.pop(raw_id, None)
        if phone is not None:
            await phone.hang_up()
            await phone.close()

    async def _hang_up_phones(self, media: CallMedia) -> None:
        for raw_id in list(media.phones):
            await self._hang_up_phone(media, raw_id)


def _trunks(call_id: str, fqdns: list[str]) -> list[tuple[str, Trunk]]:
    """The call's resource's enabled trunks among `fqdns`, in that order, as the SIP plugin
    needs them."""
    resource_id = Call.objects.filter(pk=call_id).values_list("resource_id", flat=True).first()
    if resource_id is None:
        return []
    rows = {
        trunk.fqdn: trunk
        for trunk in SipTrunk.objects.filter(resource_id=resource_id, fqdn__in=fqdns, enabled=True)
    }
    return [
        (
            fqdn,
            Trunk(
                host=rows[fqdn].target_host,
                port=rows[fqdn].signaling_port,
                transport=rows[fqdn].transport,
                username=rows[fqdn].digest_username,
                password=rows[fqdn].digest_password,
            ),
        )
        for fqdn in fqdns
        if fqdn in rows
    ]
