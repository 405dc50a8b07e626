"""The virtual phone socket (/ws/virtual-phone/?ticket=...): the console page of one virtual
phone (apps/automation/virtual_phones.py). The ticket (issue_ticket(), from the console's
Virtual phones page) names the resource and the number; the socket registers the phone at the
SIP edge and passes the page's SDPs and keys to it, and its calls' events back.

Page to Spool: {"type": "call", "to": "+1...", "sdp": offer}, {"type": "accept", "sdp": answer},
{"type": "decline"}, {"type": "hangup"}, {"type": "dtmf", "tone": "5"}.
Spool to page: {"type": "ready", "number"}, {"type": "incoming", "from", "sdp"},
{"type": "ringing"}, {"type": "answered", "sdp"?}, {"type": "ended", "code", "reason"},
{"type": "error", "message"} (the socket stays, except when the phone could not register).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core import signing

from apps.automation.virtual_phones import VirtualPhone, phones_domain
from apps.calls import janus_placement
from apps.calls.sfu import JanusError

logger = logging.getLogger(__name__)

TICKET_SALT = "spool.virtual-phone"
TICKET_SECONDS = 120
CLOSE_UNAUTHORIZED = 4001
CLOSE_UNAVAILABLE = 4503
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
DTMF = frozenset("0123456789*#ABCD")
MAX_SDP = 64 * 1024


def issue_ticket(resource_slug: str, number: str) -> str:
    return signing.dumps({"resource": resource_slug, "number": number}, salt=TICKET_SALT)


def phones_available() -> bool:
    """Whether virtual phones can work here: the loopback carrier, a SIP edge and a Janus."""
    return bool(
        settings.VOICE_CARRIER == "loopback"
        and settings.SIP_EDGE
        and janus_placement.servers(janus_placement.MEDIA)
    )


class VirtualPhoneConsumer(AsyncJsonWebsocketConsumer):
    phone: VirtualPhone | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            claims = signing.loads(
                (query.get("ticket") or [""])[0], salt=TICKET_SALT, max_age=TICKET_SECONDS
            )
        except signing.BadSignature:
            await self.close(CLOSE_UNAUTHORIZED)
            return
        await self.accept()
        if not phones_available():
            await self._error("Virtual phones need the loopback voice carrier, Kamailio and Janus.")
            await self.close(CLOSE_UNAVAILABLE)
            return
        number = str(claims["number"])
        server = await database_sync_to_async(janus_placement.up_server)(janus_placement.MEDIA)
        self.phone = VirtualPhone(
            server,
            settings.SIP_EDGE,
            phones_domain(str(claims["resource"])),
            number,
            self._on_event,
        )
        try:
            await self.phone.open()
        except JanusError as error:
            logger.warning("virtual phone %s could not register: %s", number, error)
            self.phone = None
            await self._error("The virtual phone could not register at the SIP edge.")
            await self.close(CLOSE_UNAVAILABLE)
            return
        await self.send_json({"type": "ready", "number": number})

    async def disconnect(self, code: int) -> None:
        if self.phone is not None:
            await self.phone.close()
            self.phone = None

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        phone = self.phone
        if phone is None or not isinstance(content, dict):
            await self._error("Frames are JSON objects with a type.")
            return
        kind = content.get("type")
        try:
            if kind == "call":
                to = content.get("to")
                if not isinstance(to, str) or not E164.fullmatch(to):
                    await self._error("to must be a phone number in E.164 (+14255550100).")
                    return
                await phone.call(to, self._sdp(content, "offer"))
            elif kind == "accept":
                await phone.accept(self._sdp(content, "answer"))
            elif kind == "decline":
                await phone.decline()
            elif kind == "hangup":
                await phone.hang_up()
            elif kind == "dtmf":
                tone = content.get("tone")
                if not isinstance(tone, str) or tone.upper() not in DTMF or len(tone) != 1:
                    await self._error("tone must be one of 0-9, *, #, A-D.")
                    return
                await phone.send_dtmf(tone.upper())
            else:
                await self._error("type must be call, accept, decline, hangup or dtmf.")
        except ValueError as error:
            await self._error(str(error))
        except JanusError as error:
            await self._error(f"The phone could not do that: {error.reason}")

    @staticmethod
    def _sdp(content: dict[str, Any], kind: str) -> dict[str, str]:
        sdp = content.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP:
            raise ValueError(f"sdp must be the page's SDP {kind}.")
        return {"type": kind, "sdp": sdp}

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "incoming":
            offer = event.get("offer") or {}
            await self.send_json(
                {"type": "incoming", "from": event["from"], "sdp": offer.get("sdp")}
            )
        elif kind == "answered":
            answer = event.get("answer") or {}
            await self.send_json({"type": "answered", "sdp": answer.get("sdp")})
        elif kind == "ringing":
            await self.send_json({"type": "ringing"})
        elif kind == "ended":
            await self.send_json(
                {"type": "ended", "code": event["code"], "reason": event["reason"]}
            )
        elif kind == "lost":
            await self._error("The connection to the media server was lost.")
            await self.close(CLOSE_UNAVAILABLE)

    async def _error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})
