"""Metrics counted as they happen, where no row is kept to count them later: access tokens
issued (the platform's busiest call, so counted in memory and written in one batch every
TOKEN_TIME_FLUSH_SECONDS, as the identities' token times are: apps/core/batching.py)."""

from __future__ import annotations

import operator
from collections.abc import Hashable
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from apps.core.batching import BackgroundWriter


def _write(pending: dict[Hashable, Any]) -> None:
    from apps.metrics.models import MetricPoint
    from apps.metrics.rollup import FIVE_MINUTES, floor

    for key, count in pending.items():
        resource_id, metric, start = cast(tuple[Any, str, datetime], key)
        point = {
            "resource_id": resource_id,
            "metric": metric,
            "minutes": 5,
            "start": floor(start, FIVE_MINUTES),
        }
        # Several web processes add to one point: create it empty if missing, then add.
        MetricPoint.objects.bulk_create([MetricPoint(**point, value=0)], ignore_conflicts=True)
        MetricPoint.objects.filter(**point).update(value=F("value") + count)


_counts = BackgroundWriter(
    "metric-counts",
    _write,
    interval=lambda: settings.TOKEN_TIME_FLUSH_SECONDS,
    merge=operator.add,
)


def count(resource_id: Any, metric: str, n: int = 1) -> None:
    """Add `n` to `metric` of the resource for the current 5-minute interval."""
    from apps.metrics.rollup import FIVE_MINUTES, floor

    _counts.add((resource_id, metric, floor(timezone.now(), FIVE_MINUTES)), n)


def flush() -> None:
    _counts.flush()


def discard() -> None:
    _counts.discard()
