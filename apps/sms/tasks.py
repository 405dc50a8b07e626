"""Jobs of the SMS app: delivering queued messages, and beat's re-queue of stalled ones."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from apps.sms import carriers, delivery

logger = logging.getLogger(__name__)


@shared_task
def drain() -> int:
    """Send every due queued message (in batches, whoever queued it). Carrier errors are
    answers recorded per message (transient ones wait for a retry); if this task dies, the
    messages' claims run out and beat's sweep queues them again."""
    return delivery.drain()


@shared_task
def sweep() -> int:
    return delivery.sweep()


@worker_process_init.connect
def _start_carrier(**kwargs: Any) -> None:
    # An SMPP bind must be up to receive inbound messages and receipts, even when idle.
    try:
        carriers.get().start()
    except Exception:
        logger.exception("could not start the SMS carrier")


@worker_process_shutdown.connect
def _stop_carrier(**kwargs: Any) -> None:
    carriers.reset()
