"""Jobs of the chat app: beat's pruning of the activity log."""

from __future__ import annotations

from celery import shared_task

from apps.chat import catchup


@shared_task
def prune_activity() -> int:
    """Drop activity older than SPOOL_CHAT_ACTIVITY_DAYS; returns how many entries went."""
    return catchup.prune_activity()
