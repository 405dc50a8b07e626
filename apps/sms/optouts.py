"""Opt-out: STOP / START / HELP keywords per sender number, and the opt-out list.

A person who texts a stop keyword to one of a resource's numbers gets no more messages from
that number (sends to them fail per recipient) until they text a start keyword. The list can
also be managed through the API and the console (ACS opt-out management API shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from apps.accounts.models import Resource
from apps.core import sql
from apps.core.parsers import is_single_line
from apps.core.sql import column, table
from apps.numbers.models import NumberStatus, PhoneNumber
from apps.sms.addresses import INVALID_TO, is_e164
from apps.sms.exceptions import InvalidOptOutRequest
from apps.sms.models import OptOut

# The usual keywords (CTIA / carrier practice), matched on the whole message, any case.
STOP_WORDS = {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT",
              "OPT OUT", "REVOKE", "ARRET", "ALTO"}  # fmt: skip
START_WORDS = {"START", "UNSTOP", "YES", "OPTIN", "OPT IN", "SUBSCRIBE"}
HELP_WORDS = {"HELP", "INFO", "AIDE", "AYUDA"}
STOP_REPLY = (
    "You have been unsubscribed and will receive no more messages. Reply START to resubscribe."
)
START_REPLY = "You have been resubscribed. Reply STOP to unsubscribe."
MAX_RECIPIENTS = 100


def keyword_of(text: str) -> str | None:
    """The keyword `text` is ("stop", "start", "help"), or None; "Stop." and " stop all " count."""
    word = re.sub(r"[^A-Z ]", " ", text.upper().replace("-", " "))
    word = " ".join(word.split())
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def handle_keyword(resource: Resource, *, number: str, person: str, text: str) -> str | None:
    """Apply a keyword texted by `person` to the resource's `number`; returns the automatic
    reply to send, or None when `text` is not a keyword."""
    from django.conf import settings

    keyword = keyword_of(text)
    if keyword == "stop":
        OptOut.objects.get_or_create(
            sender=number, recipient=person, defaults={"resource": resource, "source": "keyword"}
        )
        return STOP_REPLY
    if keyword == "start":
        OptOut.objects.filter(sender=number, recipient=person).delete()
        return START_REPLY
    if keyword == "help":
        return str(settings.SMS_HELP_TEXT)
    return None


def opted_out(sender: str, recipients: Iterable[str]) -> set[str]:
    """Which of `recipients` opted out of `sender`. Read on every send: plain SQL, as building
    the query through the ORM cost more than running it (profiled, bench/sms.py)."""
    wanted = list(recipients)
    if not wanted:
        return set()
    found = sql.fetch(_opted_out_query(len(wanted)), [sender, *wanted])
    return {recipient for (recipient,) in found}


def _opted_out_query(count: int) -> str:
    return (
        f"SELECT o.{column(OptOut, 'recipient')} FROM {table(OptOut)} o "
        f"WHERE {opted_out_condition('o', count)}"
    )


def opted_out_condition(alias: str, count: int) -> str:
    """The SQL condition an opt-out row (as `alias`) meets when it stops a message: its sender
    is the first parameter and its recipient one of the `count` after it. For `opted_out` and
    for queries that read opt-outs joined to something else (apps/sms/send_route.py)."""
    placeholders = ", ".join(["%s"] * count) or "NULL"  # IN (NULL) holds for no row
    return (
        f"{alias}.{column(OptOut, 'sender')} = %s "
        f"AND {alias}.{column(OptOut, 'recipient')} IN ({placeholders})"
    )


def list_opt_outs(resource: Resource, *, sender: str = "") -> QuerySet[OptOut]:
    """The resource's opt-outs, latest first (of one sender's, if given). Raises
    InvalidOptOutRequest (400) for a sender holding a control character."""
    if not is_single_line(sender):
        raise InvalidOptOutRequest("sender holds a control character.", target="sender")
    opt_outs = OptOut.objects.filter(resource=resource).order_by("-created_at", "-pk")
    return opt_outs.filter(sender=sender) if sender else opt_outs


def access_opt_out(resource: Resource, opt_out_id: int) -> OptOut:
    from apps.sms.exceptions import OptOutNotFound

    opt_out = OptOut.objects.filter(resource=resource, pk=opt_out_id).first()
    if opt_out is None:
        raise OptOutNotFound(f"No opt-out {opt_out_id} in this resource.")
    return opt_out


def add_opt_out(resource: Resource, *, sender: str, recipient: str, source: str) -> OptOut:
    """Opt one person out of one of the resource's numbers by hand (console, management API).
    Raises InvalidOptOutRequest."""
    checked_sender, [to] = check_request(
        resource, {"from": sender, "recipients": [{"to": recipient}]}
    )
    if not is_e164(to):
        raise InvalidOptOutRequest(INVALID_TO, target="recipient")
    opt_out, _ = OptOut.objects.get_or_create(
        sender=checked_sender, recipient=to, defaults={"resource": resource, "source": source}
    )
    return opt_out


def remove_opt_out(resource: Resource, opt_out_id: int) -> OptOut:
    """The person may receive messages from that number again. Raises OptOutNotFound."""
    opt_out = access_opt_out(resource, opt_out_id)
    opt_out.delete()
    return opt_out


def check_request(resource: Resource, body: dict[str, Any]) -> tuple[str, list[Any]]:
    """Validate an opt-out API body `{from, recipients: [{to}]}`; `from` must be one of the
    resource's numbers. Returns (sender, raw recipient values). Raises InvalidOptOutRequest."""
    sender = body.get("from")
    if not is_e164(sender):
        raise InvalidOptOutRequest("'from' must be a phone number in E.164 format.", target="from")
    if not PhoneNumber.objects.filter(
        number=sender, owner=resource, status=NumberStatus.OWNED
    ).exists():
        raise InvalidOptOutRequest(
            f"{sender} is not a phone number of this resource.", target="from"
        )
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not 0 < len(recipients) <= MAX_RECIPIENTS:
        raise InvalidOptOutRequest(
            f"'recipients' must list 1 to {MAX_RECIPIENTS} recipients.", target="recipients"
        )
    if not all(isinstance(item, dict) for item in recipients):
        raise InvalidOptOutRequest(
            "Each recipient must be an object with 'to'.", target="recipients"
        )
    return str(sender), [item.get("to") for item in recipients]


def change(
    resource: Resource, sender: str, recipients: list[Any], *, opt_out: bool, source: str = "api"
) -> list[dict[str, Any]]:
    """Add (`opt_out`) or remove recipients on `sender`'s list; per-recipient results."""
    results: list[dict[str, Any]] = []
    with transaction.atomic():
        for to in recipients:
            if not is_e164(to):
                results.append(_invalid(to))
                continue
            if opt_out:
                OptOut.objects.get_or_create(
                    sender=sender, recipient=to, defaults={"resource": resource, "source": source}
                )
            else:
                OptOut.objects.filter(sender=sender, recipient=to).delete()
            results.append({"to": to, "httpStatusCode": 200})
    return results


def check(sender: str, recipients: list[Any]) -> list[dict[str, Any]]:
    listed = opted_out(sender, [to for to in recipients if is_e164(to)])
    return [
        {"to": to, "isOptedOut": to in listed, "httpStatusCode": 200}
        if is_e164(to)
        else _invalid(to)
        for to in recipients
    ]


def _invalid(to: Any) -> dict[str, Any]:
    return {
        "to": str(to),
        "httpStatusCode": 400,
        "errorMessage": INVALID_TO,
    }
