"""Console calling pages through Django's test client: the call log and a call, the rooms and a
room. Records are made directly: these pages only read them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource, Role
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
    CallTopology,
    Room,
    RoomParticipant,
    RoomRole,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member(resource: Resource, make_user: Any, role: str) -> Client:
    user = make_user(f"{role}-member")
    accounts.add_member(resource, user.username, role)
    return signed_in(user)


def raw_id(resource: Resource) -> str:
    identity, _ = accounts.create_identity(resource)
    return identity.raw_id


def make_call(
    resource: Resource,
    *,
    started: datetime = NOW,
    legs: int = 2,
    live: bool = False,
    answered: bool = True,
    **fields: Any,
) -> Call:
    """A call `started` at that time with `legs` participants (the first the caller); an ended
    one lasted 125 s after connecting, unless it was never answered."""
    callers = [f"8:acs:{resource.id}_{uuid.uuid4()}" for _ in range(legs)]
    connected = started + timedelta(seconds=5) if answered else None
    ended = None if live else started + timedelta(seconds=130)
    defaults: dict[str, Any] = {
        "caller_raw_id": callers[0] if callers else "8:acs:nobody",
        "state": CallState.CONNECTED if live else CallState.DISCONNECTED,
        "created_at": started,
        "connected_at": connected,
        "ended_at": ended,
        "end_code": None if live else 0,
        "end_reason": "" if live else "Call ended",
    }
    call = Call.objects.create(resource=resource, **{**defaults, **fields})
    CallParticipant.objects.bulk_create(
        [
            CallParticipant(
                call=call,
                raw_id=who,
                is_caller=n == 0,
                state=CallLegState.CONNECTED if live else CallLegState.LEFT,
                joined_at=connected,
                left_at=ended,
            )
            for n, who in enumerate(callers)
        ]
    )
    return call


def make_room(
    resource: Resource,
    *,
    created: datetime = NOW,
    opens: timedelta = -timedelta(hours=1),
    lasts: timedelta = timedelta(days=1),
    roles: tuple[str, ...] = (),
) -> Room:
    room = Room.objects.create(
        resource=resource,
        created_at=created,
        valid_from=NOW + opens,
        valid_until=NOW + opens + lasts,
    )
    for role in roles:
        identity, _ = accounts.create_identity(resource)
        RoomParticipant.objects.create(room=room, identity=identity, role=role)
    return room


def url(resource: Resource, tail: str = "") -> str:
    return f"/resources/{resource.slug}/calls/{tail}"


# --- Call log -------------------------------------------------------------------------------
def test_the_call_log_shows_each_kind_of_call_newest_first(owner: Any, resource: Resource) -> None:
    # given an ended 1:1 video call, a declined 1:1 call, a live group call and a room's call
    room = make_room(resource, roles=(RoomRole.PRESENTER,))
    one_to_one = make_call(resource, started=NOW - timedelta(hours=3), video=True)
    declined = make_call(
        resource,
        started=NOW - timedelta(hours=2),
        answered=False,
        end_code=603,
        end_reason="Declined",
    )
    group_id = uuid.uuid4()
    group = make_call(
        resource,
        started=NOW - timedelta(minutes=10),
        legs=3,
        live=True,
        kind=CallKind.GROUP,
        group_id=group_id,
        topology=CallTopology.MESH,
    )
    in_room = make_call(resource, started=NOW - timedelta(hours=1), kind=CallKind.ROOM, room=room)

    # when the owner opens Calls
    page = signed_in(owner).get(url(resource))

    # then every call is listed, newest first, with what the log shows
    assert page.status_code == 200
    rows = page.context["rows"]
    assert [row.call for row in rows] == [group, in_room, declined, one_to_one]
    assert [row.call.participant_count for row in rows] == [3, 2, 2, 2]
    assert [row.duration for row in rows[1:]] == ["2 min 05 s", "—", "2 min 05 s"]
    assert rows[0].ongoing and rows[0].duration.endswith("s")
    html = page.content.decode()
    assert b'class="active">Calls</a>' in page.content
    assert 'class="active">Call log</a>' in html
    assert str(group_id)[:8] in html and ">1:1<" in html
    assert f"/calls/rooms/{room.pk}/" in html
    # identities of the resource by the start of their id, the raw id in a tooltip
    assert rows[3].caller == f"{one_to_one.caller_raw_id.split('_')[1][:8]}…"
    assert f'title="{one_to_one.caller_raw_id}"' in html
    assert "<code>603</code> Declined" in html and "<code>0</code> Call ended" in html
    assert "so far" in html and "Yes" in html
    for call in (one_to_one, declined, group, in_room):
        assert url(resource, f"{call.pk}/") in html


def test_the_call_log_filters_by_state(owner: Any, resource: Resource) -> None:
    # given one live call and two ended ones
    live = make_call(resource, live=True)
    ended = {make_call(resource, started=NOW - timedelta(hours=n)) for n in (1, 2)}
    client = signed_in(owner)

    # when
    live_page = client.get(url(resource), {"state": "live"})
    ended_page = client.get(url(resource), {"state": "ended"})
    any_page = client.get(url(resource), {"state": "bogus"})

    # then
    assert [row.call for row in live_page.context["rows"]] == [live]
    assert {row.call for row in ended_page.context["rows"]} == ended
    assert len(any_page.context["rows"]) == 3 and any_page.context["state"] == ""
    assert b'<option value="live" selected>' in live_page.content


def test_the_call_log_pages_and_keeps_its_filter(owner: Any, resource: Resource) -> None:
    # given more ended calls than a page holds, and a live one
    for n in range(30):
        make_call(resource, started=NOW - timedelta(minutes=n), legs=1)
    make_call(resource, live=True)
    client = signed_in(owner)

    # when
    first = client.get(url(resource), {"state": "ended"})
    second = client.get(url(resource), {"state": "ended", "page": 2})

    # then
    assert len(first.context["rows"]) == 25 and b"Page 1 of 2 \xc2\xb7 30 in all" in first.content
    assert b'href="?state=ended&amp;page=2"' in first.content
    assert len(second.context["rows"]) == 5


def test_the_call_log_costs_the_same_queries_for_one_call_or_a_page(
    owner: Any, resource: Resource
) -> None:
    # given one call, then a full page of calls with several participants each
    client = signed_in(owner)
    make_call(resource, kind=CallKind.ROOM, room=make_room(resource))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url(resource)).status_code == 200
        return len(captured)

    one = queries()
    room = make_room(resource)
    for n in range(30):
        make_call(
            resource, started=NOW - timedelta(minutes=n), legs=4, kind=CallKind.ROOM, room=room
        )

    # when / then
    assert queries() == one


def test_another_resource_s_calls_are_not_listed(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a call of another resource
    make_call(other_resource)

    # when
    page = signed_in(owner).get(url(resource))

    # then
    assert page.context["rows"] == [] and b"No calls yet" in page.content


# --- A call ----------------------------------------------------------------------------------
def test_a_call_shows_its_participants_and_times(owner: Any, resource: Resource) -> None:
    # given a room call where a consumer was rung but declined
    room = make_room(resource)
    call = make_call(resource, kind=CallKind.ROOM, room=room, video=True, end_code=0)
    late = CallParticipant.objects.create(
        call=call,
        raw_id=raw_id(resource),
        state=CallLegState.DECLINED,
        role=RoomRole.CONSUMER,
    )

    # when
    page = signed_in(owner).get(url(resource, f"{call.pk}/"))

    # then
    assert page.status_code == 200
    participants = list(page.context["participants"])
    assert participants[0].is_caller and participants[-1] == late
    html = page.content.decode()
    assert "Room call" in html and f"/calls/rooms/{room.pk}/" in html
    assert late.raw_id in html and "Consumer" in html and "Declined" in html
    assert call.created_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert call.ended_at is not None and call.ended_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "2 min 05 s" in html and "Call ended" in html and "started the call" in html
    assert 'class="active">Call log</a>' in html


@pytest.mark.parametrize("call_id", ["other", str(uuid.uuid4()), "not-a-uuid", "12345"])
def test_unknown_and_other_resources_calls_are_not_found(
    owner: Any, resource: Resource, other_resource: Resource, call_id: str
) -> None:
    # given a call of another resource
    foreign = make_call(other_resource)
    call_id = str(foreign.pk) if call_id == "other" else call_id

    # when
    page = signed_in(owner).get(url(resource, f"{call_id}/"))

    # then
    assert page.status_code == 404
    assert "console/not_found.html" in [t.name for t in page.templates]
    assert b"was not found" in page.content and foreign.caller_raw_id.encode() not in page.content


# --- Rooms -----------------------------------------------------------------------------------
def test_the_rooms_list_shows_windows_and_counts(owner: Any, resource: Resource) -> None:
    # given an open room with two participants and a call, an expired room, a room not yet open
    open_room = make_room(resource, roles=(RoomRole.PRESENTER, RoomRole.ATTENDEE))
    make_call(resource, kind=CallKind.ROOM, room=open_room, legs=2)
    expired = make_room(
        resource, created=NOW - timedelta(days=3), opens=-timedelta(days=3), lasts=timedelta(1)
    )
    later = make_room(resource, created=NOW - timedelta(days=1), opens=timedelta(days=1))

    # when
    page = signed_in(owner).get(url(resource, "rooms/"))

    # then
    assert page.status_code == 200
    listed = list(page.context["page"].object_list)
    assert listed == [open_room, later, expired]
    assert [(r.is_open, r.participant_count, r.call_count) for r in listed] == [
        (True, 2, 1),
        (False, 0, 0),
        (False, 0, 0),
    ]
    html = page.content.decode()
    assert 'class="active">Rooms</a>' in html
    assert all(url(resource, f"rooms/{r.pk}/") in html for r in listed)
    assert html.count('<span class="state ok">Open</span>') == 1
    assert html.count("Not open yet") == html.count(">Over<") == 1


def test_the_rooms_list_pages_with_a_fixed_number_of_queries(
    owner: Any, resource: Resource
) -> None:
    # given a room, then more rooms than a page holds, each with participants and calls
    client = signed_in(owner)
    make_room(resource)

    def queries() -> tuple[int, Any]:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(url(resource, "rooms/"))
        return len(captured), page

    one, _ = queries()
    for n in range(30):
        room = make_room(resource, created=NOW - timedelta(minutes=n + 1), roles=("Attendee",))
        make_call(resource, kind=CallKind.ROOM, room=room, legs=1)

    # when
    many, first = queries()
    second = client.get(url(resource, "rooms/"), {"page": 2})

    # then
    assert many == one
    assert len(first.context["page"].object_list) == 25 and b"Page 1 of 2" in first.content
    assert len(second.context["page"].object_list) == 6


def test_a_room_shows_its_participants_and_its_calls(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a room with two participants and two calls, and a group call outside it
    room = make_room(resource, roles=(RoomRole.PRESENTER, RoomRole.CONSUMER))
    calls = [
        make_call(resource, kind=CallKind.ROOM, room=room, started=NOW - timedelta(hours=n))
        for n in (1, 2)
    ]
    make_call(resource, kind=CallKind.GROUP, group_id=uuid.uuid4())
    client = signed_in(owner)

    # when
    with CaptureQueriesContext(connection) as few:
        page = client.get(url(resource, f"rooms/{room.pk}/"))
    for n in range(10):
        make_call(resource, kind=CallKind.ROOM, room=room, started=NOW - timedelta(days=n + 1))
    with CaptureQueriesContext(connection) as many:
        client.get(url(resource, f"rooms/{room.pk}/"))

    # then
    assert page.status_code == 200
    html = page.content.decode()
    for participant in room.participants.select_related("identity"):
        assert participant.identity.raw_id in html
    assert "Presenter" in html and "Consumer" in html
    assert [row.call for row in page.context["rows"]] == calls
    assert page.context["is_open"] is True
    assert len(many) == len(few)


def test_unknown_and_other_resources_rooms_are_not_found(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a room of another resource
    foreign = make_room(other_resource)
    client = signed_in(owner)

    # when
    cross = client.get(url(resource, f"rooms/{foreign.pk}/"))
    unknown = client.get(url(resource, "rooms/12345/"))

    # then
    assert cross.status_code == unknown.status_code == 404
    assert "console/not_found.html" in [t.name for t in cross.templates]


# --- Who sees them ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_role_sees_the_calls_pages(resource: Resource, make_user: Any, role: str) -> None:
    # given
    call = make_call(resource)
    room = make_room(resource)
    client = member(resource, make_user, role)

    # when
    pages = [
        client.get(url(resource, tail))
        for tail in ("", f"{call.pk}/", "rooms/", f"rooms/{room.pk}/")
    ]

    # then
    assert [page.status_code for page in pages] == [200] * 4
    assert all(b'class="active">Calls</a>' in page.content for page in pages)


def test_strangers_and_anonymous_visitors_do_not_find_the_calls_pages(
    resource: Resource, make_user: Any
) -> None:
    # given
    call = make_call(resource)
    room = make_room(resource)
    tails = ("", f"{call.pk}/", "rooms/", f"rooms/{room.pk}/")

    # when
    outsider = signed_in(make_user("stranger"))
    stranger = [outsider.get(url(resource, tail)) for tail in tails]
    anonymous = [Client().get(url(resource, tail)) for tail in tails]

    # then: strangers get the console's not-found page, visitors the sign-in page
    assert [page.status_code for page in stranger] == [404] * 4
    assert all(call.caller_raw_id.encode() not in page.content for page in stranger)
    assert [page.status_code for page in anonymous] == [302] * 4
    assert all(page["Location"].startswith("/login/") for page in anonymous)
