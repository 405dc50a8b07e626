"""The metrics rollup counts what the rows say: per 5-minute interval and per hour (sums, and
for gauges the highest), again and again without drift, late rows included, per resource and
never across them; tokens are counted as they are issued; the charts' series read it back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache

from apps.calls.models import Call
from apps.chat.models import ChatMessage, ChatThread
from apps.core.models import RequestLog
from apps.events.models import DeliveryAttempt, Event, EventDelivery, EventSubscription
from apps.metrics import rollup, services
from apps.metrics.models import MetricPoint
from apps.numbers.models import NumberStatus
from apps.sms.models import Direction, MessageStatus, SmsMessage

NOW = datetime(2026, 12, 5, 10, 7, 30, tzinfo=UTC)  # in the 10:05 interval
T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def points(resource: Any, minutes: int = 5) -> dict[tuple[datetime, str], float]:
    return {
        (point.start, point.metric): point.value
        for point in MetricPoint.objects.filter(resource=resource, minutes=minutes)
    }


def sms(
    resource: Any, at: datetime, direction: str, status: str, finished: datetime | None = None
) -> None:
    message = SmsMessage.objects.create(
        id=f"m-{uuid.uuid4()}",
        resource=resource,
        direction=direction,
        sender="+14255550100",
        recipient="+14255550101",
        text="hi",
        encoding="GSM",
        status=status,
        finished_at=finished,
    )
    SmsMessage.objects.filter(pk=message.pk).update(created_at=at)


def request(resource: Any, at: datetime, status: int) -> None:
    RequestLog.objects.create(
        at=at,
        kind=RequestLog.Kind.ACS,
        resource_slug=resource.slug,
        method="POST",
        route="sms",
        path="/sms",
        status=status,
        duration_ms=1.0,
        request_id=str(uuid.uuid4()),
    )


def call(
    resource: Any, created: datetime, connected: datetime | None, ended: datetime | None
) -> None:
    Call.objects.create(
        resource=resource,
        caller_raw_id="8:acs:x",
        created_at=created,
        connected_at=connected,
        ended_at=ended,
    )


def attempt(resource: Any, at: datetime, status_code: int | None) -> None:
    event = Event.objects.create(resource=resource, event_type="Test", event_time=at)
    subscription = EventSubscription.objects.create(
        resource=resource,
        name=f"s{uuid.uuid4().hex[:8]}",
        endpoint_url="https://example.com/hook",
        secret="x",
        validation_code="x",
        validation_expires_at=at,
    )
    delivery = EventDelivery.objects.create(
        resource=resource, event=event, subscription=subscription, expires_at=at + timedelta(days=1)
    )
    DeliveryAttempt.objects.create(delivery=delivery, started_at=at, status_code=status_code)


@pytest.fixture(autouse=True)
def no_watermark() -> None:
    cache.delete(rollup.WATERMARK)


def test_each_interval_counts_what_its_rows_say(
    resource: Any, other_resource: Any, make_numbers: Any
) -> None:
    # given traffic in the 10:00 and 10:05 intervals, and some of another resource
    for minute, status in ((1, 200), (2, 202), (3, 400), (4, 500), (6, 201)):
        request(resource, T0 + timedelta(minutes=minute), status)
    request(other_resource, T0 + timedelta(minutes=1), 200)
    sms(
        resource,
        T0 + timedelta(minutes=1),
        Direction.OUTBOUND,
        MessageStatus.DELIVERED,
        T0 + timedelta(minutes=6),
    )
    sms(
        resource,
        T0 + timedelta(minutes=2),
        Direction.OUTBOUND,
        MessageStatus.FAILED,
        T0 + timedelta(minutes=2),
    )
    sms(resource, T0 + timedelta(minutes=3), Direction.INBOUND, MessageStatus.RECEIVED)
    thread = ChatThread.objects.create(
        resource=resource, topic="t", created_by_raw_id="8:acs:x", created_at=T0
    )
    for n, kind in enumerate(("text", "html", "topicUpdated")):
        ChatMessage.objects.create(
            thread=thread, sequence_id=n + 1, type=kind, created_at=T0 + timedelta(minutes=2)
        )
    call(
        resource, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)
    )  # 3 min
    call(resource, T0 + timedelta(minutes=4), None, None)  # still ringing at 10:07
    attempt(resource, T0 + timedelta(minutes=2), 200)
    attempt(resource, T0 + timedelta(minutes=3), 500)
    attempt(resource, T0 + timedelta(minutes=6), None)
    numbers = make_numbers(2)
    for number in numbers:
        number.status, number.owner = NumberStatus.OWNED, resource
        number.save()

    # when the rollup runs at 10:07:30
    counted = rollup.run(NOW)

    # then each 5-minute interval holds its counts
    assert counted == rollup.RECOUNTED
    first, second = T0, T0 + timedelta(minutes=5)
    got = points(resource)
    assert got[(first, "requests.ok")] == 2 and got[(second, "requests.ok")] == 1
    assert (
        got[(first, "requests.client_errors")] == 1 and got[(first, "requests.server_errors")] == 1
    )
    assert got[(first, "sms.sent")] == 2 and got[(first, "sms.received")] == 1
    assert got[(first, "sms.failed")] == 1 and got[(second, "sms.delivered")] == 1
    assert (first, "sms.delivered") not in got
    assert got[(first, "chat.messages")] == 2  # the topic change is no message
    assert got[(first, "calls.started")] == 2 and got[(first, "calls.minutes")] == 3.0
    assert got[(first, "calls.active")] == 2 and got[(second, "calls.active")] == 1
    assert got[(first, "webhooks.attempts")] == 2 and got[(first, "webhooks.failures")] == 1
    assert got[(second, "webhooks.failures")] == 1  # no answer is a failure
    assert got[(second, "numbers.owned")] == 2 and (first, "numbers.owned") not in got
    # and the hour sums them, gauges at their highest
    hour = points(resource, 60)
    assert hour[(T0, "requests.ok")] == 3 and hour[(T0, "calls.active")] == 2
    assert hour[(T0, "sms.sent")] == 2 and hour[(T0, "numbers.owned")] == 2
    # and the other resource's request is its own
    assert points(other_resource)[(first, "requests.ok")] == 1
    assert (first, "requests.ok") in got and got[(first, "requests.ok")] == 2


def test_running_again_changes_nothing_and_late_rows_land(resource: Any) -> None:
    request(resource, T0 + timedelta(minutes=1), 200)
    rollup.run(NOW)
    before = points(resource), points(resource, 60)

    # when it runs again, nothing drifts
    rollup.run(NOW + timedelta(seconds=30))
    assert (points(resource), points(resource, 60)) == before

    # and a row written late into a recounted interval is counted the next time
    request(resource, T0 + timedelta(minutes=2), 200)
    rollup.run(NOW + timedelta(seconds=60))
    assert points(resource)[(T0, "requests.ok")] == 2
    assert points(resource, 60)[(T0, "requests.ok")] == 2


def test_after_a_pause_it_catches_up_from_where_it_stopped(resource: Any) -> None:
    rollup.run(T0 - timedelta(hours=3))
    request(resource, T0 - timedelta(hours=2), 200)  # while beat was stopped

    rollup.run(NOW)

    assert points(resource)[(T0 - timedelta(hours=2), "requests.ok")] == 1
    assert points(resource, 60)[(T0 - timedelta(hours=2), "requests.ok")] == 1


def test_tokens_are_counted_as_issued_and_kept_by_the_rollup(resource: Any, acs: Any) -> None:
    # when three tokens are issued (one with a new identity, two for it)
    created = acs.call("POST", "/identities", {"createTokenWithScopes": ["chat"]})
    raw_id = created.json()["identity"]["id"]
    for _ in range(2):
        assert (
            acs.call(
                "POST", f"/identities/{raw_id}/:issueAccessToken", {"scopes": ["voip"]}
            ).status_code
            == 200
        )

    # then the current interval counts them, and the rollup neither drops nor recounts them
    [point] = MetricPoint.objects.filter(resource=resource, metric="tokens.issued")
    assert point.value == 3
    rollup.run(point.start + timedelta(minutes=1))
    assert MetricPoint.objects.get(resource=resource, metric="tokens.issued", minutes=5).value == 3
    assert MetricPoint.objects.get(resource=resource, metric="tokens.issued", minutes=60).value == 3


def test_series_read_back_one_value_per_point(resource: Any, other_resource: Any) -> None:
    for minute in (1, 2, 6):
        request(resource, T0 + timedelta(minutes=minute), 200)
    request(other_resource, T0 + timedelta(minutes=1), 200)
    MetricPoint.objects.create(
        resource=resource, metric="numbers.owned", minutes=5, start=T0, value=4
    )
    rollup.run(NOW)

    data = services.series([resource.id], "1h", now=NOW)

    assert len(data["times"]) == 12 and data["times"][-1] == int(
        (T0 + timedelta(minutes=5)).timestamp()
    )
    assert data["metrics"]["requests.ok"][-2:] == [2, 1] and data["totals"]["requests.ok"] == 3
    # a gauge carries over an interval without a point
    assert data["metrics"]["numbers.owned"][-2:] == [4, 4]
    # all resources at once (staff)
    assert services.series(None, "1h", now=NOW)["totals"]["requests.ok"] == 4
    assert services.pick_range("5y") == "24h"


def test_old_points_are_pruned(resource: Any, settings: Any) -> None:
    settings.METRICS_DAYS = 30
    for minutes, age in (
        (5, timedelta(days=3)),
        (5, timedelta(hours=1)),
        (60, timedelta(days=31)),
        (60, timedelta(days=2)),
    ):
        MetricPoint.objects.create(
            resource=resource, metric="requests.ok", minutes=minutes, start=NOW - age, value=1
        )
    assert rollup.prune(NOW) == 2
    assert MetricPoint.objects.count() == 2


def test_counts_kept_in_memory_add_up_across_flushes(resource: Any, settings: Any) -> None:
    from apps.metrics import counters

    # given a web process that writes its counts every few seconds
    settings.TOKEN_TIME_FLUSH_SECONDS = 60
    counters.discard()
    try:
        for _ in range(3):
            counters.count(resource.id, "tokens.issued")
        assert not MetricPoint.objects.exists()  # nothing written on the hot path

        # when it flushes, twice (as two processes would add to one point)
        counters.flush()
        counters.count(resource.id, "tokens.issued", 2)
        counters.flush()

        # then the point holds every count
        assert MetricPoint.objects.get(resource=resource, metric="tokens.issued").value == 5
    finally:
        counters.discard()
