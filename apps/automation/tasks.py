"""Jobs of Call Automation: delivering callbacks in order, the sweep, recording retention."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.automation import callbacks, services

logger = logging.getLogger(__name__)


@shared_task
def deliver_callbacks(connection_id: str) -> int:
    """Send the due callbacks of one call connection, in order. Never retried by Celery: a
    failed attempt schedules the next on the row, and `sweep` queues it when due."""
    return callbacks.deliver_pending(connection_id)


@shared_task
def sweep() -> int:
    queued = callbacks.sweep()
    if queued:
        logger.info("queued callbacks of %d call connections", queued)
    return queued


@shared_task
def prune_recordings() -> int:
    return services.prune_recordings()
