"""The rollup (beat, every minute): counts the last few 5-minute intervals again from the rows
(apps/metrics/catalog.py: late rows, a message delivered a while after it was sent, still
land), then makes each touched hour from its 5-minute points (a sum, or for gauges the
highest). After a pause (beat stopped) it starts from where it left off, two days back at
most; 5-minute points older than that and hourly points older than SPOOL_METRICS_DAYS go."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from apps.metrics import catalog
from apps.metrics.models import MetricPoint

FIVE_MINUTES = timedelta(minutes=5)
HOUR = timedelta(hours=1)
RECOUNTED = 3  # the last intervals counted again each run (late rows)
FINE_KEPT = timedelta(days=2)
WATERMARK = "spool:metrics:rolled-until"  # the start of the newest interval counted


def floor(moment: datetime, size: timedelta) -> datetime:
    seconds = int(size.total_seconds())
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=moment.tzinfo)


def run(now: datetime | None = None) -> int:
    """Count what is due; returns how many 5-minute intervals were counted."""
    now = now or timezone.now()
    current = floor(now, FIVE_MINUTES)
    first = current - FIVE_MINUTES * (RECOUNTED - 1)
    rolled_until = cache.get(WATERMARK)
    if isinstance(rolled_until, datetime) and rolled_until < first:
        first = max(rolled_until, current - FINE_KEPT)
    starts = []
    start = first
    while start <= current:
        starts.append(start)
        start += FIVE_MINUTES
    for start in starts:
        _count_interval(start, now)
    for hour in sorted({floor(start, HOUR) for start in starts}):
        _make_hour(hour)
    cache.set(WATERMARK, current, None)
    return len(starts)


def _count_interval(start: datetime, now: datetime) -> None:
    values = catalog.measure(start, start + FIVE_MINUTES, now=now)
    points = [
        MetricPoint(resource_id=resource, metric=metric, minutes=5, start=start, value=value)
        for (resource, metric), value in values.items()
    ]
    kept = set(catalog.COUNTED_LIVE)
    if not start <= now < start + FIVE_MINUTES:
        kept |= catalog.COUNTED_NOW  # only the interval holding now takes a new value
    with transaction.atomic():
        MetricPoint.objects.filter(minutes=5, start=start).exclude(metric__in=kept).delete()
        MetricPoint.objects.bulk_create(
            points,
            update_conflicts=True,
            unique_fields=["resource", "minutes", "metric", "start"],
            update_fields=["value"],
        )


def _make_hour(hour: datetime) -> None:
    rows = (
        MetricPoint.objects.filter(minutes=5, start__gte=hour, start__lt=hour + HOUR)
        .values("resource", "metric")
        .annotate(total=Sum("value"), peak=Max("value"))
    )
    points = [
        MetricPoint(
            resource_id=row["resource"],
            metric=row["metric"],
            minutes=60,
            start=hour,
            value=row["peak"] if _is_gauge(row["metric"]) else row["total"],
        )
        for row in rows
    ]
    with transaction.atomic():
        MetricPoint.objects.filter(minutes=60, start=hour).delete()
        MetricPoint.objects.bulk_create(points)


def _is_gauge(name: str) -> bool:
    metric = catalog.BY_NAME.get(name)
    return metric is not None and metric.gauge


def prune(now: datetime | None = None) -> int:
    now = now or timezone.now()
    fine, _ = MetricPoint.objects.filter(minutes=5, start__lt=now - FINE_KEPT).delete()
    kept = timedelta(days=settings.METRICS_DAYS)
    coarse, _ = MetricPoint.objects.filter(minutes=60, start__lt=now - kept).delete()
    return fine + coarse
