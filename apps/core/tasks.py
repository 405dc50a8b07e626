"""Platform upkeep tasks."""

from __future__ import annotations

from celery import shared_task

from apps.core import services


@shared_task(bind=True)
def heartbeat(self) -> None:  # type: ignore[no-untyped-def]
    """Record that this worker is alive (scheduled by beat every 30 seconds)."""
    services.record_heartbeat(self.request.hostname or "eager")
