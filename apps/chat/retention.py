"""Retention: a thread whose `threadCreationDate` policy has run out is deleted by the system,
as a participant's delete would (soft delete, a chatThreadDeleted frame to every participant,
the webhook events), with the events naming no deleter (reason `deletedByPolicy`)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.chat import services
from apps.chat.models import ChatThread

# Threads deleted per run at most; beat's next run takes the rest.
BATCH = 500


def expired_threads(now: datetime) -> QuerySet[ChatThread]:
    """Threads not yet deleted whose retention policy ran out by `now`."""
    return ChatThread.objects.filter(expires_at__lte=now, deleted_at__isnull=True)


def apply_retention(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """Delete up to `limit` threads whose retention policy has run out by `now` (default: the
    current time), oldest deadline first; returns how many went.

    Each thread goes in a transaction of its own with its row locked (select_for_update on
    PostgreSQL), checked again under the lock, so a thread whose policy was changed or removed,
    or that a participant deleted, since the first read is left alone. A run that fails
    part-way loses nothing: the next run finds the threads still due."""
    now = now or timezone.now()
    due = list(expired_threads(now).order_by("expires_at").values_list("pk", flat=True)[:limit])
    deleted = 0
    for thread_id in due:
        with transaction.atomic():
            thread = (
                expired_threads(now)
                .select_related("resource")
                .select_for_update(of=("self",))
                .filter(pk=thread_id)
                .first()
            )
            if thread is None:
                continue
            members = [str(i) for i in thread.participants.values_list("identity_id", flat=True)]
            services.do_delete_thread(thread, by=None, members=members)
            deleted += 1
    return deleted
