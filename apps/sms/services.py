"""Sending and receiving SMS: the ACS send request, inbound messages, the message log.

An accepted message is a row committed before any job runs; the delivery job (pacing,
carriers, retries, receipts, beat's sweep) is `delivery.py`. Opt-out keywords and the opt-out
list live in `optouts.py`; virtual handsets in `handsets.py`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core import random_ids
from apps.core.api import rfc3339
from apps.core.parsers import is_single_line, is_text, storable
from apps.core.rows import insert as insert_rows
from apps.events import services as events
from apps.metrics import exporter
from apps.numbers.models import Capability, NumberStatus, PhoneNumber
from apps.sms import delivery, optouts, segments
from apps.sms.addresses import INVALID_TO, is_e164
from apps.sms.delivery import (  # noqa: F401  (carriers report here)
    record_delivery_report,
    record_delivery_reports,
)
from apps.sms.exceptions import InvalidSendRequest
from apps.sms.models import (
    Direction,
    MessageStatus,
    SmsMessage,
)

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
MAX_MESSAGE_LENGTH = 2048  # characters, as ACS
MAX_TAG_LENGTH = 256
SENDING_CAPABILITIES = (Capability.OUTBOUND, Capability.BOTH)
RECEIVING_CAPABILITIES = (Capability.INBOUND, Capability.BOTH)
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"


def new_message_id(direction: str) -> str:
    prefix = "Outgoing" if direction == Direction.OUTBOUND else "Incoming"
    return f"{prefix}_{timezone.now():%Y%m%d%H%M%S}{random_ids.uuid4()}"


# --- The send request ----------------------------------------------------------------------
@dataclass(frozen=True)
class Recipient:
    to: Any
    repeatability_request_id: str | None = None


@dataclass(frozen=True)
class SendRequest:
    sender: str
    recipients: list[Recipient]
    text: str
    delivery_report: bool = False
    tag: str = ""


def check_send_request(body: dict[str, Any]) -> SendRequest:
    """Validate an ACS send body as a whole; per-recipient problems are answered per recipient.
    Raises InvalidSendRequest (400)."""
    sender = body.get("from")
    if not is_e164(sender):
        raise InvalidSendRequest(
            "'from' must be a phone number in E.164 format, e.g. +14255550123.",
            target="from",
        )
    text = body.get("message")
    if not isinstance(text, str) or not text:
        raise InvalidSendRequest("'message' must be a non-empty string.", target="message")
    if not is_text(text):
        raise InvalidSendRequest(
            "'message' holds a control character (line breaks and tabs are allowed).",
            target="message",
        )
    if len(text) > MAX_MESSAGE_LENGTH:
        raise InvalidSendRequest(
            f"'message' is {len(text)} characters; the limit is {MAX_MESSAGE_LENGTH}.",
            target="message",
        )
    raw_recipients = body.get("smsRecipients")
    if not isinstance(raw_recipients, list) or not raw_recipients:
        raise InvalidSendRequest(
            "'smsRecipients' must list 1 to 100 recipients.", target="smsRecipients"
        )
    if len(raw_recipients) > MAX_RECIPIENTS:
        raise InvalidSendRequest(
            f"'smsRecipients' lists {len(raw_recipients)} recipients; the limit is {MAX_RECIPIENTS}.",
            target="smsRecipients",
        )
    recipients = [_check_recipient(item) for item in raw_recipients]
    options = body.get("smsSendOptions") or {}
    if not isinstance(options, dict):
        raise InvalidSendRequest("'smsSendOptions' must be an object.", target="smsSendOptions")
    report = options.get("enableDeliveryReport", False)
    if not isinstance(report, bool):
        raise InvalidSendRequest(
            "'enableDeliveryReport' must be true or false.", target="enableDeliveryReport"
        )
    tag = options.get("tag") or ""
    if not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH or not is_single_line(tag):
        raise InvalidSendRequest(
            f"'tag' must be a string of at most {MAX_TAG_LENGTH} characters, without control "
            "characters.",
            target="tag",
        )
    return SendRequest(str(sender), recipients, text, report, tag)


def check_simple_send(
    sender: str, to: list[str], message: str, *, delivery_report: bool = False, tag: str = ""
) -> SendRequest:
    """`check_send_request` for callers that have plain fields (console, management API)."""
    return check_send_request(
        {
            "from": sender,
            "smsRecipients": [{"to": number} for number in to],
            "message": message,
            "smsSendOptions": {"enableDeliveryReport": delivery_report, "tag": tag},
        }
    )


def _check_recipient(item: Any) -> Recipient:
    if not isinstance(item, dict) or "to" not in item:
        raise InvalidSendRequest(
            "Each recipient must be an object with 'to'.", target="smsRecipients"
        )
    request_id = item.get("repeatabilityRequestId")
    if request_id is not None:
        if (
            not isinstance(request_id, str)
            or not 0 < len(request_id) <= 64
            or not is_single_line(request_id)
        ):
            raise InvalidSendRequest(
                "'repeatabilityRequestId' must be a string of 1 to 64 characters, without "
                "control characters.",
                target="repeatabilityRequestId",
            )
        first_sent = item.get("repeatabilityFirstSent")
        if first_sent is not None and not _is_http_date(first_sent):
            raise InvalidSendRequest(
                "'repeatabilityFirstSent' must be an RFC 1123 date, e.g. "
                "'Tue, 24 Nov 2026 08:00:00 GMT'.",
                target="repeatabilityFirstSent",
            )
    return Recipient(item["to"], request_id)


def _is_http_date(value: Any) -> bool:
    try:
        return isinstance(value, str) and parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def sending_number(resource: Resource, number: str) -> PhoneNumber:
    """The resource's number `number`, if it may send SMS. Raises InvalidSendRequest."""
    owned = PhoneNumber.objects.filter(
        number=number, owner=resource, status=NumberStatus.OWNED
    ).first()
    if owned is None:
        raise InvalidSendRequest(f"{number} is not a phone number of this resource.", target="from")
    if owned.owned_sms not in SENDING_CAPABILITIES:
        raise InvalidSendRequest(
            f"{number} cannot send SMS: its SMS capability is '{owned.owned_sms}'. "
            "Update its capabilities to outbound or inbound+outbound.",
            target="from",
        )
    return owned


def send(resource: Resource, request: SendRequest) -> list[dict[str, Any]]:
    """Accept a send request: one row per valid recipient, queued after commit. Returns the
    ACS per-recipient results. A repeated repeatability id answers with the first result and
    sends nothing again. Raises InvalidSendRequest for a sender the resource cannot use."""
    try:
        return _send(resource, request)
    except IntegrityError:
        # A concurrent request with the same repeatability id won the race: replay it.
        return _send(resource, request)


def _send(resource: Resource, request: SendRequest) -> list[dict[str, Any]]:
    # Reads first, outside the write transaction: SQLite has one writer at a time, so the
    # transaction holds only the insert. (A repeatability id that races in is caught by the
    # unique constraint and replayed by `send`.)
    sending_number(resource, request.sender)
    results, rows = prepare_send(resource.pk, request)
    store_accepted(rows)
    return results


def deliverable(request: SendRequest) -> list[str]:
    """The recipients of a send request that a message can go to (whose opt-outs count)."""
    return [r.to for r in request.recipients if is_e164(r.to)]


def prepare_send(
    resource_id: uuid.UUID, request: SendRequest, opted_out: set[str] | None = None
) -> tuple[list[dict[str, Any]], list[SmsMessage]]:
    """The ACS per-recipient results of a send request whose sender may send, and the rows to
    store for them (store_accepted): reads the repeatability ids seen, and the opt-outs unless
    the caller read them (`opted_out`: which of `deliverable(request)` opted out)."""
    if opted_out is None:
        opted_out = optouts.opted_out(request.sender, deliverable(request))
    request_ids = [
        r.repeatability_request_id for r in request.recipients if r.repeatability_request_id
    ]
    seen = (
        {
            message.repeatability_request_id: message
            for message in SmsMessage.objects.filter(
                resource_id=resource_id, repeatability_request_id__in=request_ids
            )
        }
        if request_ids
        else {}
    )
    info = segments.analyze(request.text)
    results: list[dict[str, Any]] = []
    rows: list[SmsMessage] = []
    for recipient in request.recipients:
        replay = seen.get(recipient.repeatability_request_id or "")
        if replay is not None:
            results.append(send_result(replay))
            continue
        if not is_e164(recipient.to):
            results.append(_refused(recipient, INVALID_TO))
            continue
        row = _outbound(
            resource_id,
            sender=request.sender,
            recipient=recipient.to,
            text=request.text,
            info=info,
            tag=request.tag,
            delivery_report_requested=request.delivery_report,
            repeatability_request_id=recipient.repeatability_request_id or "",
        )
        if recipient.to in opted_out:
            row.status = MessageStatus.FAILED
            row.send_status_code = 400
            row.status_detail = (
                f"{recipient.to} has opted out of messages from {request.sender} "
                "(replied STOP); they can opt in again by replying START."
            )
            row.lease_until = None
            row.finished_at = timezone.now()
        rows.append(row)
        results.append(send_result(row))
        if row.repeatability_request_id:
            seen[row.repeatability_request_id] = row
    return results, rows


def store_accepted(rows: list[SmsMessage]) -> None:
    """Store accepted messages (of one request or of many: send_route's group commit) in one
    statement, and ask for a drain once they are committed. Raises IntegrityError for a
    repeatability id stored meanwhile."""
    if not rows:
        return
    # In plain SQL: bulk_create's INSERT, built through the ORM and its values quoted by the
    # client, was a sixth of the web process's time (profiled, bench/sms.py).
    insert_rows(rows)  # one statement, or one transaction when split
    queued = sum(1 for row in rows if row.status == MessageStatus.QUEUED)
    exporter.count_after_commit(exporter.SMS_ACCEPTED, queued)
    exporter.count_after_commit(exporter.SMS_FAILED.labels("opted_out"), len(rows) - queued)
    if queued:
        delivery.request_drain()


def send_result(message: SmsMessage) -> dict[str, Any]:
    """The ACS SmsSendResponseItem of a message (also when a repeated request replays it)."""
    result: dict[str, Any] = {
        "to": message.recipient,
        "messageId": message.id,
        "httpStatusCode": message.send_status_code,
        "successful": message.send_status_code == 202,
    }
    if message.send_status_code != 202:
        result["errorMessage"] = message.status_detail
    if message.repeatability_request_id:
        result["repeatabilityResult"] = "accepted"
    return result


def _refused(recipient: Recipient, reason: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "to": str(recipient.to),
        "httpStatusCode": 400,
        "successful": False,
        "errorMessage": reason,
    }
    if recipient.repeatability_request_id:
        result["repeatabilityResult"] = "rejected"
    return result


def queue_reply(resource: Resource, *, sender: str, recipient: str, text: str) -> SmsMessage:
    """Queue a message that bypasses the opt-out list (the confirmation of STOP, HELP)."""
    message = _outbound(resource.pk, sender=sender, recipient=recipient, text=text)
    message.save(force_insert=True)
    exporter.count_after_commit(exporter.SMS_ACCEPTED)
    delivery.request_drain()
    return message


def _outbound(
    resource_id: uuid.UUID,
    *,
    sender: str,
    recipient: str,
    text: str,
    info: segments.SegmentInfo | None = None,
    **fields: Any,
) -> SmsMessage:
    """An unsaved queued outbound message (`info`: the text's segments, when known)."""
    info = info or segments.analyze(text)
    return SmsMessage(
        id=new_message_id(Direction.OUTBOUND),
        resource_id=resource_id,
        direction=Direction.OUTBOUND,
        sender=sender,
        recipient=recipient,
        text=text,
        encoding=info.encoding,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        lease_until=delivery.lease(),
        **fields,
    )


# --- Inbound -------------------------------------------------------------------------------
def receive_sms(
    *, sender: str, recipient: str, text: str, carrier_message_id: str = ""
) -> SmsMessage | None:
    """A message from `sender` to one of this deployment's numbers. Stores it, handles
    STOP / START / HELP, and raises SMSReceived for the number's owner. A message to a number
    nobody owns (or that does not receive SMS) is dropped with a warning: returns None.

    A carrier's text is kept even when broken: a NUL or lone surrogate (no database stores
    them) becomes U+FFFD. Addresses that are no phone numbers are dropped like unknown ones."""
    text = storable(text)
    if not is_e164(recipient) or not is_single_line(sender) or len(sender) > 16:
        logger.warning("dropped an SMS from %r to %r: not phone numbers", sender, recipient)
        return None
    number = (
        PhoneNumber.objects.select_related("owner")
        .filter(number=recipient, status=NumberStatus.OWNED)
        .first()
    )
    if number is None or number.owner is None or number.owned_sms not in RECEIVING_CAPABILITIES:
        logger.warning("dropped an SMS to %s: not a number that receives SMS here", recipient)
        return None
    resource = number.owner
    now = timezone.now()
    with transaction.atomic():
        message = SmsMessage.objects.create(
            id=new_message_id(Direction.INBOUND),
            resource=resource,
            direction=Direction.INBOUND,
            sender=sender,
            recipient=recipient,
            text=text,
            encoding=segments.encoding_of(text),
            segments=segments.count_segments(text),
            status=MessageStatus.RECEIVED,
            carrier_message_id=carrier_message_id[:100],
            finished_at=now,
        )
        reply = optouts.handle_keyword(resource, number=recipient, person=sender, text=text)
        if reply and number.owned_sms == Capability.BOTH:
            queue_reply(resource, sender=recipient, recipient=sender, text=reply)
        events.publish_event(
            resource,
            SMS_RECEIVED,
            subject=f"/phonenumber/{recipient.lstrip('+')}",
            data={
                "MessageId": message.pk,
                "From": sender,
                "To": recipient,
                "Message": text,
                "ReceivedTimestamp": rfc3339(now),
            },
        )
    exporter.count_after_commit(exporter.SMS_RECEIVED)
    return message


# --- Reading -------------------------------------------------------------------------------
def access_message(resource: Resource, message_id: str) -> SmsMessage:
    from apps.sms.exceptions import MessageNotFound

    message = (
        SmsMessage.objects.filter(resource=resource, pk=message_id).first()
        if is_single_line(message_id)  # (a NUL is no id, and PostgreSQL cannot compare it)
        else None
    )
    if message is None:
        raise MessageNotFound(f"No message {message_id!r} in this resource.")
    return message


def list_messages(
    resource: Resource, *, direction: str = "", status: str = "", number: str = ""
) -> Any:
    """The resource's messages, latest first, filtered by what is given. Raises
    InvalidSendRequest (400) for a filter holding a control character."""
    for name, value in (("direction", direction), ("status", status), ("number", number)):
        if not is_single_line(value):
            raise InvalidSendRequest(f"{name} holds a control character.", target=name)
    messages = SmsMessage.objects.filter(resource=resource).order_by("-created_at", "-pk")
    if direction:
        messages = messages.filter(direction=direction)
    if status:
        messages = messages.filter(status=status)
    if number:
        from django.db.models import Q

        messages = messages.filter(Q(sender=number) | Q(recipient=number))
    return messages


def sending_numbers(resource: Resource) -> list[PhoneNumber]:
    return list(
        PhoneNumber.objects.filter(
            owner=resource, status=NumberStatus.OWNED, owned_sms__in=SENDING_CAPABILITIES
        ).order_by("number")
    )
