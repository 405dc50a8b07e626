"""Platform-wide state: worker liveness."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.core.models import WorkerHeartbeat

HEARTBEAT_STALE_AFTER = timedelta(minutes=2)


def record_heartbeat(hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"last_seen": timezone.now()}
    )


def live_workers() -> QuerySet[WorkerHeartbeat]:
    return WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - HEARTBEAT_STALE_AFTER)
