"""Jobs of the events app: one webhook attempt, and beat's sweep of due deliveries."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.events import dispatch, services

logger = logging.getLogger(__name__)


@shared_task
def deliver(delivery_id: str) -> str | None:
    """Make one attempt at delivery `delivery_id` (a UUID string) if it is due and free.

    Never retried by Celery: a failed attempt schedules the next one on the row, and `sweep`
    queues it when due. Returns the delivery's state after, or None if there was nothing to do.
    """
    return dispatch.deliver(delivery_id)


@shared_task
def sweep() -> int:
    """Queue every due delivery that no worker holds (bounded per run). Returns how many."""
    queued = dispatch.sweep()
    if queued:
        logger.info("queued %d due webhook deliveries", queued)
    return queued


@shared_task
def validate_subscription(subscription_id: str) -> str | None:
    """Make the handshake of subscription `subscription_id` (a UUID string) if it is
    validating and no other worker holds it. Never retried by Celery: `sweep` queues it again
    if its message was lost or its worker died. Returns the subscription's state after."""
    return services.validate_subscription(subscription_id)
