"""Jobs of the numbers app: operations, and beat's upkeep of holds, quarantines and leases."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from apps.numbers import carriers, orders

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=8)
def run_operation(self: Any, operation_id: str) -> None:
    """Advance a purchase, release or capability update. A transient carrier error retries
    with backoff; after the last retry the row stays unfinished and beat's sweeper re-queues it."""
    try:
        orders.run_operation(operation_id)
    except carriers.CarrierError as error:
        logger.warning("operation %s: carrier error, retrying: %s", operation_id, error)
        raise self.retry(exc=error, countdown=min(60, 2**self.request.retries)) from error


@shared_task
def expire_holds() -> int:
    return orders.expire_holds()


@shared_task
def end_quarantines() -> int:
    return orders.end_quarantines()


@shared_task
def requeue_stalled_operations() -> int:
    return orders.requeue_stalled_operations()
