"""Read-only records of a resource's calls and rooms, for operators (the console).

Every list carries its counts as annotations, so a page of rows costs one query however
long it is. Nothing here changes state.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import BooleanField, Count, ExpressionWrapper, QuerySet
from django.utils import timezone

from apps.accounts.models import Resource
from apps.calls import rooms
from apps.calls.exceptions import CallNotFound
from apps.calls.models import Call, CallParticipant, Room

# The log's filters: a call is live until it has ended (the same test as the signaling's).
LIVE = "live"
ENDED = "ended"
STATES = (LIVE, ENDED)


def _calls(calls: QuerySet[Call]) -> QuerySet[Call]:
    return calls.annotate(participant_count=Count("participants")).order_by("-created_at", "-id")


def calls_of_resource(resource: Resource, state: str = "") -> QuerySet[Call]:
    """The resource's calls, newest first, each with `participant_count`; `state` is LIVE,
    ENDED, or anything else for all of them."""
    calls = Call.objects.filter(resource=resource)
    if state == LIVE:
        calls = calls.filter(ended_at__isnull=True)
    elif state == ENDED:
        calls = calls.filter(ended_at__isnull=False)
    return _calls(calls)


def call_of_resource(resource: Resource, call_id: str) -> Call:
    """A call of `resource` with its room and `participant_count`. Raises CallNotFound, also
    for another resource's call and for an id that is not a uuid."""
    try:
        pk = uuid.UUID(str(call_id))
    except ValueError:
        pk = None
    call = (
        _calls(Call.objects.filter(resource=resource, pk=pk)).select_related("room").first()
        if pk is not None
        else None
    )
    if call is None:
        raise CallNotFound(f"Call {call_id!r} was not found.")
    return call


def participants_of_call(call: Call) -> QuerySet[CallParticipant]:
    """Everyone who was in the call or was rung, the caller first, then in order of arrival."""
    return call.participants.order_by("-is_caller", "id")


def calls_of_room(room: Room) -> QuerySet[Call]:
    """The calls held in the room, newest first, each with `participant_count`."""
    return _calls(Call.objects.filter(room=room))


def rooms_of_resource(resource: Resource, at: datetime | None = None) -> QuerySet[Room]:
    """The resource's rooms, newest first, each with `participant_count`, `call_count` and
    `is_open` (whether `at`, by default now, falls in its validity window)."""
    at = at or timezone.now()
    return rooms.list_rooms(resource).annotate(
        participant_count=Count("participants", distinct=True),
        call_count=Count("calls", distinct=True),
        is_open=ExpressionWrapper(rooms.open_at(at), output_field=BooleanField()),
    )
