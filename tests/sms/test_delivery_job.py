"""The delivery job: pacing, retries, permanent failures, crash recovery, receipts."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.events.models import Event
from apps.metrics import health
from apps.sms import carriers, delivery, services
from apps.sms.carriers import CarrierError, Outgoing, Submitted
from apps.sms.models import EarlyReceipt, MessageStatus, SenderPace, SmsMessage


class ScriptedCarrier:
    """A carrier whose answers the test chooses; it counts what it was handed."""

    name = "scripted"

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.answer: Any = lambda message: Submitted(f"c-{message.message_id}")

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, chunks: Iterable[Sequence[Outgoing]]) -> Iterator[tuple[Outgoing, Any]]:
        for chunk in chunks:
            for message in chunk:
                self.submitted.append(message.message_id)
                yield message, self.answer(message)


@pytest.fixture
def carrier(monkeypatch: pytest.MonkeyPatch) -> ScriptedCarrier:
    scripted = ScriptedCarrier()
    monkeypatch.setattr(carriers, "get", lambda: scripted)
    return scripted


def accept(
    resource: Any, sender: str, *to: str, report: bool = False, text: str = "Hi"
) -> list[str]:
    request = services.SendRequest(
        sender, [services.Recipient(number) for number in to], text, delivery_report=report
    )
    # Accepted but not yet run: the test drives the job itself.
    return [result["messageId"] for result in services.send(resource, request)]


def test_a_sender_is_paced_at_its_rate_and_the_excess_waits(
    resource: Any, sender: str, carrier: ScriptedCarrier, settings: Any
) -> None:
    # given a long code limited to 1 segment per second, and 3 messages at once
    settings.SMS_SEGMENTS_PER_SECOND = 1.0
    ids = accept(resource, sender, "+447700900001", "+447700900002", "+447700900003")
    # when the job runs
    delivery.drain()
    # then one goes now and the others wait for their slots, 1 s apart; none is dropped
    assert carrier.submitted == ids[:1]
    waiting = SmsMessage.objects.filter(status=MessageStatus.QUEUED).order_by("next_attempt_at")
    slots = [m.next_attempt_at for m in waiting]
    assert len(slots) == 2
    assert timedelta(seconds=0.9) < slots[1] - slots[0] < timedelta(seconds=1.1)  # type: ignore[operator]
    # when their time comes, the job sends them without taking new slots
    SmsMessage.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now())
    delivery.drain()
    assert sorted(carrier.submitted) == sorted(ids)
    assert SmsMessage.objects.filter(status=MessageStatus.SENT).count() == 3


def test_toll_free_numbers_have_their_own_rate(
    resource: Any, own: Any, settings: Any, carrier: ScriptedCarrier
) -> None:
    settings.SMS_SEGMENTS_PER_SECOND = 1.0
    settings.SMS_TOLL_FREE_SEGMENTS_PER_SECOND = 10.0
    number = own(resource)
    number.number_type = "tollFree"
    number.save()
    accept(resource, number.number, *[f"+4477009000{n:02d}" for n in range(5)])
    delivery.drain()
    # 10 per second: the first 0.25 s of slots (3 messages) go at once
    assert len(carrier.submitted) == 3
    assert SenderPace.objects.get(number=number.number).next_slot_at > timezone.now()


def test_a_transient_error_retries_with_backoff_and_then_succeeds(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    # given a carrier that is busy once
    carrier.answer = lambda message: CarrierError("throttled")
    accept(resource, sender, "+447700900001")
    delivery.drain()
    message = SmsMessage.objects.get()
    # then the message waits for a retry, later than now
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at > timezone.now()  # type: ignore[operator]
    assert "throttled" in message.status_detail
    # when it is due again and the carrier has recovered
    carrier.answer = lambda message: Submitted("c-1")
    SmsMessage.objects.update(next_attempt_at=timezone.now())
    delivery.drain()
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert (message.attempts, message.submissions, message.possible_duplicate) == (2, 1, False)


def test_a_permanent_error_fails_the_message_with_its_reason(
    resource: Any, sender: str, carrier: ScriptedCarrier, django_capture_on_commit_callbacks: Any
) -> None:
    carrier.answer = lambda message: CarrierError("invalid destination", permanent=True)
    accept(resource, sender, "+447700900001", report=True)
    delivery.drain()
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.FAILED
    assert message.status_detail == "invalid destination"
    report = Event.objects.get(event_type__endswith="SMSDeliveryReportReceived")
    assert report.data["DeliveryStatus"] == "Failed"
    assert report.data["DeliveryAttempts"][0]["SegmentsFailed"] == 1


def test_messages_past_their_validity_stop_retrying(
    resource: Any, sender: str, carrier: ScriptedCarrier, settings: Any
) -> None:
    carrier.answer = lambda message: CarrierError("SMSC down")
    accept(resource, sender, "+447700900001")
    SmsMessage.objects.update(
        created_at=timezone.now() - timedelta(minutes=settings.SMS_VALIDITY_MINUTES + 1)
    )
    delivery.drain()
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "SMSC down" in message.status_detail


def test_a_repeated_job_sends_nothing_twice(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    ids = accept(resource, sender, "+447700900001", "+447700900002")
    delivery.drain()
    delivery.drain()
    assert sorted(carrier.submitted) == sorted(ids)


def test_a_worker_killed_before_submitting_loses_nothing_and_sends_once(
    resource: Any, sender: str, carrier: ScriptedCarrier, django_capture_on_commit_callbacks: Any
) -> None:
    # given messages claimed by a worker that died before handing them to the carrier
    ids = accept(resource, sender, "+447700900001")
    SmsMessage.objects.update(
        status=MessageStatus.SENDING, lease_until=timezone.now() - timedelta(seconds=1)
    )
    # when beat sweeps (eager Celery runs the job at once)
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.sweep() == 1
    # then the message is sent, once, and not marked as a possible duplicate
    message = SmsMessage.objects.get()
    assert carrier.submitted == ids
    assert message.status == MessageStatus.SENT and not message.possible_duplicate


def test_a_worker_killed_after_submitting_resends_and_marks_the_message(
    resource: Any, sender: str, carrier: ScriptedCarrier, django_capture_on_commit_callbacks: Any
) -> None:
    # given a message a dead worker had handed to the carrier, answer unrecorded
    ids = accept(resource, sender, "+447700900001")
    SmsMessage.objects.update(
        status=MessageStatus.SENDING,
        submit_started_at=timezone.now() - timedelta(seconds=40),
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    # when beat sweeps
    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()
    # then it is sent again and marked a possible duplicate
    message = SmsMessage.objects.get()
    assert carrier.submitted == ids
    assert message.status == MessageStatus.SENT
    assert message.possible_duplicate is True


def test_sweep_leaves_alone_messages_whose_job_is_on_its_way(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    accept(resource, sender, "+447700900001")
    assert delivery.sweep() == 0
    assert carrier.submitted == []


def test_a_sweep_with_nothing_to_put_back_only_reads(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    # given a message on its way and a receipt kept for a moment (neither is the sweep's)
    accept(resource, sender, "+447700900001")
    EarlyReceipt.objects.create(carrier_message_id="c-early", delivered=True, detail="")
    # when beat sweeps
    with CaptureQueriesContext(connection) as queries:
        assert delivery.sweep() == 0
    # then it wrote nothing: on SQLite a write would take the lock the web's commits wait for
    statements = [query["sql"].split(None, 1)[0].upper() for query in queries]
    assert statements and set(statements) == {"SELECT"}, statements


def test_a_chunk_is_claimed_in_four_statements_whatever_its_size(
    resource: Any, sender: str
) -> None:
    # given a sender that has sent before (its pace is stored), and 30 due messages from it
    accept(resource, sender, "+447700900100")
    delivery._claim(50, "loopback")
    ids = accept(resource, sender, *[f"+4477009000{n:02d}" for n in range(30)], text="Hello")
    # when a worker claims them
    with CaptureQueriesContext(connection) as queries:
        claimed = delivery._claim(50, "loopback")
    # then the claim's transaction, which holds SQLite's write lock that the web's commits
    # wait for, is four statements: the rows, the sender's pace, its new slot, the claim
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 4, "\n".join(s[:60] for s in statements)
    # and each message comes as stored, and is the carrier's now
    assert [m.pk for m in claimed] == ids
    assert all(m.text == "Hello" and m.created_at.tzinfo is not None for m in claimed)
    stored = SmsMessage.objects.filter(pk__in=ids)
    assert {(m.status, m.attempts, m.carrier) for m in stored} == {
        (MessageStatus.SENDING, 1, "loopback")
    }


def test_a_sweep_leaves_a_message_a_worker_claimed_after_its_read(
    resource: Any, sender: str, carrier: ScriptedCarrier, monkeypatch: Any
) -> None:
    # given a message whose claim ran out
    accept(resource, sender, "+447700900001")
    claim_ran_out = timezone.now() - timedelta(seconds=1)
    SmsMessage.objects.update(status=MessageStatus.SENDING, lease_until=claim_ran_out)
    # and a worker that claims it again between the sweep's read and its update
    claimed_until = timezone.now() + timedelta(seconds=60)
    atomic = transaction.atomic

    def claimed_first(*args: Any, **kwargs: Any) -> Any:
        SmsMessage.objects.update(lease_until=claimed_until)
        return atomic(*args, **kwargs)

    monkeypatch.setattr(delivery.transaction, "atomic", claimed_first)
    # when beat sweeps
    delivery.sweep()
    # then the fresh claim stands: the message is neither queued again nor its claim moved
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.SENDING
    assert message.lease_until == claimed_until
    assert carrier.submitted == []


def test_a_receipt_marks_the_message_delivered_once(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    ids = accept(resource, sender, "+447700900001", report=True)
    delivery.drain()
    # when the carrier's receipt arrives (twice, as SMSCs may redeliver)
    assert delivery.record_delivery_report(carrier_message_id=f"c-{ids[0]}", delivered=True)
    assert delivery.record_delivery_report(carrier_message_id=f"c-{ids[0]}", delivered=True)
    # then the message is delivered and one report event is raised
    assert SmsMessage.objects.get().status == MessageStatus.DELIVERED
    assert Event.objects.filter(event_type__endswith="SMSDeliveryReportReceived").count() == 1


def test_a_receipt_that_beats_the_submission_is_applied_later(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    ids = accept(resource, sender, "+447700900001")
    # given the SMSC's receipt arrives before the worker recorded the carrier's id
    assert not delivery.record_delivery_report(
        carrier_message_id=f"c-{ids[0]}", delivered=False, detail="stat:UNDELIV err:001"
    )
    # when the submission is recorded
    delivery.drain()
    # then the receipt applies
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "UNDELIV" in message.status_detail
    assert not EarlyReceipt.objects.exists()


def test_a_message_parked_beyond_a_lease_is_swept_as_soon_as_it_is_due(
    resource: Any,
    sender: str,
    carrier: ScriptedCarrier,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a sender paced at 1 per second, with leases of 1 s, and 3 messages at once
    settings.SMS_SEGMENTS_PER_SECOND = 1.0
    settings.SMS_JOB_LEASE_SECONDS = 1
    ids = accept(resource, sender, "+447700900001", "+447700900002", "+447700900003")
    delivery.drain()
    # then the last one, due in 2 s, waits for the sweep, which leaves it alone until then
    last = SmsMessage.objects.get(pk=ids[2])
    assert last.lease_until == last.next_attempt_at + delivery.PARKED_GRACE  # type: ignore[operator]
    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()
    assert ids[2] not in carrier.submitted
    # when its time has come, the sweep sends it
    SmsMessage.objects.filter(pk=ids[2]).update(
        next_attempt_at=timezone.now(), lease_until=timezone.now() - timedelta(milliseconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        delivery.sweep()
    assert ids[2] in carrier.submitted


def test_an_operator_may_give_one_number_its_own_rate(
    resource: Any, sender: str, carrier: ScriptedCarrier, settings: Any
) -> None:
    # given a deployment at 1 segment per second, and a number set to 20
    settings.SMS_SEGMENTS_PER_SECOND = 1.0
    SenderPace.objects.create(number=sender, next_slot_at=timezone.now(), segments_per_second=20)
    accept(resource, sender, *[f"+4477009000{n:02d}" for n in range(10)])
    # when the job runs, then 0.25 s of its slots (6 messages) go at once
    delivery.drain()
    assert len(carrier.submitted) == 6


def test_one_drain_carries_many_sends_and_a_new_one_is_asked_once_it_starts(
    resource: Any,
    sender: str,
    carrier: ScriptedCarrier,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given five sends while a drain is queued and not started
    queued: list[str] = []
    monkeypatch.setattr("apps.sms.tasks.drain.delay", lambda: queued.append("drain"))
    for n in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            accept(resource, sender, f"+44770090000{n}")
    # then one task was queued for all of them
    assert queued == ["drain"]
    # when it runs, it sends all five, and the next send asks for a new drain
    assert delivery.drain() == 5
    assert len(carrier.submitted) == 5
    with django_capture_on_commit_callbacks(execute=True):
        accept(resource, sender, "+447700900009")
    assert queued == ["drain", "drain"]


def test_a_message_from_a_number_released_meanwhile_fails_with_the_reason(
    resource: Any, sender: str
) -> None:
    # given a message accepted, then its number released before the job ran (loopback)
    from apps.numbers.models import NumberStatus, PhoneNumber

    accept(resource, sender, "+447700900001")
    PhoneNumber.objects.filter(number=sender).update(status=NumberStatus.QUARANTINED, owner=None)
    # when the job runs, then the message fails with a reason, and nothing is retried
    delivery.drain()
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "no longer a number" in message.status_detail


def test_receipts_in_a_batch_apply_to_known_messages_and_wait_for_the_others(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    # given one message the carrier took, and a receipt for one it has not answered yet
    [first] = accept(resource, sender, "+447700900001", report=True)
    delivery.drain()
    [second] = accept(resource, sender, "+447700900002")
    # when both receipts come in one batch
    delivery.record_delivery_reports(
        reports=[(f"c-{first}", True, "stat:DELIVRD"), (f"c-{second}", False, "stat:UNDELIV")]
    )
    # then the first is delivered (with its report), the second's receipt waits for its id
    assert SmsMessage.objects.get(pk=first).status == MessageStatus.DELIVERED
    assert Event.objects.filter(event_type__endswith="SMSDeliveryReportReceived").count() == 1
    assert list(EarlyReceipt.objects.values_list("carrier_message_id", flat=True)) == [
        f"c-{second}"
    ]
    delivery.drain()
    assert SmsMessage.objects.get(pk=second).status == MessageStatus.FAILED


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL's")
def test_receipts_are_stored_while_another_transaction_holds_the_resource(
    transactional_db: None, resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    # given messages the carrier took
    ids = accept(resource, sender, "+447700900001", "+447700900002")
    delivery.drain()
    resource_locked, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold_the_resource() -> None:  # as a number order or a SIP trunk change does
        try:
            with transaction.atomic():
                type(resource).objects.select_for_update().get(pk=resource.pk)
                resource_locked.set()
                done.wait(timeout=10)
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_resource)
    holder.start()
    try:
        assert resource_locked.wait(timeout=10)
        # when their receipts come meanwhile
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        delivery.record_delivery_reports(
            reports=[(f"c-{message_id}", True, "stat:DELIVRD") for message_id in ids]
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        done.set()
        holder.join(timeout=10)
    # then they are stored without waiting for it (locking the resource's row too made
    # batches of receipts deadlock one another, each holding a message the other wanted)
    assert not failures, failures
    stored = SmsMessage.objects.filter(pk__in=ids)
    assert {m.status for m in stored} == {MessageStatus.DELIVERED}


def test_receipts_for_no_message_are_dropped_after_an_hour(
    resource: Any, sender: str, carrier: ScriptedCarrier
) -> None:
    # given two receipts whose ids match no message: one kept since 61 minutes, one new
    delivery.record_delivery_reports(
        reports=[("c-never", False, "stat:UNDELIV"), ("c-soon", True, "stat:DELIVRD")]
    )
    EarlyReceipt.objects.filter(carrier_message_id="c-never").update(
        received_at=timezone.now() - timedelta(minutes=61)
    )
    assert health.unmatched_receipts() == 1  # staff see the one held over a minute

    # when beat sweeps
    delivery.sweep()

    # then the old one is gone, the new one still waits for its message
    assert list(EarlyReceipt.objects.values_list("carrier_message_id", flat=True)) == ["c-soon"]
    assert health.unmatched_receipts() == 0


# --- Recording behind (SMS_RECORD_BEHIND, on in production, off in the tests above) --------
# A delivering worker records a chunk's answers on a thread of its own while it submits the
# next chunk: every answer is stored, the next chunk reaches the carrier before the last one's
# answers are stored, and a recording that fails fails the drain and leaves its messages to
# the sweep.
RECIPIENTS = [f"+4477009{n:05d}" for n in range(160)]  # claimed as 100 (two chunks), then 60


def accept_all(resource: Any, sender: str, recipients: list[str]) -> list[str]:
    return [
        message_id
        for start in range(0, len(recipients), 40)
        for message_id in accept(resource, sender, *recipients[start : start + 40])
    ]


@pytest.fixture
def behind(settings: Any, transactional_db: None) -> None:
    """Recording on another thread, which sees only committed rows: a transactional test."""
    settings.SMS_RECORD_BEHIND = True
    cache.set(delivery.DRAIN_REQUESTED, 1)  # accept() queues no drain: the test runs it


def test_the_next_chunk_is_submitted_while_the_last_is_recorded(
    behind: None, resource: Any, sender: str, carrier: ScriptedCarrier, monkeypatch: Any
) -> None:
    second_chunk_handed = threading.Event()

    def answer(message: Outgoing) -> Submitted:
        if len(carrier.submitted) > delivery.SUBMIT_CHUNK:
            second_chunk_handed.set()
        return Submitted(f"c-{message.message_id}")

    carrier.answer = answer
    record = delivery._record_answers
    recorders: list[str] = []
    overlapped: list[bool] = []

    def record_slowly(answered: Any) -> None:
        recorders.append(threading.current_thread().name)
        if not overlapped:  # the first chunk's answers wait until the second chunk is sent
            overlapped.append(second_chunk_handed.wait(timeout=5))
        record(answered)

    monkeypatch.setattr(delivery, "_record_answers", record_slowly)
    ids = accept_all(resource, sender, RECIPIENTS[:60])  # two chunks
    # when a drain carries them
    assert delivery.drain() == len(ids)
    # then the second chunk went out while the first one's answers were being stored
    assert overlapped == [True]
    assert all(name.startswith("sms-record") for name in recorders) and len(recorders) == 2
    # and every answer is stored
    stored = SmsMessage.objects.filter(pk__in=ids)
    assert {m.status for m in stored} == {MessageStatus.SENT}
    assert {m.carrier_message_id for m in stored} == {f"c-{message_id}" for message_id in ids}


def test_a_recording_that_fails_fails_the_drain_and_the_messages_wait_for_the_sweep(
    behind: None, resource: Any, sender: str, carrier: ScriptedCarrier, monkeypatch: Any
) -> None:
    def fail(answered: Any) -> None:
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(delivery, "_record_answers", fail)
    ids = accept_all(resource, sender, RECIPIENTS)
    # when the drain's first recording fails
    with pytest.raises(DatabaseError):
        delivery.drain()
    # then it stops there: the chunk sent meanwhile went out, no later one
    assert len(carrier.submitted) == 2 * delivery.SUBMIT_CHUNK
    # and those messages stay claimed, marked as handed over, for the sweep to send again
    handed = SmsMessage.objects.filter(pk__in=carrier.submitted)
    assert set(handed.values_list("status", flat=True)) == {MessageStatus.SENDING}
    assert not handed.filter(submit_started_at__isnull=True).exists()
    # while the rest wait in the queue
    rest = SmsMessage.objects.filter(pk__in=ids).exclude(pk__in=carrier.submitted)
    assert set(rest.values_list("status", flat=True)) == {MessageStatus.QUEUED}
