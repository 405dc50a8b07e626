"""Sending and receiving SMS: the ACS send request, the delivery job, receipts, inbound messages.

An accepted message is a row committed before its job is queued (on commit). A worker claims
due rows, paces each sender number, hands them to the carrier and records every answer; beat
re-queues rows whose claim ran out (a killed worker, a lost broker message). Opt-out keywords
and the opt-out list live in `optouts.py`; virtual handsets in `handsets.py`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core.api import rfc3339
from apps.events import services as events
from apps.numbers.models import Capability, NumberStatus, NumberType, PhoneNumber
from apps.sms import carriers, optouts, segments
from apps.sms.exceptions import InvalidSendRequest
from apps.sms.models import (
    Direction,
    EarlyReceipt,
    MessageStatus,
    SenderPace,
    SmsMessage,
)

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
MAX_MESSAGE_LENGTH = 2048  # characters, as ACS
MAX_TAG_LENGTH = 256
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
SENDING_CAPABILITIES = (Capability.OUTBOUND, Capability.BOTH)
RECEIVING_CAPABILITIES = (Capability.INBOUND, Capability.BOTH)
# Answers are recorded after each chunk: a worker killed mid-chunk may have submitted at most
# this many messages whose answers are lost (they are re-sent and marked possible duplicates).
SUBMIT_CHUNK = 20
RETRY_BACKOFF_MAX_SECONDS = 300
# A slot this close is taken at once: waiting a few milliseconds is not worth a new task.
PACE_SLACK = timedelta(milliseconds=250)
SMS_RECEIVED = "Microsoft.Communication.SMSReceived"
SMS_DELIVERY_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"


def is_e164(value: Any) -> bool:
    return isinstance(value, str) and bool(E164.match(value))


def new_message_id(direction: str) -> str:
    prefix = "Outgoing" if direction == Direction.OUTBOUND else "Incoming"
    return f"{prefix}_{timezone.now():%Y%m%d%H%M%S}{uuid.uuid4()}"


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
    if not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH:
        raise InvalidSendRequest(
            f"'tag' must be a string of at most {MAX_TAG_LENGTH} characters.", target="tag"
        )
    return SendRequest(str(sender), recipients, text, report, tag)


def _check_recipient(item: Any) -> Recipient:
    if not isinstance(item, dict) or "to" not in item:
        raise InvalidSendRequest(
            "Each recipient must be an object with 'to'.", target="smsRecipients"
        )
    request_id = item.get("repeatabilityRequestId")
    if request_id is not None:
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
            raise InvalidSendRequest(
                "'repeatabilityRequestId' must be a string of 1 to 64 characters.",
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
    with transaction.atomic():
        sending_number(resource, request.sender)
        wanted = [r.to for r in request.recipients if is_e164(r.to)]
        opted_out = optouts.opted_out(request.sender, wanted)
        request_ids = [r.repeatability_request_id for r in request.recipients]
        seen = {
            message.repeatability_request_id: message
            for message in SmsMessage.objects.filter(
                resource=resource, repeatability_request_id__in=[i for i in request_ids if i]
            )
        }
        info = segments.analyze(request.text)
        results: list[dict[str, Any]] = []
        rows: list[SmsMessage] = []
        for recipient in request.recipients:
            replay = seen.get(recipient.repeatability_request_id or "")
            if replay is not None:
                results.append(send_result(replay))
                continue
            if not is_e164(recipient.to):
                results.append(
                    _refused(recipient, "Invalid 'to' phone number: use E.164, e.g. +14255550123.")
                )
                continue
            row = SmsMessage(
                id=new_message_id(Direction.OUTBOUND),
                resource=resource,
                direction=Direction.OUTBOUND,
                sender=request.sender,
                recipient=recipient.to,
                text=request.text,
                encoding=info.encoding,
                segments=info.segments,
                tag=request.tag,
                delivery_report_requested=request.delivery_report,
                status=MessageStatus.QUEUED,
                repeatability_request_id=recipient.repeatability_request_id or "",
                lease_until=_lease(),
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
        SmsMessage.objects.bulk_create(rows)
        queued = [row.pk for row in rows if row.status == MessageStatus.QUEUED]
        if queued:
            _enqueue(queued)
    return results


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
    info = segments.analyze(text)
    message = SmsMessage.objects.create(
        id=new_message_id(Direction.OUTBOUND),
        resource=resource,
        direction=Direction.OUTBOUND,
        sender=sender,
        recipient=recipient,
        text=text,
        encoding=info.encoding,
        segments=info.segments,
        status=MessageStatus.QUEUED,
        lease_until=_lease(),
    )
    _enqueue([message.pk])
    return message


def _lease(after: datetime | None = None) -> datetime:
    return (after or timezone.now()) + timedelta(seconds=settings.SMS_JOB_LEASE_SECONDS)


def _enqueue(message_ids: list[str], *, countdown: float = 0) -> None:
    from apps.sms.tasks import send_messages

    def enqueue() -> None:
        if countdown > 0:
            send_messages.apply_async((message_ids,), countdown=countdown)
        else:
            send_messages.delay(message_ids)

    transaction.on_commit(enqueue)


# --- The delivery job ----------------------------------------------------------------------
def deliver(message_ids: Sequence[str]) -> None:
    """Hand the due messages among `message_ids` to the carrier and record every answer.

    Idempotent: only queued, due rows are claimed (row locks on PostgreSQL; SQLite's
    immediate transactions serialize claims), so a repeated or concurrent job sends nothing
    twice. Messages not yet due (pacing, backoff) are queued again for their time.
    A CarrierError from the carrier is an answer, recorded per message; anything else
    propagates and the claim runs out, so beat re-queues the rest.
    """
    claimed, soon = _claim(message_ids)
    _enqueue_later(soon, timezone.now())
    if not claimed:
        return
    carrier = carriers.get()
    for start in range(0, len(claimed), SUBMIT_CHUNK):
        chunk = claimed[start : start + SUBMIT_CHUNK]
        SmsMessage.objects.filter(pk__in=[m.pk for m in chunk]).update(
            submit_started_at=timezone.now(), carrier=carrier.name
        )
        outgoing = [carriers.Outgoing(m.pk, m.sender, m.recipient, m.text) for m in chunk]
        answers = dict((sent.message_id, answer) for sent, answer in carrier.submit(outgoing))
        _record_answers(chunk, answers)


def _wait(message: SmsMessage, now: datetime) -> bool:
    """Park a message until its `next_attempt_at`. One due soon gets a delayed task, so its
    lease covers that task's run; a later one is left to beat's sweep, which picks it up as
    soon as it is due (its lease ends then)."""
    due = message.next_attempt_at or now
    soon = (due - now).total_seconds() <= settings.SMS_JOB_LEASE_SECONDS
    message.lease_until = _lease(due) if soon else due
    return soon


def _enqueue_later(messages: list[SmsMessage], now: datetime) -> None:
    """Queue one delayed task for parked messages due soon (see `_wait`)."""
    from apps.sms.tasks import send_messages

    # Eager Celery (unit tests) cannot wait: there the sweep picks them up.
    if not messages or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    wait = min(((m.next_attempt_at or now) - now).total_seconds() for m in messages)
    send_messages.apply_async(([m.pk for m in messages],), countdown=max(wait, 0.05))


def _claim(message_ids: Sequence[str]) -> tuple[list[SmsMessage], list[SmsMessage]]:
    """Claim the due queued messages; reserve a pacing slot for the ones that have none.
    Returns the claimed rows and the parked ones a delayed task should take."""
    now = timezone.now()
    claimed: list[SmsMessage] = []
    deferred: list[SmsMessage] = []  # parked until due
    soon: list[SmsMessage] = []  # of those, due within a lease: a delayed task takes them
    with transaction.atomic():
        rows = list(
            SmsMessage.objects.select_for_update()
            .filter(pk__in=list(message_ids), status=MessageStatus.QUEUED)
            .order_by("created_at", "pk")
        )
        paces: dict[str, tuple[SenderPace, float]] = {}
        for message in rows:
            if message.next_attempt_at is None:
                # First attempt: take the sender's next free slot (its send rate).
                pace, rate = paces.get(message.sender) or _pace(message.sender, now)
                slot = max(now, pace.next_slot_at)
                pace.next_slot_at = slot + timedelta(seconds=message.segments / rate)
                paces[message.sender] = (pace, rate)
                message.next_attempt_at = slot
            if message.next_attempt_at > now + PACE_SLACK:
                if _wait(message, now):
                    soon.append(message)
                deferred.append(message)
                continue
            message.status = MessageStatus.SENDING
            message.lease_until = _lease(now)
            message.attempts += 1
            # A claim that ran out after submitting may have reached the carrier.
            message.possible_duplicate = (
                message.possible_duplicate or message.submit_started_at is not None
            )
            claimed.append(message)
        for pace, _rate in paces.values():
            pace.save(update_fields=["next_slot_at"])
        SmsMessage.objects.bulk_update(
            claimed + deferred,
            ["status", "next_attempt_at", "lease_until", "attempts", "possible_duplicate"],
        )
    return claimed, soon


def _pace(sender: str, now: datetime) -> tuple[SenderPace, float]:
    pace, _ = SenderPace.objects.get_or_create(number=sender, defaults={"next_slot_at": now})
    pace = SenderPace.objects.select_for_update().get(pk=pace.pk)
    if pace.segments_per_second:
        return pace, pace.segments_per_second
    number_type = (
        PhoneNumber.objects.filter(number=sender).values_list("number_type", flat=True).first()
    )
    rate = (
        settings.SMS_TOLL_FREE_SEGMENTS_PER_SECOND
        if number_type == NumberType.TOLL_FREE
        else settings.SMS_SEGMENTS_PER_SECOND
    )
    return pace, rate


def _record_answers(
    chunk: list[SmsMessage], answers: dict[str, carriers.Submitted | carriers.CarrierError]
) -> None:
    now = timezone.now()
    retry: list[SmsMessage] = []
    reports: list[tuple[SmsMessage, bool, str]] = []
    with transaction.atomic():
        for message in chunk:
            answer = answers.get(message.pk) or carriers.CarrierError("no answer from the carrier")
            message.lease_until = None
            message.submit_started_at = None  # the answer is known: a retry is no duplicate
            if isinstance(answer, carriers.Submitted):
                message.submissions += 1
                message.carrier_message_id = answer.carrier_message_id
                message.submitted_at = now
                message.status = MessageStatus.SENT
                if answer.delivered:
                    _finish(message, delivered=True, detail="Delivered to the handset.", at=now)
                    reports.append((message, True, message.status_detail))
            elif answer.permanent or _expired(message, now):
                reason = (
                    str(answer)
                    if answer.permanent
                    else f"Gave up after {message.attempts} attempts: {answer}"
                )
                _finish(message, delivered=False, detail=reason, at=now)
                reports.append((message, False, reason))
            else:
                message.status = MessageStatus.QUEUED
                message.status_detail = f"Retrying: {answer}"
                backoff = min(RETRY_BACKOFF_MAX_SECONDS, 2**message.attempts)
                message.next_attempt_at = now + timedelta(seconds=backoff)
                if _wait(message, now):
                    retry.append(message)
        SmsMessage.objects.bulk_update(
            chunk,
            [
                "status",
                "status_detail",
                "lease_until",
                "submit_started_at",
                "submissions",
                "carrier_message_id",
                "submitted_at",
                "finished_at",
                "next_attempt_at",
            ],
        )
        for message, delivered, detail in reports:
            _announce_report(message, delivered, detail)
    _enqueue_later(retry, now)
    _apply_early_receipts([m.carrier_message_id for m in chunk if m.carrier_message_id])


def _expired(message: SmsMessage, now: datetime) -> bool:
    return message.created_at < now - timedelta(minutes=settings.SMS_VALIDITY_MINUTES)


def _finish(message: SmsMessage, *, delivered: bool, detail: str, at: datetime) -> None:
    message.status = MessageStatus.DELIVERED if delivered else MessageStatus.FAILED
    message.status_detail = detail[:500]
    message.finished_at = at


def _announce_report(message: SmsMessage, delivered: bool, detail: str) -> None:
    if not message.delivery_report_requested:
        return
    now = timezone.now()
    data: dict[str, Any] = {
        "MessageId": message.pk,
        "From": message.sender,
        "To": message.recipient,
        "DeliveryStatus": "Delivered" if delivered else "Failed",
        "DeliveryStatusDetails": detail,
        "ReceivedTimestamp": rfc3339(now),
        "DeliveryAttempts": [
            {
                "Timestamp": rfc3339(message.submitted_at or now),
                "SegmentsSucceeded": message.segments if delivered else 0,
                "SegmentsFailed": 0 if delivered else message.segments,
            }
        ],
    }
    if message.tag:
        data["Tag"] = message.tag
    events.publish_event(
        message.resource,
        SMS_DELIVERY_REPORT,
        subject=f"/phonenumber/{message.sender.lstrip('+')}",
        data=data,
    )


def record_delivery_report(*, carrier_message_id: str, delivered: bool, detail: str = "") -> bool:
    """A carrier's delivery receipt. Marks the message delivered or failed and raises the
    delivery report event if the sender asked for one. A receipt for an id not recorded yet is
    kept and applied when it is (returns False then). Repeated receipts change nothing."""
    detail = detail or ("Delivered to the handset." if delivered else "Not delivered.")
    with transaction.atomic():
        message = (
            SmsMessage.objects.select_for_update()
            .select_related("resource")
            .filter(carrier_message_id=carrier_message_id, direction=Direction.OUTBOUND)
            .first()
        )
        if message is None:
            EarlyReceipt.objects.get_or_create(
                carrier_message_id=carrier_message_id,
                defaults={"delivered": delivered, "detail": detail[:500]},
            )
            return False
        if message.status in (MessageStatus.DELIVERED, MessageStatus.FAILED):
            return True
        _finish(message, delivered=delivered, detail=detail, at=timezone.now())
        message.save(update_fields=["status", "status_detail", "finished_at"])
        _announce_report(message, delivered, detail)
    return True


def _apply_early_receipts(carrier_message_ids: Iterable[str]) -> int:
    early = list(EarlyReceipt.objects.filter(carrier_message_id__in=list(carrier_message_ids)))
    for receipt in early:
        if record_delivery_report(
            carrier_message_id=receipt.carrier_message_id,
            delivered=receipt.delivered,
            detail=receipt.detail,
        ):
            receipt.delete()
    return len(early)


def sweep() -> int:
    """Beat: re-queue outbound messages whose claim or wait ran out (a killed worker, a lost
    broker message, a far-off pacing slot), and apply receipts that raced their submission.
    Returns how many messages were re-queued."""
    now = timezone.now()
    stale = list(
        SmsMessage.objects.filter(
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING], lease_until__lt=now
        )
        .order_by("lease_until")
        .values_list("pk", flat=True)[:5000]
    )
    for start in range(0, len(stale), MAX_RECIPIENTS):
        batch = stale[start : start + MAX_RECIPIENTS]
        with transaction.atomic():
            # A claimed row whose worker died goes back to the queue, due now.
            SmsMessage.objects.filter(pk__in=batch, status=MessageStatus.SENDING).update(
                status=MessageStatus.QUEUED, next_attempt_at=now
            )
            SmsMessage.objects.filter(pk__in=batch).update(lease_until=_lease(now))
            _enqueue(batch)
    old = EarlyReceipt.objects.filter(received_at__lt=now - timedelta(seconds=2))
    _apply_early_receipts(old.values_list("carrier_message_id", flat=True)[:1000])
    return len(stale)


# --- Inbound -------------------------------------------------------------------------------
def receive_sms(
    *, sender: str, recipient: str, text: str, carrier_message_id: str = ""
) -> SmsMessage | None:
    """A message from `sender` to one of this deployment's numbers. Stores it, handles
    STOP / START / HELP, and raises SMSReceived for the number's owner. A message to a number
    nobody owns (or that does not receive SMS) is dropped with a warning: returns None."""
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
    return message


# --- Reading -------------------------------------------------------------------------------
def access_message(resource: Resource, message_id: str) -> SmsMessage:
    from apps.sms.exceptions import MessageNotFound

    message = SmsMessage.objects.filter(resource=resource, pk=message_id).first()
    if message is None:
        raise MessageNotFound(f"No message {message_id} in this resource.")
    return message


def list_messages(
    resource: Resource, *, direction: str = "", status: str = "", number: str = ""
) -> Any:
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
