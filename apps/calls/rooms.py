"""Rooms, as the ACS Rooms API has them: a place for calls with a validity window and
participants with roles (Presenter, Attendee, Consumer, Collaborator).

Rules: a room lasts at most 180 days and must not be over when created or changed; every
participant is an identity of the room's resource (anything else refuses the whole request,
which changes nothing); a repeated Repeatability-Request-Id answers with the room it created.
Only participants may join a room's calls, with what their role allows (calls build on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, Resource
from apps.calls.exceptions import InvalidRoomRequest, RoomNotFound
from apps.calls.models import Room, RoomParticipant, RoomRole
from apps.core.api import body_flag, parse_rfc3339
from apps.core.parsers import is_single_line

MAX_VALIDITY = timedelta(days=180)
MAX_PARTICIPANTS = 1000
MAX_REPEATABILITY_ID = 100


def _time(body: dict[str, Any], field: str) -> datetime | None:
    value = body.get(field)
    if value is None:  # the SDK sends explicit nulls for "not given"
        return None
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise InvalidRoomRequest(f"{field} must be an RFC 3339 date-time.", target=field)
    return parsed


def _longest_from(valid_from: datetime) -> datetime:
    """The default validUntil: validFrom plus the longest validity. Raises InvalidRoomRequest
    when that is past the last date there is (a validFrom in December 9999)."""
    try:
        return valid_from + MAX_VALIDITY
    except OverflowError:
        raise InvalidRoomRequest(
            "validFrom is too far in the future.", target="validFrom"
        ) from None


def _check_window(valid_from: datetime, valid_until: datetime) -> None:
    if valid_until <= valid_from:
        raise InvalidRoomRequest("validUntil must be after validFrom.", target="validUntil")
    if valid_until - valid_from > MAX_VALIDITY:
        raise InvalidRoomRequest(
            "A room is valid for at most 180 days (validUntil - validFrom).", target="validUntil"
        )
    if valid_until <= timezone.now():
        raise InvalidRoomRequest("validUntil must be in the future.", target="validUntil")


@dataclass(frozen=True)
class RoleChange:
    identity: CommunicationIdentity
    role: str | None  # None: remove


def _check_participants(resource: Resource, value: Any, *, removals: bool) -> list[RoleChange]:
    """`{rawId: {role} | null}` as RoleChanges. Raises InvalidRoomRequest naming the first
    participant that is not an identity of `resource` or has no valid role."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidRoomRequest("participants must map raw ids to roles.", target="participants")
    if len(value) > MAX_PARTICIPANTS:
        raise InvalidRoomRequest(
            f"At most {MAX_PARTICIPANTS} participants at once.", target="participants"
        )
    wanted = {raw_id: accounts.parse_raw_id(resource, raw_id) for raw_id in value}
    found = {
        i.id: i
        for i in CommunicationIdentity.objects.filter(
            resource=resource, pk__in=[v for v in wanted.values() if v]
        )
    }
    changes = []
    for raw_id, properties in value.items():
        identity_id = wanted[raw_id]
        identity = found.get(identity_id) if identity_id else None
        if identity is None:
            raise InvalidRoomRequest(
                f"Participant {raw_id!r} is not an identity of this resource.", target=raw_id
            )
        if properties is None and removals:
            changes.append(RoleChange(identity, None))
            continue
        role = properties.get("role") if isinstance(properties, dict) else None
        if role not in RoomRole.values:
            raise InvalidRoomRequest(
                f"The role of {raw_id!r} must be one of {', '.join(RoomRole.values)}.",
                target=raw_id,
            )
        changes.append(RoleChange(identity, role))
    return changes


def create_room(
    resource: Resource, body: dict[str, Any], *, repeatability_request_id: str = ""
) -> Room:
    """Create a room (validity defaults: from now, for 180 days). Raises InvalidRoomRequest."""
    repeatability_request_id = (repeatability_request_id or "").strip()
    if len(repeatability_request_id) > MAX_REPEATABILITY_ID or not is_single_line(
        repeatability_request_id
    ):
        raise InvalidRoomRequest(
            "Repeatability-Request-Id is at most 100 characters, without control characters.",
            target="Repeatability-Request-Id",
        )
    if repeatability_request_id:
        earlier = Room.objects.filter(
            resource=resource, repeatability_request_id=repeatability_request_id
        ).first()
        if earlier is not None:
            return earlier
    now = timezone.now()
    valid_from = _time(body, "validFrom") or now
    valid_until = _time(body, "validUntil") or _longest_from(valid_from)
    _check_window(valid_from, valid_until)
    dial_out = body_flag(body, "pstnDialOutEnabled") or False
    changes = _check_participants(resource, body.get("participants"), removals=False)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                resource=resource,
                created_at=now,
                valid_from=valid_from,
                valid_until=valid_until,
                pstn_dial_out_enabled=dial_out,
                repeatability_request_id=repeatability_request_id,
            )
            RoomParticipant.objects.bulk_create(
                [
                    RoomParticipant(
                        room=room, identity=c.identity, role=c.role or RoomRole.ATTENDEE
                    )
                    for c in changes
                ]
            )
    except IntegrityError:  # the same id raced in from a retry: answer with that room
        return Room.objects.get(
            resource=resource, repeatability_request_id=repeatability_request_id
        )
    return room


def access_room(resource: Resource, room_id: str) -> Room:
    """The room of `resource` with this id. Raises RoomNotFound, also for another resource's."""
    room = (
        Room.objects.filter(resource=resource, pk=room_id).first()
        if isinstance(room_id, str) and is_single_line(room_id)  # a NUL is no id (PostgreSQL)
        else None
    )
    if room is None:
        raise RoomNotFound(f"Room {room_id!r} was not found.")
    return room


def list_rooms(resource: Resource) -> QuerySet[Room]:
    return Room.objects.filter(resource=resource).order_by("-created_at", "id")


def update_room(room: Room, body: dict[str, Any]) -> Room:
    """Change the validity window or PSTN dial-out (merge-patch: null leaves a field as it is)."""
    valid_from = _time(body, "validFrom") or room.valid_from
    valid_until = _time(body, "validUntil") or room.valid_until
    _check_window(valid_from, valid_until)
    dial_out = body_flag(body, "pstnDialOutEnabled")
    room.valid_from, room.valid_until = valid_from, valid_until
    if dial_out is not None:
        room.pstn_dial_out_enabled = dial_out
    room.save(update_fields=["valid_from", "valid_until", "pstn_dial_out_enabled"])
    return room


def delete_room(room: Room) -> None:
    room.delete()


def list_participants(room: Room) -> QuerySet[RoomParticipant]:
    return room.participants.select_related("identity").order_by("id")


def update_participants(room: Room, body: dict[str, Any]) -> None:
    """Add or change participants' roles, or remove them (`null`). All or nothing."""
    changes = _check_participants(room.resource, body.get("participants"), removals=True)
    with transaction.atomic():
        for change in changes:
            if change.role is None:
                room.participants.filter(identity=change.identity).delete()
            else:
                room.participants.update_or_create(
                    identity=change.identity, defaults={"role": change.role}
                )
        if room.participants.count() > MAX_PARTICIPANTS:
            raise InvalidRoomRequest(
                f"A room has at most {MAX_PARTICIPANTS} participants.", target="participants"
            )


def role_in_room(room: Room, identity: CommunicationIdentity) -> str | None:
    """The identity's role in the room, or None when it is not a participant."""
    return room.participants.filter(identity=identity).values_list("role", flat=True).first()


def is_open(room: Room, at: datetime | None = None) -> bool:
    at = at or timezone.now()
    return room.valid_from <= at < room.valid_until


def open_at(at: datetime) -> Q:
    """is_open as a query condition: the rooms valid at `at`."""
    return Q(valid_from__lte=at, valid_until__gt=at)
