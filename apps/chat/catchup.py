"""Catching up: what a reconnecting socket missed, replayed from the activity log.

A socket names the last sequence it saw of each thread it knows, and the last server time it
saw; the log answers with every later event (docs/chat.md, "Catching up").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Min, Q
from django.utils import timezone

from apps.accounts.models import CommunicationIdentity
from apps.accounts.services import TokenPrincipal
from apps.chat import notifications
from apps.chat.models import ChatActivity, ChatParticipant, ChatThread

RESUME_LIMIT = 1000
RESUME_MARGIN = timedelta(seconds=30)  # commits that took a while to land are not skipped


@dataclass
class Resumed:
    frames: list[dict[str, Any]]
    complete: bool  # False: more was missed than RESUME_LIMIT; the client must re-read


def missed_activity(
    principal: TokenPrincipal, cursors: dict[str, int], since: datetime | None
) -> Resumed:
    """What the socket of `principal` missed: for each thread it knows (`cursors`: thread id
    -> last sequence seen), every later event; for threads it does not know, every event
    since `since` (less a margin; the client drops what it already has by sequence).

    Not complete (the client must re-read through the API) when more than RESUME_LIMIT events
    are due, or some are older than the log keeps (SPOOL_CHAT_ACTIVITY_DAYS)."""
    identity = principal.identity
    my_threads = dict(
        ChatParticipant.objects.filter(identity=identity).values_list("thread_id", "added_sequence")
    )
    complete = _log_covers(identity.resource_id, cursors, since)
    frames: list[dict[str, Any]] = []
    me = str(identity.id)
    for activity in _activity_for(identity, my_threads, cursors, since):
        if activity.thread_id not in my_threads and me not in activity.also_to:
            continue  # a thread the identity has left: only its own removal is due
        if activity.thread_id in my_threads and activity.sequence < my_threads[activity.thread_id]:
            continue  # before the identity was added
        frames.append(
            notifications.frame(
                activity.thread,
                activity.sequence,
                activity.event,
                activity.data,
                me,
                at=activity.created_at,
                replay=True,
            )
        )
        if len(frames) > RESUME_LIMIT:
            return Resumed(frames[:RESUME_LIMIT], complete=False)
    return Resumed(frames, complete=complete)


def _log_covers(resource_id: Any, cursors: dict[str, int], since: datetime | None) -> bool:
    """Whether the activity log still holds everything after the client's cursors."""
    horizon = timezone.now() - timedelta(days=settings.CHAT_ACTIVITY_DAYS)
    if since is not None and since < horizon:
        return False
    if not cursors:
        return True
    first_kept = dict(
        ChatActivity.objects.filter(thread_id__in=list(cursors))
        .values("thread_id")
        .annotate(first=Min("sequence"))
        .values_list("thread_id", "first")
    )
    last = dict(
        ChatThread.objects.filter(pk__in=list(cursors), resource_id=resource_id).values_list(
            "pk", "last_sequence"
        )
    )
    for thread_id, seen in cursors.items():
        if last.get(thread_id, 0) > seen and first_kept.get(thread_id, seen + 2) > seen + 1:
            return False
    return True


def _activity_for(
    identity: CommunicationIdentity,
    my_threads: dict[str, int],
    cursors: dict[str, int],
    since: datetime | None,
) -> Iterable[ChatActivity]:
    condition = Q()
    for thread_id, last in cursors.items():
        condition |= Q(thread_id=thread_id, sequence__gt=last)
    unknown = [t for t in my_threads if t not in cursors]
    if since is not None and unknown:
        condition |= Q(thread_id__in=unknown, created_at__gte=since - RESUME_MARGIN)
    if not condition:
        return []
    return (
        ChatActivity.objects.filter(condition, thread__resource_id=identity.resource_id)
        .select_related("thread")
        .order_by("created_at", "thread_id", "sequence")[: RESUME_LIMIT + 1]
    )


def prune_activity() -> int:
    """Drop log entries older than SPOOL_CHAT_ACTIVITY_DAYS (messages stay; only the replay
    window for reconnecting sockets ends there)."""
    horizon = timezone.now() - timedelta(days=settings.CHAT_ACTIVITY_DAYS)
    deleted, _ = ChatActivity.objects.filter(created_at__lt=horizon).delete()
    return deleted
