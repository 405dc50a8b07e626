"""Platform upkeep tasks."""

from __future__ import annotations

from celery import shared_task

from apps.core import services


@shared_task(bind=True)
def heartbeat(self) -> None:  # type: ignore[no-untyped-def]
    """Record that this worker is alive (scheduled by beat every 30 seconds)."""
    services.record_heartbeat(self.request.hostname or "eager")


@shared_task
def prune_request_log() -> None:
    """Drop requests past SPOOL_REQUEST_LOG_DAYS (scheduled by beat every hour)."""
    services.prune_request_log()
