"""Reading the metrics for charts: one query per page, whatever the range or the traffic.

data = series([resource.id], "24h")   # {"range", "step", "times", "metrics": {name: [..]}}
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from apps.metrics import catalog
from apps.metrics.models import MetricPoint
from apps.metrics.rollup import FIVE_MINUTES, HOUR, floor

# A chart's range: how far back, and the points it is drawn from.
RANGES: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), FIVE_MINUTES),
    "6h": (timedelta(hours=6), FIVE_MINUTES),
    "24h": (timedelta(days=1), FIVE_MINUTES),
    "7d": (timedelta(days=7), HOUR),
    "30d": (timedelta(days=30), HOUR),
}
DEFAULT_RANGE = "24h"


def pick_range(value: str | None) -> str:
    return value if value in RANGES else DEFAULT_RANGE


def series(
    resource_ids: Iterable[Any] | None, range_name: str, now: datetime | None = None
) -> dict[str, Any]:
    """Every metric over `range_name` for the resources (None: all of them, summed), one value
    per point: counts per interval, gauges at their highest (carried over intervals with no
    point, as a gauge stays where it was)."""
    span, step = RANGES[pick_range(range_name)]
    now = now or timezone.now()
    last = floor(now, step)
    first = last - span + step
    times = [first + step * n for n in range(int(span / step))]
    points = MetricPoint.objects.filter(minutes=int(step.total_seconds() // 60), start__gte=first)
    if resource_ids is not None:
        points = points.filter(resource__in=list(resource_ids))
    rows = points.values("start", "metric").annotate(value=Sum("value"))
    by_metric: dict[str, dict[datetime, float]] = {metric.name: {} for metric in catalog.METRICS}
    for row in rows:
        if row["metric"] in by_metric:
            by_metric[row["metric"]][row["start"]] = row["value"]
    metrics: dict[str, list[float]] = {}
    for metric in catalog.METRICS:
        values = by_metric[metric.name]
        line, carried = [], 0.0
        for moment in times:
            value = values.get(moment)
            if metric.gauge:
                carried = value if value is not None else carried
                line.append(carried)
            else:
                line.append(round(value or 0.0, 2))
        metrics[metric.name] = line
    return {
        "range": pick_range(range_name),
        "step": int(step.total_seconds()),
        "times": [int(moment.timestamp()) for moment in times],
        "metrics": metrics,
        "labels": {metric.name: metric.label for metric in catalog.METRICS},
        "totals": {
            name: (line[-1] if catalog.BY_NAME[name].gauge else round(sum(line), 2))
            for name, line in metrics.items()
        },
    }
