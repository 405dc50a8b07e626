"""The loopback voice carrier (SPOOL_VOICE_CARRIER=loopback, the embedded default): phone calls
that no SIP route takes stay inside the deployment. A number some resource here owns is called
in through the SIP edge as if a carrier sent it (apps/pstn/inbound.py admits it); any other
number is a virtual phone of the calling resource, which rings in its console (the page is
the phone: apps/automation/virtual_phones.py), and a virtual phone may call the deployment's
numbers. No call leaves the machine."""

from __future__ import annotations

import re

from django.conf import settings

from apps.core.errors import ApiError
from apps.numbers.models import NumberStatus, PhoneNumber

LOOPBACK = "loopback"  # the trunk name of the loopback carrier's calls
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def enabled() -> bool:
    return settings.VOICE_CARRIER == LOOPBACK


def available() -> bool:
    """Whether calls can go out through the loopback carrier: enabled, with a SIP edge."""
    return enabled() and bool(settings.SIP_EDGE)


def is_deployment_number(number: str) -> bool:
    """Whether a resource of this deployment owns `number`."""
    return PhoneNumber.objects.filter(status=NumberStatus.OWNED, number=number).exists()


def check_virtual_number(number: str) -> str:
    """A virtual phone's number: E.164, and no resource's here (those are reached as
    themselves). Raises ApiError (400)."""
    number = (number or "").strip()
    if not E164.fullmatch(number):
        raise ApiError(
            "A virtual phone's number is a phone number in E.164 (+15555550123).",
            code="InvalidPhoneNumber",
            target="number",
        )
    if is_deployment_number(number):
        raise ApiError(
            f"{number} belongs to a resource of this deployment: a virtual phone stands for a "
            "phone outside it. Pick another number.",
            code="InvalidPhoneNumber",
            target="number",
        )
    return number
