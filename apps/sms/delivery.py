"""The SMS delivery job: hand queued messages to the carrier, paced per sender, and record
every answer and receipt.

A message row is committed before any job runs (the API's promise). After the commit the
sender asks for a **drain**: one Celery task that claims every due queued message, whoever
queued it, a chunk at a time as the carrier takes them (an SMPP carrier takes the next chunk
while the last one's answers are on their way). While a drain is queued and not started,
further requests add nothing (a Redis key), so under load one task carries hundreds of
messages instead of one each; a drain that claims a full chunk asks for another, so a second
worker joins in.

Nothing is lost: a claim is a lease on the row; beat's sweep puts messages whose lease ran out
(a killed worker, a lost task) back in the queue and starts a drain. A message is marked
`possible_duplicate` when it is sent again after a claim that may have reached the carrier.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import Min
from django.utils import timezone

from apps.core import rows, sql
from apps.core.api import rfc3339
from apps.core.sql import column, table
from apps.events import services as events
from apps.metrics import exporter
from apps.numbers.models import NumberType, PhoneNumber
from apps.sms import carriers
from apps.sms.models import Direction, EarlyReceipt, MessageStatus, SenderPace, SmsMessage

logger = logging.getLogger(__name__)

Answer = carriers.Submitted | carriers.CarrierError  # a carrier's answer for one message

SMS_DELIVERY_REPORT = "Microsoft.Communication.SMSDeliveryReportReceived"
# A receipt that came before its message's carrier id is kept this long for it (seconds do).
EARLY_RECEIPT_KEEP = timedelta(hours=1)
# Messages are claimed as the carrier takes them, this many at a time, and its answers are
# recorded this many at a time. A worker killed mid-drain may have handed over at most four
# chunks whose answers are lost: two taken (one sent, the next going out), the answers gathered
# for the next recording and the recording not committed yet. They are sent again, marked
# possible duplicates. Larger chunks mean fewer writes per message (bench/sms.py, SMPP, 2
# workers: 20 -> 606/s, 50 -> 775/s) and a larger set to mark after a crash.
SUBMIT_CHUNK = 50
DRAIN_SECONDS = 10  # then a fresh task takes over (other work gets a turn)
RETRY_BACKOFF_MAX_SECONDS = 300
# A pacing slot this close is taken at once: waiting milliseconds is not worth a new task.
PACE_SLACK = timedelta(milliseconds=250)
# A parked message a scheduled drain did not take is taken by the sweep this much later.
PARKED_GRACE = timedelta(seconds=2)
DRAIN_REQUESTED = "sms:drain-requested"  # a drain is queued and has not started
DRAIN_SCHEDULED_AT = "sms:drain-scheduled-at"  # when the next delayed drain runs


def lease(after: datetime | None = None) -> datetime:
    return (after or timezone.now()) + timedelta(seconds=settings.SMS_JOB_LEASE_SECONDS)


# --- Asking for a drain ---------------------------------------------------------------------
def request_drain() -> None:
    """Start a drain after the current commit, unless one is queued and not started yet."""
    transaction.on_commit(_queue_drain)


def _queue_drain(*, force: bool = False) -> None:
    from apps.sms.tasks import drain

    try:
        if force or cache.add(DRAIN_REQUESTED, 1, timeout=settings.SMS_JOB_LEASE_SECONDS):
            drain.delay()
    except Exception:
        # The rows are committed; beat's sweep starts a drain once their lease runs out.
        logger.exception("could not queue an SMS drain")


def _schedule_drain(at: datetime, now: datetime) -> None:
    """A delayed drain for the next parked message, unless one runs by then already."""
    from apps.sms.tasks import drain

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # eager Celery (unit tests) cannot wait: the sweep takes parked messages
    planned = cache.get(DRAIN_SCHEDULED_AT)
    if planned is not None and planned <= at.timestamp():
        return
    cache.set(DRAIN_SCHEDULED_AT, at.timestamp(), timeout=settings.SMS_JOB_LEASE_SECONDS)
    drain.apply_async(countdown=max((at - now).total_seconds(), 0.05))


# --- The drain ------------------------------------------------------------------------------
def drain() -> int:
    """Send every due queued message, a chunk at a time, for up to DRAIN_SECONDS; returns how
    many were handed to the carrier. Safe to run in several workers at once: claims are
    row locks (skipped by the others on PostgreSQL; SQLite serializes writers)."""
    # Let a few more messages arrive first: under load a drain then carries many (fewer
    # transactions per message); meanwhile new messages see the request and queue nothing.
    time.sleep(settings.SMS_DRAIN_LINGER_MS / 1000)
    cache.delete(DRAIN_REQUESTED)  # before claiming: a message committed from now on asks again
    planned = cache.get(DRAIN_SCHEDULED_AT)
    if planned is not None and planned <= time.time():
        cache.delete(DRAIN_SCHEDULED_AT)
    with _Recorder() as recorder:
        sent = _submit(recorder, time.monotonic() + DRAIN_SECONDS)
    _schedule_next_parked()
    return sent


def _claims(carrier: str, deadline: float) -> Iterator[list[SmsMessage]]:
    """Claimed chunks, each claimed as the carrier takes it, until nothing is due or the
    drain's time is up."""
    while claimed := _claim(SUBMIT_CHUNK, carrier):
        if len(claimed) == SUBMIT_CHUNK and not settings.CELERY_TASK_ALWAYS_EAGER:
            _queue_drain()  # more is waiting: let another worker help
        yield claimed
        if time.monotonic() > deadline:
            _queue_drain()  # a fresh task takes over
            return


def _claim(limit: int, carrier: str) -> list[SmsMessage]:
    """Claim up to `limit` due queued messages, oldest first, for the carrier that takes them
    next, taking each sender's pacing slot for the ones that have none; a message whose slot
    is later is parked until then.

    In plain SQL, and the claimed rows made instances after the commit: the transaction holds
    SQLite's write lock, which the web's commits of accepted sends wait for, and the ORM's
    queries and instances took ~5 ms of its ~6 (profiled, bench/sms.py: claims held the lock
    a third of the time)."""
    now = timezone.now()
    messages = rows.columns(SmsMessage)
    at = {name: messages.names.index(name) for name in ("id", "sender", "segments")}
    next_attempt_at = messages.names.index("next_attempt_at")
    with transaction.atomic():
        due = sql.fetch(
            _due_query(_skip_locked()),
            [MessageStatus.QUEUED, _datetime(now + PACE_SLACK), limit],
        )
        paces: dict[str, tuple[SenderPace, float]] = {}
        claimed: list[tuple[Any, ...]] = []
        parked: dict[str, list[datetime]] = {}
        for row in due:
            if row[next_attempt_at] is None:
                sender = row[at["sender"]]
                pace, rate = paces.get(sender) or _pace(sender, now)
                slot = max(now, pace.next_slot_at)
                pace.next_slot_at = slot + timedelta(seconds=row[at["segments"]] / rate)
                paces[sender] = (pace, rate)
                if slot > now + PACE_SLACK:
                    parked[row[at["id"]]] = [slot, slot + PARKED_GRACE]
                    continue
            claimed.append(row)
        for pace, _rate in paces.values():
            sql.fetch(_pace_taken_query(), [_datetime(pace.next_slot_at), pace.pk])
        if parked:
            sql.update_each(SmsMessage, ["next_attempt_at", "lease_until"], parked)
        if claimed:
            sql.fetch(
                _claim_query(len(claimed)),
                [
                    MessageStatus.SENDING,
                    _datetime(now),
                    _datetime(lease(now)),
                    _datetime(now),  # from here a message may reach the carrier
                    carrier,
                    *(row[at["id"]] for row in claimed),
                ],
                prepare=len(claimed) == limit,  # full chunks repeat; the rest vary in size
            )
    # As read: this claim's changes are in the database only.
    return [messages.instance(row) for row in claimed]


@functools.cache
def _due_query(skip_locked: bool) -> str:
    """Up to a number of due queued messages, oldest first, every column, locked for the
    transaction (on PostgreSQL another worker's claim skips them; SQLite serializes
    writers)."""
    messages, name = rows.columns(SmsMessage), functools.partial(column, SmsMessage)
    return (
        f"SELECT {messages.select('m')} FROM {messages.table} m "
        f"WHERE m.{name('status')} = %s "
        f"AND (m.{name('next_attempt_at')} IS NULL OR m.{name('next_attempt_at')} <= %s) "
        f"ORDER BY m.{name('created_at')}, m.{name('id')} LIMIT %s"
        + (" FOR UPDATE SKIP LOCKED" if skip_locked else "")
    )


@functools.cache
def _claim_query(count: int) -> str:
    name = functools.partial(column, SmsMessage)
    return (
        f"UPDATE {table(SmsMessage)} SET {name('status')} = %s, "
        f"{name('next_attempt_at')} = %s, {name('lease_until')} = %s, "
        f"{name('attempts')} = {name('attempts')} + 1, "
        # A claim that ran out after it was handed over may have reached the carrier (the
        # right-hand sides read the row as it was).
        f"{name('possible_duplicate')} = CASE WHEN {name('submit_started_at')} IS NOT NULL "
        f"THEN TRUE ELSE {name('possible_duplicate')} END, "
        f"{name('submit_started_at')} = %s, {name('carrier')} = %s "
        f"WHERE {name('id')} IN ({', '.join(['%s'] * count)})"
    )


def _datetime(value: datetime) -> Any:
    """A datetime as the database stores it (SQLite: text in UTC)."""
    return sql.database().ops.adapt_datetimefield_value(value)


def _skip_locked() -> bool:
    return bool(connection.features.has_select_for_update_skip_locked)


def _pace(sender: str, now: datetime) -> tuple[SenderPace, float]:
    """The sender's pacing row, locked, and its rate (segments per second): one query, and
    two more the first time a number sends."""
    query = _pace_query(connection.features.has_select_for_update)
    found = sql.fetch(query, [sender])
    if not found:
        SenderPace.objects.get_or_create(number=sender, defaults={"next_slot_at": now})
        found = sql.fetch(query, [sender])
    (*row, number_type), paces = found[0], rows.columns(SenderPace)
    pace = paces.instance(row)
    if pace.segments_per_second:
        return pace, pace.segments_per_second
    toll_free = number_type == NumberType.TOLL_FREE
    rate = (
        settings.SMS_TOLL_FREE_SEGMENTS_PER_SECOND
        if toll_free
        else settings.SMS_SEGMENTS_PER_SECOND
    )
    return pace, rate


@functools.cache
def _pace_query(lock: bool) -> str:
    paces, name = rows.columns(SenderPace), functools.partial(column, SenderPace)
    return (
        f"SELECT {paces.select('p')}, n.{column(PhoneNumber, 'number_type')} "
        f"FROM {paces.table} p LEFT JOIN {table(PhoneNumber)} n "
        f"ON n.{column(PhoneNumber, 'number')} = p.{name('number')} "
        f"WHERE p.{name('number')} = %s" + (" FOR UPDATE OF p" if lock else "")
    )


@functools.cache
def _pace_taken_query() -> str:
    name = functools.partial(column, SenderPace)
    return f"UPDATE {table(SenderPace)} SET {name('next_slot_at')} = %s WHERE {name('id')} = %s"


def _schedule_next_parked() -> None:
    now = timezone.now()
    next_due = SmsMessage.objects.filter(
        status=MessageStatus.QUEUED, next_attempt_at__gt=now
    ).aggregate(at=Min("next_attempt_at"))["at"]
    if next_due is not None and next_due - now <= timedelta(seconds=settings.SMS_JOB_LEASE_SECONDS):
        _schedule_drain(next_due, now)


def _submit(recorder: _Recorder, deadline: float) -> int:
    """Hand due messages to the carrier a chunk at a time, each claimed as the carrier takes
    it, and record its answers SUBMIT_CHUNK at a time; returns how many were handed over."""
    carrier = carriers.get()
    taken: dict[str, SmsMessage] = {}  # handed to the carrier, not answered yet
    handed = 0

    def chunks() -> Iterator[list[carriers.Outgoing]]:
        nonlocal handed
        for chunk in _claims(carrier.name, deadline):
            taken.update((m.pk, m) for m in chunk)
            handed += len(chunk)
            yield [carriers.Outgoing(m.pk, m.sender, m.recipient, m.text) for m in chunk]

    answered: list[tuple[SmsMessage, Answer]] = []
    for sent, answer in carrier.submit(chunks()):
        answered.append((taken.pop(sent.message_id), answer))
        if len(answered) == SUBMIT_CHUNK:
            recorder.record(answered)
            answered = []
    unanswered = carriers.CarrierError("no answer from the carrier")
    answered += [(message, unanswered) for message in taken.values()]
    if answered:
        recorder.record(answered)
    return handed


class _Recorder:
    """Records answers on a thread of its own (SMS_RECORD_BEHIND) while the drain goes on
    submitting: the worker's database work and the SMSC's answers then overlap instead of
    taking turns. One recording at most is behind. A failed recording is raised by the next
    record() or when the drain ends."""

    def __init__(self) -> None:
        self._thread: ThreadPoolExecutor | None = None
        self._behind: Future[None] | None = None

    def __enter__(self) -> _Recorder:
        if settings.SMS_RECORD_BEHIND:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sms-record")
        return self

    def record(self, answered: list[tuple[SmsMessage, Answer]]) -> None:
        self._catch_up()
        if self._thread is None:
            _record_answers(answered)
        else:
            self._behind = self._thread.submit(_record_answers, answered)

    def _catch_up(self) -> None:
        behind, self._behind = self._behind, None
        if behind is not None:
            behind.result()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is None:
            return
        try:
            self._catch_up()
        finally:
            # The thread's own connection, closed before the thread ends (shutdown waits);
            # a failure to close must not hide a failed recording.
            self._thread.submit(connections.close_all)
            self._thread.shutdown()


def _record_answers(answered: list[tuple[SmsMessage, Answer]]) -> None:
    """Store the carrier's answers: a few grouped UPDATEs, not one per message."""
    now = timezone.now()
    submitted: list[SmsMessage] = []  # the carrier took it; a receipt follows
    delivered: list[SmsMessage] = []  # known delivered at once (loopback)
    failed: dict[str, list[SmsMessage]] = defaultdict(list)  # by reason
    retry: dict[int, list[SmsMessage]] = defaultdict(list)  # by backoff seconds
    expired = 0  # of the failed: retries ran out
    for message, answer in answered:
        if isinstance(answer, carriers.Submitted):
            message.carrier_message_id = answer.carrier_message_id
            (delivered if answer.delivered else submitted).append(message)
        elif answer.permanent:
            failed[str(answer)[:500]].append(message)
        elif _expired(message, now):
            attempts = message.attempts + 1  # this claim's increment is in the database only
            failed[f"Gave up after {attempts} attempts: {answer}"[:500]].append(message)
            expired += 1
        else:
            backoff = min(RETRY_BACKOFF_MAX_SECONDS, 2 ** (message.attempts + 1))
            message.status_detail = f"Retrying: {answer}"[:500]
            retry[backoff].append(message)
    settled = {"lease_until": None, "submit_started_at": None}
    with transaction.atomic():
        for group, status, detail in (
            (submitted, MessageStatus.SENT, ""),
            (delivered, MessageStatus.DELIVERED, "Delivered to the handset."),
        ):
            _record_taken(
                group,
                status=status,
                status_detail=detail,
                submitted_at=now,
                finished_at=now if status == MessageStatus.DELIVERED else None,
                **settled,
            )
        for reason, group in failed.items():
            _update(
                group,
                status=MessageStatus.FAILED,
                status_detail=reason,
                finished_at=now,
                **settled,
            )
        for backoff, group in retry.items():
            due = now + timedelta(seconds=backoff)
            _update(
                group,
                status=MessageStatus.QUEUED,
                status_detail=group[0].status_detail,
                next_attempt_at=due,
                lease_until=due + PARKED_GRACE,
                submit_started_at=None,
            )
        for message in delivered:
            _announce_report(message, True, "Delivered to the handset.", submitted_at=now)
        for reason, group in failed.items():
            for message in group:
                _announce_report(message, False, reason, submitted_at=now)
        # Counted for Prometheus once this commits.
        refused = sum(len(group) for group in failed.values()) - expired
        exporter.count_after_commit(exporter.SMS_SUBMITTED, len(submitted) + len(delivered))
        exporter.count_after_commit(exporter.SMS_DELIVERED, len(delivered))
        exporter.count_after_commit(exporter.SMS_FAILED.labels("refused"), refused)
        exporter.count_after_commit(exporter.SMS_FAILED.labels("expired"), expired)
        exporter.count_after_commit(exporter.SMS_RETRIED, sum(map(len, retry.values())))
    if submitted:
        _apply_early_receipts([m.carrier_message_id for m in submitted])


def _record_taken(messages: list[SmsMessage], **values: Any) -> None:
    """Each message's own carrier id and one more submission (the claim holds the row), and
    `values` on all, in one statement (sql.update_each): bulk_update's CASE WHEN, built
    through the ORM, took a third of a delivering worker's time (profiled, bench/sms.py), and
    an UPDATE per message cost PostgreSQL a plan each."""
    if messages:
        each = {m.pk: [m.carrier_message_id, m.submissions + 1] for m in messages}
        sql.update_each(SmsMessage, ["carrier_message_id", "submissions"], each, also=values)


def _update(group: list[SmsMessage], **values: Any) -> None:
    if group:
        SmsMessage.objects.filter(pk__in=[m.pk for m in group]).update(**values)


def _expired(message: SmsMessage, now: datetime) -> bool:
    return message.created_at < now - timedelta(minutes=settings.SMS_VALIDITY_MINUTES)


def _announce_report(
    message: SmsMessage, delivered: bool, detail: str, *, submitted_at: datetime | None
) -> None:
    """SMSDeliveryReportReceived, if the sender asked for delivery reports."""
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
                "Timestamp": rfc3339(submitted_at or now),
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


# --- Receipts -------------------------------------------------------------------------------
def record_delivery_report(*, carrier_message_id: str, delivered: bool, detail: str = "") -> bool:
    """One carrier receipt (see `record_delivery_reports`); returns False when it was kept
    for a message whose carrier id is not recorded yet."""
    reports = [(carrier_message_id, delivered, detail)]
    return carrier_message_id not in record_delivery_reports(reports=reports)


def record_delivery_reports(*, reports: list[tuple[str, bool, str]]) -> set[str]:
    """Carrier receipts (carrier id, delivered, detail), stored together: each message is
    delivered or failed, with the delivery report event if the sender asked for one. A
    receipt for an id not recorded yet (an SMSC may answer the submission and send the
    receipt at once) is kept and applied when the id is recorded. A repeated receipt changes
    nothing. Returns the carrier ids kept for later."""
    receipts = {
        carrier_id: (
            delivered,
            (detail or ("Delivered to the handset." if delivered else "Not delivered."))[:500],
        )
        for carrier_id, delivered, detail in reports
    }
    with transaction.atomic():
        matched = _apply_receipts(receipts)
        early = [carrier_id for carrier_id in receipts if carrier_id not in matched]
        EarlyReceipt.objects.bulk_create(
            [
                EarlyReceipt(
                    carrier_message_id=carrier_id,
                    delivered=receipts[carrier_id][0],
                    detail=receipts[carrier_id][1],
                )
                for carrier_id in early
            ],
            ignore_conflicts=True,
        )
    if not early:
        return set()
    # The worker may have recorded those ids while we stored the receipts (and looked for
    # early receipts just before they were committed): look once more, else the sweep does.
    return set(early) - _apply_early_receipts(early)


def _apply_receipts(receipts: dict[str, tuple[bool, str]]) -> set[str]:
    """Apply receipts by carrier id, grouped by outcome; returns the ids that matched a
    message (already final ones too: a repeated receipt changes nothing)."""
    with transaction.atomic():
        # Only the messages are locked (not the resource joined for the events), in key
        # order: two batches with receipts in common (a worker's recording applies receipts
        # that came early while the receipts thread stores more) then wait for each other
        # instead of deadlocking.
        messages = list(
            SmsMessage.objects.select_for_update(of=("self",))
            .select_related("resource")
            .filter(carrier_message_id__in=list(receipts), direction=Direction.OUTBOUND)
            .order_by("pk")
        )
        now = timezone.now()
        outcomes: dict[tuple[bool, str], list[SmsMessage]] = defaultdict(list)
        for message in messages:
            if message.status not in (MessageStatus.DELIVERED, MessageStatus.FAILED):
                outcomes[receipts[message.carrier_message_id]].append(message)
        for (delivered, detail), group in outcomes.items():
            status = MessageStatus.DELIVERED if delivered else MessageStatus.FAILED
            _update(group, status=status, status_detail=detail, finished_at=now)
            for message in group:
                _announce_report(message, delivered, detail, submitted_at=message.submitted_at)
            counter = exporter.SMS_DELIVERED if delivered else exporter.SMS_FAILED.labels("receipt")
            exporter.count_after_commit(counter, len(group))
    return {message.carrier_message_id for message in messages}


def _apply_early_receipts(carrier_message_ids: Iterable[str]) -> set[str]:
    """Apply kept receipts whose message id is recorded now; returns their carrier ids."""
    early = {
        receipt.carrier_message_id: (receipt.delivered, receipt.detail)
        for receipt in EarlyReceipt.objects.filter(carrier_message_id__in=list(carrier_message_ids))
    }
    if not early:
        return set()
    applied = _apply_receipts(early)
    EarlyReceipt.objects.filter(carrier_message_id__in=applied).delete()
    return applied


# --- Beat ------------------------------------------------------------------------------------
def sweep() -> int:
    """Put messages whose claim or wait ran out back in the queue (a killed worker, a lost
    task, a parked message nobody took) and start a drain; apply receipts that raced their
    submission. Returns how many messages were re-queued."""
    now = timezone.now()
    unfinished = [MessageStatus.QUEUED, MessageStatus.SENDING]
    # Read first: on SQLite a transaction here takes the write lock, which the web processes'
    # commits then wait for, every few seconds, and there is seldom anything to put back.
    stale = list(
        SmsMessage.objects.filter(status__in=unfinished, lease_until__lt=now).values_list(
            "pk", flat=True
        )[:10_000]
    )
    if stale:
        with transaction.atomic():
            # Still stale: a worker may have claimed or finished one since the read.
            still = SmsMessage.objects.filter(
                pk__in=stale, status__in=unfinished, lease_until__lt=now
            )
            # A claimed row whose worker died goes back to the queue, due now.
            still.filter(status=MessageStatus.SENDING).update(
                status=MessageStatus.QUEUED, next_attempt_at=now
            )
            still.update(lease_until=lease(now))
        transaction.on_commit(lambda: _queue_drain(force=True))
    old = EarlyReceipt.objects.filter(received_at__lt=now - timedelta(seconds=2))
    _apply_early_receipts(old.values_list("carrier_message_id", flat=True)[:1000])
    _drop_unmatched_receipts(now)
    return len(stale)


def _drop_unmatched_receipts(now: datetime) -> None:
    """Receipts kept an hour for a message that never came are for no message of ours (a
    carrier's mistake, or another platform's ids): dropped, so a carrier cannot fill the table.
    Staff see how many are held (apps/metrics/health.py)."""
    unmatched = EarlyReceipt.objects.filter(received_at__lt=now - EARLY_RECEIPT_KEEP)
    if not unmatched.exists():  # a delete takes the write lock on SQLite, even of nothing
        return
    dropped, _ = unmatched.delete()
    if dropped:
        logger.warning("dropped %d carrier receipts that matched no message in an hour", dropped)
