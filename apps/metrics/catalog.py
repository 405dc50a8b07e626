"""What the console charts, in one place: each metric's name and label, whether it is a gauge
(an hour is its highest 5-minute value, not their sum), and the sources that count them per
resource over an interval from the rows the platform keeps anyway. Tokens keep no row: they are
counted as they are issued (apps/metrics/counters.py).

    values = measure(start, end)   # {(resource id, metric name): value} over [start, end)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    gauge: bool = False


METRICS = [
    Metric("requests.ok", "API requests: succeeded"),
    Metric("requests.client_errors", "API requests: refused (4xx)"),
    Metric("requests.server_errors", "API requests: failed (5xx)"),
    Metric("tokens.issued", "Access tokens issued"),
    Metric("sms.sent", "SMS sent"),
    Metric("sms.delivered", "SMS delivered"),
    Metric("sms.failed", "SMS failed"),
    Metric("sms.received", "SMS received"),
    Metric("chat.messages", "Chat messages"),
    Metric("calls.started", "Calls started"),
    Metric("calls.minutes", "Call minutes"),
    Metric("calls.active", "Calls in progress", gauge=True),
    Metric("webhooks.attempts", "Webhook deliveries"),
    Metric("webhooks.failures", "Webhook deliveries failed"),
    Metric("numbers.owned", "Phone numbers owned", gauge=True),
]
BY_NAME = {metric.name: metric for metric in METRICS}
# Counted as they happen, never by the rollup.
COUNTED_LIVE = frozenset({"tokens.issued"})
# Known only as they are now: taken in the interval that holds now, kept after it.
COUNTED_NOW = frozenset({"numbers.owned"})

Values = dict[tuple[Any, str], float]


def _add(values: Values, rows: Any, key: str, names: dict[str, str]) -> None:
    for row in rows:
        for field, metric in names.items():
            value = row[field]
            if isinstance(value, timedelta):
                value = value.total_seconds() / 60
            if value:
                values[(row[key], metric)] = float(value)


def _requests(start: datetime, end: datetime, now: datetime) -> Values:
    from apps.accounts.models import Resource
    from apps.core.models import RequestLog

    rows = list(
        RequestLog.objects.filter(kind=RequestLog.Kind.ACS, at__gte=start, at__lt=end)
        .values("resource_slug")
        .annotate(
            ok=Count("id", filter=Q(status__lt=400)),
            client=Count("id", filter=Q(status__gte=400, status__lt=500)),
            server=Count("id", filter=Q(status__gte=500)),
        )
    )
    ids = dict(
        Resource.objects.filter(slug__in=[row["resource_slug"] for row in rows]).values_list(
            "slug", "id"
        )
    )
    values: Values = {}
    known = [
        dict(row, resource=ids[row["resource_slug"]]) for row in rows if row["resource_slug"] in ids
    ]
    _add(
        values,
        known,
        "resource",
        {
            "ok": "requests.ok",
            "client": "requests.client_errors",
            "server": "requests.server_errors",
        },
    )
    return values


def _sms(start: datetime, end: datetime, now: datetime) -> Values:
    from apps.sms.models import Direction, MessageStatus, SmsMessage

    values: Values = {}
    created = (
        SmsMessage.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("resource")
        .annotate(
            sent=Count("id", filter=Q(direction=Direction.OUTBOUND)),
            received=Count("id", filter=Q(direction=Direction.INBOUND)),
        )
    )
    _add(values, created, "resource", {"sent": "sms.sent", "received": "sms.received"})
    finished = (
        SmsMessage.objects.filter(
            finished_at__gte=start, finished_at__lt=end, direction=Direction.OUTBOUND
        )
        .values("resource")
        .annotate(
            delivered=Count("id", filter=Q(status=MessageStatus.DELIVERED)),
            failed=Count("id", filter=Q(status=MessageStatus.FAILED)),
        )
    )
    _add(values, finished, "resource", {"delivered": "sms.delivered", "failed": "sms.failed"})
    return values


def _chat(start: datetime, end: datetime, now: datetime) -> Values:
    from apps.chat.models import ChatMessage

    rows = (
        ChatMessage.objects.filter(created_at__gte=start, created_at__lt=end)
        .filter(type__in=["text", "html"])
        .values("thread__resource")
        .annotate(messages=Count("id"))
    )
    values: Values = {}
    _add(values, rows, "thread__resource", {"messages": "chat.messages"})
    return values


def _calls(start: datetime, end: datetime, now: datetime) -> Values:
    from apps.calls.models import Call

    values: Values = {}
    started = (
        Call.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("resource")
        .annotate(started=Count("id"))
    )
    _add(values, started, "resource", {"started": "calls.started"})
    talked = ExpressionWrapper(F("ended_at") - F("connected_at"), output_field=DurationField())
    ended = (
        Call.objects.filter(ended_at__gte=start, ended_at__lt=end, connected_at__isnull=False)
        .values("resource")
        .annotate(minutes=Sum(talked))
    )
    _add(values, ended, "resource", {"minutes": "calls.minutes"})
    # In progress at any moment of the interval: begun before its end, and not ended before
    # its start. Two queries, each a range of an index: those that ended since (nothing ends
    # in the future, so "since" has an end too, which keeps the database on the ended_at
    # index), and those not ended yet (the live ones). One query with an OR would read every
    # call begun before the interval's end.
    active: dict[Any, float] = defaultdict(float)
    ended_since = {"ended_at__gte": start, "ended_at__lte": now + timedelta(minutes=1)}
    for in_progress in (
        Call.objects.filter(**ended_since, created_at__lt=end),
        Call.objects.filter(ended_at__isnull=True, created_at__lt=end),
    ):
        for row in in_progress.values("resource").annotate(count=Count("id")):
            active[row["resource"]] += row["count"]
    for resource, count in active.items():
        values[(resource, "calls.active")] = count
    return values


def _webhooks(start: datetime, end: datetime, now: datetime) -> Values:
    from apps.events.models import DeliveryAttempt

    failed = Q(status_code__isnull=True) | Q(status_code__lt=200) | Q(status_code__gte=300)
    rows = (
        DeliveryAttempt.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("delivery__resource")
        .annotate(attempts=Count("id"), failures=Count("id", filter=failed))
    )
    values: Values = {}
    _add(
        values,
        rows,
        "delivery__resource",
        {"attempts": "webhooks.attempts", "failures": "webhooks.failures"},
    )
    return values


SOURCES: list[Callable[[datetime, datetime, datetime], Values]] = [
    _requests,
    _sms,
    _chat,
    _calls,
    _webhooks,
]


def numbers_owned() -> Values:
    """Numbers each resource owns now (a gauge only the interval holding now can take)."""
    from apps.numbers.models import NumberStatus, PhoneNumber

    rows = (
        PhoneNumber.objects.filter(status=NumberStatus.OWNED, owner__isnull=False)
        .values("owner")
        .annotate(owned=Count("pk"))
    )
    values: Values = {}
    _add(values, rows, "owner", {"owned": "numbers.owned"})
    return values


def measure(start: datetime, end: datetime, *, now: datetime | None = None) -> Values:
    """Every rolled-up metric of every resource over [start, end) (the gauges of now too when
    the interval holds `now`)."""
    now = now or timezone.now()
    values: Values = {}
    for source in SOURCES:
        values.update(source(start, end, now))
    if start <= now < end:
        values.update(numbers_owned())
    return values
