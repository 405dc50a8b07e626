"""Jobs of the chat app, run by beat: pruning the activity log, applying retention policies."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.chat import catchup, retention

logger = logging.getLogger(__name__)


@shared_task
def prune_activity() -> int:
    """Drop activity older than SPOOL_CHAT_ACTIVITY_DAYS; returns how many entries went."""
    return catchup.prune_activity()


@shared_task
def apply_retention() -> int:
    """Delete the threads whose retention policy (`threadCreationDate`) has run out; returns
    how many went. No retry: a run that fails leaves the rest due, and the next run (hourly,
    CELERY_BEAT_SCHEDULE "apply-chat-retention") takes them."""
    deleted = retention.apply_retention()
    if deleted:
        logger.info("Deleted %d chat threads whose retention policy ran out.", deleted)
    return deleted
