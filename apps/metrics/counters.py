"""Metrics counted as they happen, where no row is kept to count them later: access tokens
issued (the platform's busiest call, so counted in memory and written in one batch every
TOKEN_TIME_FLUSH_SECONDS, as the identities' token times are: apps/core/batching.py)."""

from __future__ import annotations

import operator
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any, cast

from django.conf import settings
from django.db.models import F

from apps.core.batching import BackgroundWriter


def _write(pending: dict[Hashable, Any]) -> None:
    from apps.metrics.models import MetricPoint

    for key, count in pending.items():
        resource_id, metric, start = cast(tuple[Any, str, int], key)
        point = {
            "resource_id": resource_id,
            "metric": metric,
            "minutes": 5,
            "start": datetime.fromtimestamp(start, tz=UTC),
        }
        # Several web processes add to one point: create it empty if missing, then add.
        MetricPoint.objects.bulk_create([MetricPoint(**point, value=0)], ignore_conflicts=True)
        MetricPoint.objects.filter(**point).update(value=F("value") + count)


INTERVAL_SECONDS = 300  # the 5-minute points of apps/metrics/rollup.py

_counts = BackgroundWriter(
    "metric-counts",
    _write,
    interval=lambda: settings.TOKEN_TIME_FLUSH_SECONDS,
    merge=operator.add,
)


def count(resource_id: Any, metric: str, n: int = 1) -> None:
    """Add `n` to `metric` of the resource for the current 5-minute interval (its start in
    seconds since the epoch: a datetime per call cost 1.5% of a token request, profiled)."""
    now = int(time.time())
    _counts.add((resource_id, metric, now - now % INTERVAL_SECONDS), n)


def flush() -> None:
    _counts.flush()


def discard() -> None:
    _counts.discard()
