"""Console pages for rooms: the list, with a form that creates one, and a room's page, where its
validity, PSTN dial-out and participants change, and from which it is deleted.

Every change goes through apps.calls.rooms with the Rooms API's body shapes, so the console
refuses exactly what the API refuses, for the same reasons; then, as the API's views do,
signaling.room_changed makes a live call in the room follow at once. Readers see everything and
change nothing (MANAGE_ROOMS: owners and contributors)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.calls import records, rooms, signaling
from apps.calls.models import Room, RoomRole
from apps.console.calls_views import _context, _not_found, _rows
from apps.console.views import _page, resource_page
from apps.core.errors import ApiError

# What a datetime-local input holds: a wall-clock time in the console's time zone, to the minute.
INPUT_FORMAT = "%Y-%m-%dT%H:%M"
# Blank participant rows on the create form; the room's page adds any number.
NEW_PARTICIPANT_ROWS = 3
REFUSED = "Your role cannot change rooms."
# The API's field names in the services' messages, as the forms call them.
FORM_WORDS = {
    "validFrom": "valid from",
    "validUntil": "valid until",
    "pstnDialOutEnabled": "PSTN dial-out",
}


# --- Reading the forms -----------------------------------------------------------------------
def _input_value(moment: Any) -> str:
    return str(timezone.localtime(moment).strftime(INPUT_FORMAT))


def _shown(moment: Any) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"


def _instant(value: str, label: str) -> str | None:
    """A datetime-local value, read in the console's time zone, as the API takes it (RFC 3339);
    None when it is empty, so the API's default applies. Raises ApiError when it is no time."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible, such as February 30
        parsed = None
    if parsed is None:
        raise ApiError(f"{label} is not a date and time.", target=label)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed.isoformat()


def _unless_shown(value: str, current: Any, label: str) -> str | None:
    """_instant, or None (the API's merge-patch: left as it is) when the input still holds what
    the page showed: the input has minutes, the room may have seconds."""
    if value.strip() == _input_value(current):
        return None
    return _instant(value, label)


def _in_words(error: ApiError) -> str:
    """A service's message with the API's field names as the forms name them."""
    message = error.message
    for field, words in FORM_WORDS.items():
        message = message.replace(field, words)
    return message[:1].upper() + message[1:]


def _create_form(request: HttpRequest) -> dict[str, Any]:
    identities = request.POST.getlist("participant")
    roles = request.POST.getlist("role")
    return {
        "valid_from": request.POST.get("valid_from", ""),
        "valid_until": request.POST.get("valid_until", ""),
        "pstn_dial_out": request.POST.get("pstn_dial_out") == "on",
        "request_id": request.POST.get("request_id", ""),
        "participants": [
            [raw_id.strip(), role] for raw_id, role in zip(identities, roles, strict=False)
        ],
    }


def _blank_create_form() -> dict[str, Any]:
    # The request id makes a form sent twice (a double click, a resend) make one room.
    return {
        "valid_from": "",
        "valid_until": "",
        "pstn_dial_out": False,
        "request_id": str(uuid.uuid4()),
        "participants": [],
    }


def _participant_rows(participants: list[list[str]]) -> list[list[str]]:
    rows = [row for row in participants if row[0]]
    blanks = max(NEW_PARTICIPANT_ROWS - len(rows), 1)
    return rows + [["", RoomRole.ATTENDEE]] * blanks


def _kept_key(resource: Resource, found: Room | None = None) -> str:
    # One per page: what was typed shows again only on the page whose form it was.
    return f"console-room-form:{resource.pk}:{found.pk if found else ''}"


def _form_context(request: HttpRequest, resource: Resource) -> dict[str, Any]:
    return {
        "can_manage_rooms": accounts.can(request.user, resource, accounts.MANAGE_ROOMS),
        "role_choices": RoomRole.choices,
        "time_zone": timezone.get_current_timezone_name(),
        "max_days": rooms.MAX_VALIDITY.days,
    }


# --- The list --------------------------------------------------------------------------------
@resource_page()
def rooms_list(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        return _create(request, resource)
    now = timezone.now()
    create = request.session.pop(_kept_key(resource), None) or _blank_create_form()
    create["participants"] = _participant_rows(create["participants"])
    context = _context(
        request,
        resource,
        "rooms",
        page=_page(request, records.rooms_of_resource(resource, now)),
        now=now,
        create=create,
        **_form_context(request, resource),
    )
    return render(request, "console/rooms.html", context)


def _create(request: HttpRequest, resource: Resource) -> HttpResponse:
    if not accounts.can(request.user, resource, accounts.MANAGE_ROOMS):
        messages.error(request, REFUSED)
        return redirect("console:rooms", slug=resource.slug)
    form = _create_form(request)
    started = timezone.now()
    try:
        body = {
            "validFrom": _instant(form["valid_from"], "Valid from"),
            "validUntil": _instant(form["valid_until"], "Valid until"),
            "pstnDialOutEnabled": form["pstn_dial_out"],
            # A blank row adds nobody.
            "participants": {
                raw_id: {"role": role} for raw_id, role in form["participants"] if raw_id
            },
        }
        room = rooms.create_room(resource, body, repeatability_request_id=form["request_id"])
    except ApiError as error:
        request.session[_kept_key(resource)] = form
        messages.error(request, _in_words(error))
        return redirect("console:rooms", slug=resource.slug)
    if room.created_at < started:  # the same form, sent again: the API answers with its room
        messages.info(request, f"This form had created room {room.pk} already.")
    else:
        messages.success(request, f"Room {room.pk} created.")
    return redirect("console:room", slug=resource.slug, room_id=room.pk)


# --- A room ----------------------------------------------------------------------------------
@resource_page()
def room(request: HttpRequest, resource: Resource, room_id: str) -> HttpResponse:
    try:
        found = rooms.access_room(resource, room_id)
    except ApiError as error:
        return _not_found(request, error)
    if request.method == "POST":
        _change(request, resource, found)
        return redirect("console:room", slug=resource.slug, room_id=found.pk)
    kept = request.session.pop(_kept_key(resource, found), None) or {}
    now = timezone.now()
    page = _page(request, records.calls_of_room(found))
    validity = {
        "valid_from": _input_value(found.valid_from),
        "valid_until": _input_value(found.valid_until),
        "pstn_dial_out": found.pstn_dial_out_enabled,
    }
    context = _context(
        request,
        resource,
        "rooms",
        room=found,
        now=now,
        is_open=rooms.is_open(found, now),
        participants=rooms.list_participants(found),
        page=page,
        rows=_rows(page.object_list, now),
        validity=kept if kept.get("action") == "validity" else validity,
        adding=kept if kept.get("action") == "add" else {"role": RoomRole.ATTENDEE},
        **_form_context(request, resource),
    )
    return render(request, "console/rooms_detail.html", context)


def _change(request: HttpRequest, resource: Resource, found: Room) -> None:
    """Run one POSTed change of the room; its outcome is a message on the page it goes back to,
    and on a refusal the form shows again as it was sent."""
    if not accounts.can(request.user, resource, accounts.MANAGE_ROOMS):
        messages.error(request, REFUSED)
        return
    action = request.POST.get("action", "")
    form: dict[str, Any] = {
        "action": action,
        "valid_from": request.POST.get("valid_from", ""),
        "valid_until": request.POST.get("valid_until", ""),
        "pstn_dial_out": request.POST.get("pstn_dial_out") == "on",
        "identity": request.POST.get("identity", "").strip(),
        "role": request.POST.get("role", ""),
    }
    try:
        if action == "validity":
            done = _change_validity(found, form)
        elif action in ("add", "role"):
            done = _set_role(found, form["identity"], form["role"], added=action == "add")
        elif action == "remove":
            done = _remove(found, form["identity"])
        else:
            raise ApiError("Unknown action.")
    except ApiError as error:
        if action in ("validity", "add"):
            request.session[_kept_key(resource, found)] = form
        messages.error(request, _in_words(error))
    else:
        messages.success(request, done)


def _change_validity(found: Room, form: dict[str, Any]) -> str:
    body = {
        "validFrom": _unless_shown(form["valid_from"], found.valid_from, "Valid from"),
        "validUntil": _unless_shown(form["valid_until"], found.valid_until, "Valid until"),
        "pstnDialOutEnabled": form["pstn_dial_out"],
    }
    changed = rooms.update_room(found, body)
    signaling.room_changed(changed)  # a room closed by its new window ends its call
    dial_out = "on" if changed.pstn_dial_out_enabled else "off"
    return (
        f"Saved: valid from {_shown(changed.valid_from)} until {_shown(changed.valid_until)}, "
        f"PSTN dial-out {dial_out}."
    )


def _participants_change(found: Room, raw_id: str, properties: dict[str, str] | None) -> None:
    if not raw_id:
        raise ApiError("Enter an identity's raw id (8:acs:…).", target="identity")
    rooms.update_participants(found, {"participants": {raw_id: properties}})
    signaling.room_changed(found)  # the live call follows: a removed participant leaves


def _set_role(found: Room, raw_id: str, role: str, *, added: bool) -> str:
    _participants_change(found, raw_id, {"role": role})
    return f"{raw_id} takes part as {role}." if added else f"{raw_id} is now {role}."


def _remove(found: Room, raw_id: str) -> str:
    _participants_change(found, raw_id, None)
    return f"{raw_id} no longer takes part in the room."


@resource_page(accounts.MANAGE_ROOMS)
def room_delete(request: HttpRequest, resource: Resource, room_id: str) -> HttpResponse:
    try:
        found = rooms.access_room(resource, room_id)
    except ApiError as error:
        return _not_found(request, error)
    if request.method == "POST":
        signaling.room_changed(found, deleted=True)  # its live call ends, as through the API
        rooms.delete_room(found)
        messages.success(request, f"Room {room_id} deleted.")
        return redirect("console:rooms", slug=resource.slug)
    context = _context(
        request,
        resource,
        "rooms",
        room=found,
        participant_count=found.participants.count(),
        live_call=records.calls_of_room(found).filter(ended_at__isnull=True).exists(),
    )
    return render(request, "console/room_delete.html", context)
