"""The console's rooms, created and changed through Django's test client: the create form, a
room's validity, PSTN dial-out and participants, deleting it, and who may do what. The forms go
through apps.calls.rooms, so they refuse what the Rooms API refuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource, Role
from apps.calls.models import CallKind, Room, RoomRole
from tests.console.test_calls_pages import make_call, make_room, member, raw_id, signed_in, url

pytestmark = pytest.mark.django_db


def form_time(moment: datetime) -> str:
    """What a datetime-local input sends (the console's time zone is UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def said(response: Any) -> list[str]:
    """The messages on the page a form led to."""
    return [str(message) for message in response.context["messages"]]


def landed(response: Any) -> str:
    return str(response.redirect_chain[-1][0])


def create(client: Client, resource: Resource, **fields: Any) -> Any:
    """Sends the create form with `fields`, and follows it to the page it leads to."""
    data: dict[str, Any] = {"valid_from": "", "valid_until": "", "request_id": str(uuid.uuid4())}
    data.update(fields)
    return client.post(url(resource, "rooms/"), data, follow=True)


def change(client: Client, room: Room, **fields: Any) -> Any:
    """Sends one of a room page's forms, and follows it back to the page."""
    return client.post(url(room.resource, f"rooms/{room.pk}/"), fields, follow=True)


def roles_of(room: Room) -> dict[str, str]:
    return {p.identity.raw_id: p.role for p in room.participants.select_related("identity")}


# --- Creating ----------------------------------------------------------------------------------
def test_a_room_created_with_the_defaults_opens_now_for_180_days(
    owner: Any, resource: Resource
) -> None:
    # given
    client = signed_in(owner)
    before = timezone.now()

    # when the form is sent as it comes
    response = create(client, resource)

    # then the room has the API's defaults, and its page says so
    room = Room.objects.get(resource=resource)
    assert landed(response) == url(resource, f"rooms/{room.pk}/")
    assert said(response) == [f"Room {room.pk} created."]
    assert before <= room.valid_from <= timezone.now()
    assert room.valid_until - room.valid_from == timedelta(days=180)
    assert room.pstn_dial_out_enabled is False and room.participants.count() == 0


def test_a_room_created_with_a_window_dial_out_and_participants(
    owner: Any, resource: Resource
) -> None:
    # given two identities, and a window starting tomorrow at 09:30 UTC for a week
    client = signed_in(owner)
    presenter, consumer = raw_id(resource), raw_id(resource)
    opens = (timezone.now() + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)

    # when the form names them, with a blank participant row left over
    response = client.post(
        url(resource, "rooms/"),
        {
            "valid_from": form_time(opens),
            "valid_until": form_time(opens + timedelta(days=7)),
            "pstn_dial_out": "on",
            "request_id": str(uuid.uuid4()),
            "participant": [presenter, f"  {consumer} ", ""],
            "role": [RoomRole.PRESENTER, RoomRole.CONSUMER, RoomRole.ATTENDEE],
        },
        follow=True,
    )

    # then
    room = Room.objects.get(resource=resource)
    assert landed(response) == url(resource, f"rooms/{room.pk}/")
    assert (room.valid_from, room.valid_until) == (opens, opens + timedelta(days=7))
    assert room.pstn_dial_out_enabled is True
    assert roles_of(room) == {presenter: RoomRole.PRESENTER, consumer: RoomRole.CONSUMER}


@pytest.mark.parametrize(
    ("opens", "lasts", "message"),
    [
        (timedelta(days=1), -timedelta(hours=1), "Valid until must be after valid from."),
        (
            timedelta(days=1),
            timedelta(days=181),
            "A room is valid for at most 180 days (valid until - valid from).",
        ),
        (-timedelta(days=3), timedelta(days=1), "Valid until must be in the future."),
    ],
)
def test_a_bad_window_creates_nothing_and_keeps_the_form(
    owner: Any, resource: Resource, opens: timedelta, lasts: timedelta, message: str
) -> None:
    # given
    client = signed_in(owner)
    start = timezone.now() + opens
    typed = {
        "valid_from": form_time(start),
        "valid_until": form_time(start + lasts),
        "pstn_dial_out": "on",
        "participant": [raw_id(resource)],
        "role": [RoomRole.PRESENTER],
    }

    # when
    response = create(client, resource, **typed)

    # then nothing is made, the message is the service's in the form's words
    assert not Room.objects.filter(resource=resource).exists()
    assert landed(response) == url(resource, "rooms/")
    assert said(response) == [message]
    # and the form comes back as it was typed, once
    page = response
    html = page.content.decode()
    assert f'value="{typed["valid_from"]}"' in html and f'value="{typed["valid_until"]}"' in html
    assert f'value="{typed["participant"][0]}"' in html
    assert page.context["create"]["pstn_dial_out"] is True
    assert page.context["create"]["participants"][0] == [typed["participant"][0], "Presenter"]
    again = client.get(url(resource, "rooms/"))
    assert typed["valid_from"] not in again.content.decode()


def test_a_time_that_is_no_time_is_refused(owner: Any, resource: Resource) -> None:
    # when
    response = create(signed_in(owner), resource, valid_from="2025-02-30T10:00")

    # then
    assert said(response) == ["Valid from is not a date and time."]
    assert not Room.objects.exists()


def test_participants_the_resource_does_not_have_create_nothing(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given an identity of another resource, and a made-up one
    client = signed_in(owner)
    foreign = raw_id(other_resource)
    made_up = f"8:acs:{resource.pk}_{uuid.uuid4()}"

    for stranger in (foreign, made_up):
        # when either is a participant of a new room, beside one of the resource's own
        response = create(
            client,
            resource,
            participant=[raw_id(resource), stranger],
            role=[RoomRole.ATTENDEE, RoomRole.ATTENDEE],
        )

        # then no room is made
        assert said(response) == [f"Participant {stranger!r} is not an identity of this resource."]
        assert not Room.objects.exists()


def test_a_role_the_api_does_not_have_is_refused(owner: Any, resource: Resource) -> None:
    # given
    who = raw_id(resource)

    # when
    response = create(signed_in(owner), resource, participant=[who], role=["Host"])

    # then
    assert said(response) == [
        f"The role of {who!r} must be one of Presenter, Attendee, Consumer, Collaborator."
    ]
    assert not Room.objects.exists()


def test_the_same_form_sent_twice_makes_one_room(owner: Any, resource: Resource) -> None:
    # given a form sent once
    client = signed_in(owner)
    request_id = str(uuid.uuid4())
    first = create(client, resource, request_id=request_id)

    # when it is sent again (a double click, a resend)
    second = create(client, resource, request_id=request_id)

    # then there is one room, and the second answer leads to it
    room = Room.objects.get(resource=resource)
    assert landed(first) == landed(second) == url(resource, f"rooms/{room.pk}/")
    assert said(second) == [f"This form had created room {room.pk} already."]


# --- Changing a room ---------------------------------------------------------------------------
def test_validity_and_dial_out_change(owner: Any, resource: Resource) -> None:
    # given a room opened an hour ago (with seconds), valid for a day
    room = make_room(resource)
    opened = room.valid_from
    client = signed_in(owner)
    page = client.get(url(resource, f"rooms/{room.pk}/"))
    assert page.context["validity"]["valid_from"] == form_time(opened)
    until = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)

    # when only valid-until changes, and dial-out is ticked
    response = change(
        client,
        room,
        action="validity",
        valid_from=form_time(opened),
        valid_until=form_time(until),
        pstn_dial_out="on",
    )

    # then valid-from stays to the microsecond (the input shows minutes), the rest changes
    room.refresh_from_db()
    assert landed(response) == url(resource, f"rooms/{room.pk}/")
    assert (room.valid_from, room.valid_until, room.pstn_dial_out_enabled) == (opened, until, True)
    assert said(response) == [
        f"Saved: valid from {opened:%Y-%m-%d %H:%M} UTC until {until:%Y-%m-%d %H:%M} UTC, "
        "PSTN dial-out on."
    ]

    # when dial-out is unticked
    change(
        client,
        room,
        action="validity",
        valid_from=form_time(opened),
        valid_until=form_time(until),
    )

    # then
    room.refresh_from_db()
    assert room.pstn_dial_out_enabled is False and room.valid_until == until


def test_a_bad_validity_changes_nothing(owner: Any, resource: Resource) -> None:
    # given
    room = make_room(resource)
    before = (room.valid_from, room.valid_until, room.pstn_dial_out_enabled)
    client = signed_in(owner)
    too_late = form_time(room.valid_from + timedelta(days=200))

    # when
    response = change(
        client,
        room,
        action="validity",
        valid_from=form_time(room.valid_from),
        valid_until=too_late,
        pstn_dial_out="on",
    )

    # then
    room.refresh_from_db()
    assert (room.valid_from, room.valid_until, room.pstn_dial_out_enabled) == before
    assert said(response) == ["A room is valid for at most 180 days (valid until - valid from)."]
    assert f'value="{too_late}"' in response.content.decode()
    assert response.context["validity"]["pstn_dial_out"] is True


def test_participants_are_added_given_new_roles_and_removed(owner: Any, resource: Resource) -> None:
    # given an empty room and an identity
    room = make_room(resource)
    who = raw_id(resource)
    client = signed_in(owner)

    # when the identity is added as an Attendee
    added = change(client, room, action="add", identity=f" {who} ", role=RoomRole.ATTENDEE)

    # then
    assert roles_of(room) == {who: RoomRole.ATTENDEE}
    assert said(added) == [f"{who} takes part as Attendee."]
    assert f'data-participant="{who}"' in added.content.decode()

    # when its role changes
    promoted = change(client, room, action="role", identity=who, role=RoomRole.PRESENTER)

    # then
    assert roles_of(room) == {who: RoomRole.PRESENTER}
    assert said(promoted) == [f"{who} is now Presenter."]

    # when it is removed
    removed = change(client, room, action="remove", identity=who)

    # then
    assert roles_of(room) == {}
    assert said(removed) == [f"{who} no longer takes part in the room."]


def test_identities_of_no_or_another_resource_are_not_added(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a room with one participant
    room = make_room(resource, roles=(RoomRole.ATTENDEE,))
    before = roles_of(room)
    client = signed_in(owner)
    strangers = [raw_id(other_resource), f"8:acs:{resource.pk}_{uuid.uuid4()}", "4:+14255550123"]

    for stranger in strangers:
        # when
        response = change(client, room, action="add", identity=stranger, role=RoomRole.PRESENTER)

        # then
        assert said(response) == [f"Participant {stranger!r} is not an identity of this resource."]
        assert roles_of(room) == before
        # and the add form keeps what was typed
        assert response.context["adding"]["identity"] == stranger
        assert response.context["adding"]["role"] == RoomRole.PRESENTER

    # when nothing is typed, or another resource's identity is to be removed
    empty = change(client, room, action="add", identity="", role=RoomRole.ATTENDEE)
    foreign = change(client, room, action="remove", identity=strangers[0])

    # then
    assert said(empty) == ["Enter an identity's raw id (8:acs:…)."]
    assert said(foreign) == [f"Participant {strangers[0]!r} is not an identity of this resource."]
    assert roles_of(room) == before


def test_a_live_call_ends_when_a_new_window_closes_its_room(owner: Any, resource: Resource) -> None:
    # given an open room with a live call
    room = make_room(resource)
    call = make_call(resource, kind=CallKind.ROOM, room=room, live=True)
    tomorrow = timezone.now() + timedelta(days=1)

    # when its window moves to tomorrow
    change(
        signed_in(owner),
        room,
        action="validity",
        valid_from=form_time(tomorrow),
        valid_until=form_time(tomorrow + timedelta(days=1)),
    )

    # then the call ends, as the Rooms API's PATCH ends it
    call.refresh_from_db()
    assert call.ended_at is not None and call.end_reason == "The room is no longer open."


def test_deleting_a_room_asks_first_and_ends_its_live_call(owner: Any, resource: Resource) -> None:
    # given a room with a participant and a live call
    room = make_room(resource, roles=(RoomRole.PRESENTER,))
    call = make_call(resource, kind=CallKind.ROOM, room=room, live=True)
    client = signed_in(owner)

    # when the room's page is opened, then its delete link
    page = client.get(url(resource, f"rooms/{room.pk}/"))
    confirm = client.get(url(resource, f"rooms/{room.pk}/delete/"))

    # then the page links to a confirm step, which deletes nothing yet
    assert url(resource, f"rooms/{room.pk}/delete/") in page.content.decode()
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "A call is live in this room: it ends now." in html and "1 participant:" in html
    assert Room.objects.filter(pk=room.pk).exists()

    # when the delete is confirmed
    response = client.post(url(resource, f"rooms/{room.pk}/delete/"), follow=True)

    # then the room is gone, its call ended, and the list says so
    assert landed(response) == url(resource, "rooms/")
    assert said(response) == [f"Room {room.pk} deleted."]
    assert not Room.objects.filter(pk=room.pk).exists()
    call.refresh_from_db()
    assert call.ended_at is not None and call.end_reason == "The room was deleted."


# --- Who may ----------------------------------------------------------------------------------
def test_a_reader_sees_rooms_and_changes_nothing(resource: Resource, make_user: Any) -> None:
    # given a reader, and a room with a participant
    room = make_room(resource, roles=(RoomRole.ATTENDEE,))
    before = (room.valid_until, roles_of(room))
    client = member(resource, make_user, Role.READER)
    who = raw_id(resource)

    # when they look
    listing = client.get(url(resource, "rooms/"))
    detail = client.get(url(resource, f"rooms/{room.pk}/"))

    # then they see the rooms, without a form or a delete link
    assert listing.status_code == detail.status_code == 200
    assert room.pk in listing.content.decode()
    assert next(iter(before[1])) in detail.content.decode()
    for page in (listing, detail):
        html = page.content.decode()
        assert 'method="post" class="room-form"' not in html and "Delete room" not in html
        assert 'name="action"' not in html

    # when they send the forms anyway
    created = create(client, resource)
    next_week = form_time(timezone.now() + timedelta(days=7))
    changed = change(client, room, action="validity", valid_from="", valid_until=next_week)
    added = change(client, room, action="add", identity=who, role=RoomRole.PRESENTER)
    removed = change(client, room, action="remove", identity=next(iter(before[1])))
    asked = client.get(url(resource, f"rooms/{room.pk}/delete/"))
    deleted = client.post(url(resource, f"rooms/{room.pk}/delete/"))

    # then nothing changes, with the console's refusal
    for response in (created, changed, added, removed):
        assert said(response) == ["Your role cannot change rooms."]
    assert asked.status_code == deleted.status_code == 403
    assert "Your role (Reader) does not allow this." in deleted.content.decode()
    room.refresh_from_db()
    assert Room.objects.filter(resource=resource).count() == 1
    assert (room.valid_until, roles_of(room)) == before


def test_a_contributor_manages_rooms(resource: Resource, make_user: Any) -> None:
    # given
    client = member(resource, make_user, Role.CONTRIBUTOR)

    # when
    response = create(client, resource, participant=[raw_id(resource)], role=["Consumer"])

    # then
    room = Room.objects.get(resource=resource)
    assert landed(response) == url(resource, f"rooms/{room.pk}/")
    assert 'id="add-participant"' in response.content.decode()


def test_another_resources_room_is_not_found(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a room of another resource
    foreign = make_room(other_resource, roles=(RoomRole.PRESENTER,))
    before = (foreign.valid_until, roles_of(foreign))
    client = signed_in(owner)
    who = raw_id(resource)
    here = url(resource, f"rooms/{foreign.pk}/")

    # when this resource's pages are asked for it
    responses = [
        client.get(here),
        client.post(here, {"action": "add", "identity": who, "role": RoomRole.PRESENTER}),
        client.post(here, {"action": "validity", "valid_until": ""}),
        client.get(url(resource, f"rooms/{foreign.pk}/delete/")),
        client.post(url(resource, f"rooms/{foreign.pk}/delete/")),
    ]

    # then each is not found, and the room is as it was
    assert [r.status_code for r in responses] == [404] * 5
    foreign.refresh_from_db()
    assert (foreign.valid_until, roles_of(foreign)) == before


def test_the_forms_cost_no_query_per_participant(owner: Any, resource: Resource) -> None:
    # given a room with a participant, then with many
    room = make_room(resource, roles=(RoomRole.PRESENTER,))
    client = signed_in(owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            client.get(url(resource, f"rooms/{room.pk}/"))
        return len(captured)

    one = queries()
    make_room_participants(room, resource, 10)

    # when / then
    assert queries() == one


def make_room_participants(room: Room, resource: Resource, count: int) -> None:
    for _ in range(count):
        identity, _ = accounts.create_identity(resource)
        room.participants.create(identity=identity, role=RoomRole.CONSUMER)


def test_a_participant_shows_with_its_console_label(owner: Any, resource: Resource) -> None:
    # given a room whose participant has a label, and one whose has none
    labelled, _ = accounts.create_identity(resource, label="Front desk <b>")
    plain, _ = accounts.create_identity(resource)
    room = create(
        signed_in(owner),
        resource,
        participant=[labelled.raw_id, plain.raw_id],
        role=["Presenter"] * 2,
    ).context["room"]

    # when its page is opened
    html = signed_in(owner).get(url(resource, f"rooms/{room.pk}/")).content.decode()

    # then the label names the first (escaped), the second is its raw id alone
    assert '<strong class="identity-label">Front desk &lt;b&gt;</strong>' in html
    assert html.count('class="identity-label"') == 1
