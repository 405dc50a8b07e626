"""How the platform itself is doing, for staff: Celery's queues, its workers, and how far
behind deliveries are (webhooks due and not yet sent, SMS queued and not yet handed over)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min
from django.utils import timezone

from apps.core.models import WorkerHeartbeat
from apps.core.services import HEARTBEAT_STALE_AFTER

logger = logging.getLogger(__name__)

QUEUES = ("celery", "webhooks")  # spool/settings.py CELERY_TASK_ROUTES


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue (None: the broker did not say)."""
    from spool.celery import app

    depths: dict[str, int | None] = {}
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in QUEUES:
                try:
                    depths[queue] = int(
                        channel.queue_declare(queue=queue, passive=True).message_count
                    )
                except Exception:  # a queue nobody declared yet holds nothing
                    depths[queue] = 0
    except Exception:
        logger.warning("queue depths unknown: the broker did not answer", exc_info=True)
        return {queue: None for queue in QUEUES}
    return depths


def workers(now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    return [
        {
            "hostname": beat.hostname,
            "last_seen": beat.last_seen,
            "live": beat.last_seen >= now - HEARTBEAT_STALE_AFTER,
            "seconds_ago": int((now - beat.last_seen).total_seconds()),
        }
        # Workers gone for a day (an earlier run's) are history, not news.
        for beat in WorkerHeartbeat.objects.filter(last_seen__gte=now - timedelta(days=1)).order_by(
            "hostname"
        )
    ]


def delivery_lag(now: datetime | None = None) -> dict[str, float]:
    """Seconds the oldest due webhook and the oldest queued SMS have waited (0: none waits)."""
    from apps.events.models import DeliveryState, EventDelivery
    from apps.sms.models import MessageStatus, SmsMessage

    now = now or timezone.now()
    due = EventDelivery.objects.filter(
        state=DeliveryState.PENDING, next_attempt_at__lte=now
    ).aggregate(oldest=Min("next_attempt_at"))["oldest"]
    queued = SmsMessage.objects.filter(status=MessageStatus.QUEUED).aggregate(
        oldest=Min("created_at")
    )["oldest"]
    return {
        "webhooks": max(0.0, (now - due).total_seconds()) if due else 0.0,
        "sms": max(0.0, (now - queued).total_seconds()) if queued else 0.0,
    }


def unmatched_receipts(now: datetime | None = None) -> int:
    """Carrier receipts held for a minute or more for a message not recorded: a carrier
    sending ids that are not ours (they are dropped after an hour)."""
    from apps.sms.models import EarlyReceipt

    now = now or timezone.now()
    return EarlyReceipt.objects.filter(received_at__lt=now - timedelta(minutes=1)).count()
