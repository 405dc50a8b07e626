"""Platform-wide state: worker liveness, the request log."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.core.models import RequestLog, WorkerHeartbeat

HEARTBEAT_STALE_AFTER = timedelta(minutes=2)


def record_heartbeat(hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"last_seen": timezone.now()}
    )


def live_workers() -> QuerySet[WorkerHeartbeat]:
    return WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - HEARTBEAT_STALE_AFTER)


# --- The request log (apps/core/request_log.py) ---------------------------------------------
def forget_requests(resource_slug: str) -> None:
    """Drop a deleted resource's request log."""
    RequestLog.objects.filter(resource_slug=resource_slug).delete()


def prune_request_log() -> int:
    """Drop requests older than SPOOL_REQUEST_LOG_DAYS, in batches so that no single delete
    holds the database for long. Returns how many were dropped."""
    cutoff = timezone.now() - timedelta(days=settings.REQUEST_LOG_DAYS)
    dropped = 0
    while True:
        batch = list(RequestLog.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:5000])
        if not batch:
            return dropped
        dropped += RequestLog.objects.filter(pk__in=batch).delete()[0]


def list_requests(
    resource_slug: str,
    *,
    status: str = "",
    route: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[RequestLog]:
    """One resource's requests, newest first. `status`: a code (`404`) or a class (`4xx`)."""
    requests = RequestLog.objects.filter(resource_slug=resource_slug)
    if status.endswith("xx") and status[:1].isdigit():
        first = int(status[0]) * 100
        requests = requests.filter(status__gte=first, status__lt=first + 100)
    elif status.isdigit():
        requests = requests.filter(status=int(status))
    if route:
        requests = requests.filter(route=route)
    if since is not None:
        requests = requests.filter(at__gte=since)
    if until is not None:
        requests = requests.filter(at__lt=until)
    return requests.order_by("-at", "-pk")


def request_routes(resource_slug: str) -> list[str]:
    """The routes a resource's log holds, for the console's filter."""
    routes = RequestLog.objects.filter(resource_slug=resource_slug).values_list("route", flat=True)
    return sorted(set(routes.distinct()))
