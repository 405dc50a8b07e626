"""Virtual handsets: phones outside this deployment, played by a person in the console.

With the loopback carrier, a message to a number that is not in this deployment's inventory
lands in that number's handset inbox; a reply typed there reaches the resource's number as an
inbound SMS, exactly as a reply through a real carrier would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, QuerySet

from apps.accounts.models import Resource
from apps.core import rows
from apps.core.parsers import is_text
from apps.numbers.models import NumberStatus, PhoneNumber
from apps.sms.addresses import is_e164
from apps.sms.exceptions import HandsetNotFound, InvalidHandsetReply
from apps.sms.models import HandsetMessage

MAX_REPLY_LENGTH = 2048


def is_handset(number: str) -> bool:
    """A number outside the deployment's inventory is played by a virtual handset."""
    return not PhoneNumber.objects.filter(number=number).exists()


def check_handset(number: str) -> str:
    """`number`, if a virtual handset plays it: E.164 and not in this deployment's inventory.
    Raises HandsetNotFound (anything else opens no handset, and nothing is stored for it)."""
    if not is_e164(number):
        shown = number if len(number) <= 40 else f"{number[:40]}…"
        raise HandsetNotFound(
            f"“{shown}” is not a phone number. A virtual handset has a number in E.164 format "
            "(+ and 7 to 15 digits), e.g. +14255550123.",
            target="handset",
        )
    if not is_handset(number):
        raise HandsetNotFound(
            f"{number} is a phone number of this deployment, not a virtual handset: handsets "
            "stand in for phones outside it.",
            target="handset",
        )
    return number


def handsets_among(numbers: Iterable[str]) -> set[str]:
    numbers = set(numbers)
    return numbers - set(
        PhoneNumber.objects.filter(number__in=numbers).values_list("number", flat=True)
    )


def store_incoming(messages: Sequence[tuple[str, str, str]]) -> list[bool]:
    """Messages (sender, handset, text) from our numbers reach handsets, in one insert
    (called by the loopback carrier). Returns, per message, whether it was stored: a sender
    that is no longer owned (released meanwhile) has nobody to show the handset to."""
    senders = {sender for sender, _handset, _text in messages}
    owners = dict(
        PhoneNumber.objects.filter(number__in=senders, status=NumberStatus.OWNED).values_list(
            "number", "owner_id"
        )
    )
    # In plain SQL (rows.insert): bulk_create's transaction held SQLite's write lock, which
    # the web's commits of accepted sends wait for, while the ORM built its INSERT (profiled,
    # bench/sms.py).
    rows.insert(
        [
            HandsetMessage(
                resource_id=owners[sender],
                handset=handset,
                counterpart=sender,
                to_handset=True,
                text=text,
            )
            for sender, handset, text in messages
            if sender in owners
        ]
    )
    return [sender in owners for sender, _handset, _text in messages]


def reply(resource: Resource, *, handset: str, counterpart: str, text: str) -> HandsetMessage:
    """The person at `handset` texts the resource's number `counterpart`: stored in the
    handset's outbox and received as an inbound SMS. Raises InvalidHandsetReply."""
    from apps.sms import services

    if not is_e164(handset) or not is_handset(handset):
        raise InvalidHandsetReply(
            f"{handset} is not a virtual handset (it is in this deployment or not E.164).",
            target="handset",
        )
    if (
        not is_e164(counterpart)
        or not PhoneNumber.objects.filter(
            number=counterpart, owner=resource, status=NumberStatus.OWNED
        ).exists()
    ):
        raise InvalidHandsetReply(
            f"{counterpart!r} is not a phone number of this resource.", target="to"
        )
    if not text or len(text) > MAX_REPLY_LENGTH or not is_text(text):
        raise InvalidHandsetReply(
            f"The message must have 1 to {MAX_REPLY_LENGTH} characters, without control "
            "characters but line breaks and tabs.",
            target="message",
        )
    with transaction.atomic():
        sent = HandsetMessage.objects.create(
            resource=resource, handset=handset, counterpart=counterpart, to_handset=False, text=text
        )
        services.receive_sms(sender=handset, recipient=counterpart, text=text)
    return sent


def list_handsets(resource: Resource) -> list[dict[str, Any]]:
    """The handsets that exchanged messages with the resource's numbers, latest first."""
    rows = (
        HandsetMessage.objects.filter(resource=resource)
        .values("handset")
        .annotate(messages=Count("id"), last_at=Max("created_at"))
        .order_by("-last_at")[:200]
    )
    return [dict(row) for row in rows]


def conversation(resource: Resource, handset: str) -> QuerySet[HandsetMessage]:
    """The messages between `handset` and the resource's numbers. Raises HandsetNotFound for
    something that is not a phone number."""
    if not is_e164(handset):
        raise HandsetNotFound(f"{handset!r} is not a phone number (E.164, e.g. +14255550123).")
    return HandsetMessage.objects.filter(resource=resource, handset=handset).order_by(
        "created_at", "pk"
    )
