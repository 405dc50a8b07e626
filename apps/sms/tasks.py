"""Jobs of the SMS app: delivering queued messages, and beat's re-queue of stalled ones."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from apps.sms import carriers, services

logger = logging.getLogger(__name__)


@shared_task
def send_messages(message_ids: list[str]) -> None:
    """Hand the due messages among `message_ids` to the carrier. Carrier errors are answers
    recorded per message (transient ones are re-queued with backoff); if this task dies, the
    messages' claims run out and beat's sweep re-queues them."""
    services.deliver(message_ids)


@shared_task
def sweep() -> int:
    return services.sweep()


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
