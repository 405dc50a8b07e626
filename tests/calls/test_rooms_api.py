"""The ACS Rooms API: its rules, bad input that changes nothing, and tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from apps.accounts import services as accounts
from apps.calls import rooms
from apps.calls.models import Room, RoomParticipant
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db
VERSION = "2025-03-13"


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def call(acs: AcsClient, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    return acs.call(method, path, body, api_version=VERSION, **kwargs)


def state() -> tuple[list[Any], list[Any]]:
    return (
        list(Room.objects.values_list("id", "valid_from", "valid_until", "pstn_dial_out_enabled")),
        list(RoomParticipant.objects.values_list("room_id", "identity_id", "role")),
    )


def test_a_room_defaults_to_now_for_180_days_and_takes_participants(acs: AcsClient) -> None:
    # given an identity of the resource
    identity, _ = accounts.create_identity(acs.resource)

    # when a room is created with it and nulls for everything else, as the SDK sends
    response = call(
        acs,
        "POST",
        "/rooms",
        {
            "validFrom": None,
            "validUntil": None,
            "pstnDialOutEnabled": False,
            "participants": {identity.raw_id: {"role": "Consumer"}},
        },
    )

    # then it opens now for 180 days, and the identity is in it as a consumer
    assert response.status_code == 201
    body = response.json()
    opens = datetime.fromisoformat(body["validFrom"].replace("Z", "+00:00"))
    closes = datetime.fromisoformat(body["validUntil"].replace("Z", "+00:00"))
    assert abs(opens - datetime.now(UTC)) < timedelta(seconds=5)
    assert closes - opens == timedelta(days=180)
    listed = call(acs, "GET", f"/rooms/{body['id']}/participants").json()["value"]
    assert listed == [{"rawId": identity.raw_id, "role": "Consumer"}]


@pytest.mark.parametrize(
    "body, target",
    [
        ({"validUntil": "yesterday"}, "validUntil"),
        ({"validFrom": "2024-02-30T00:00:00Z"}, "validFrom"),
        ({"validFrom": "9999-12-01T00:00:00Z"}, "validFrom"),
        ({"validUntil": "9999-12-31T23:30:00-01:00"}, "validUntil"),
        (
            {
                "validFrom": iso(datetime.now(UTC) + timedelta(days=2)),
                "validUntil": iso(datetime.now(UTC) + timedelta(days=1)),
            },
            "validUntil",
        ),
        ({"validUntil": iso(datetime.now(UTC) + timedelta(days=181))}, "validUntil"),
        (
            {
                "validFrom": iso(datetime.now(UTC) - timedelta(days=3)),
                "validUntil": iso(datetime.now(UTC) - timedelta(days=1)),
            },
            "validUntil",
        ),
        ({"pstnDialOutEnabled": "yes"}, "pstnDialOutEnabled"),
        ({"participants": ["8:acs:x"]}, "participants"),
        ({"participants": {"8:acs:nobody_x": {"role": "Attendee"}}}, "8:acs:nobody_x"),
        ({"participants": {"4:+14255550123": {"role": "Attendee"}}}, "4:+14255550123"),
    ],
    ids=[
        "bad time",
        "impossible date",
        "no default validUntil after year 9999",
        "after year 9999 in UTC",
        "ends before it starts",
        "over 180 days",
        "already over",
        "bad flag",
        "participants not a map",
        "unknown identity",
        "phone number",
    ],
)
def test_bad_rooms_are_refused_and_change_nothing(
    acs: AcsClient, body: dict[str, Any], target: str
) -> None:
    # given
    before = state()

    # when
    response = call(acs, "POST", "/rooms", body)

    # then
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] and error["message"] and error["target"] == target
    assert state() == before


def test_a_window_with_any_rfc_3339_offset_is_kept_in_utc(acs: AcsClient) -> None:
    # given times at +16:00, which RFC 3339 allows and PostgreSQL does not store (a server
    # error there, found by tests/core/test_fuzz_acs.py)
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    plus_16 = timezone(timedelta(hours=16))

    # when a room is created with them
    response = call(
        acs,
        "POST",
        "/rooms",
        {
            "validFrom": opens.astimezone(plus_16).isoformat(),
            "validUntil": (opens + timedelta(days=1)).astimezone(plus_16).isoformat(),
        },
    )

    # then the window is the same instants, in UTC
    assert response.status_code == 201, response.content
    assert response.json()["validFrom"] == iso(opens)
    assert response.json()["validUntil"] == iso(opens + timedelta(days=1))
    assert Room.objects.get().valid_from == opens


def test_a_bad_role_refuses_the_whole_participant_update(acs: AcsClient) -> None:
    # given a room with one attendee
    first, _ = accounts.create_identity(acs.resource)
    second, _ = accounts.create_identity(acs.resource)
    room = rooms.create_room(acs.resource, {"participants": {first.raw_id: {"role": "Attendee"}}})
    before = state()

    # when one change of two has a role that does not exist
    response = call(
        acs,
        "PATCH",
        f"/rooms/{room.id}/participants",
        {"participants": {second.raw_id: {"role": "Presenter"}, first.raw_id: {"role": "Boss"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )

    # then nothing changes
    assert response.status_code == 400 and response.json()["error"]["target"] == first.raw_id
    assert state() == before


def test_participants_are_added_promoted_and_removed(acs: AcsClient) -> None:
    first, _ = accounts.create_identity(acs.resource)
    second, _ = accounts.create_identity(acs.resource)
    room = rooms.create_room(acs.resource, {"participants": {first.raw_id: {"role": "Attendee"}}})

    response = call(
        acs,
        "PATCH",
        f"/rooms/{room.id}/participants",
        {"participants": {second.raw_id: {"role": "Presenter"}, first.raw_id: None}},
    )

    assert response.status_code == 200 and response.json() == {}
    assert rooms.role_in_room(room, second) == "Presenter"
    assert rooms.role_in_room(room, first) is None


def test_a_repeated_create_answers_with_the_first_room(acs: AcsClient) -> None:
    headers = {"Repeatability-Request-Id": "b7c1d2e3-0000-4000-8000-000000000001"}
    first = call(acs, "POST", "/rooms", {}, headers=headers)
    again = call(acs, "POST", "/rooms", {}, headers=headers)
    assert first.json()["id"] == again.json()["id"] and Room.objects.count() == 1


def test_one_resource_never_reaches_another_ones_rooms(
    acs: AcsClient, other_acs: AcsClient
) -> None:
    # given a room of the other resource, and an identity of the other resource
    theirs = rooms.create_room(other_acs.resource, {})
    their_identity, _ = accounts.create_identity(other_acs.resource)
    before = state()

    # then this resource cannot see, change, delete or list it, nor seat their identity
    assert call(acs, "GET", f"/rooms/{theirs.id}").status_code == 404
    assert (
        call(acs, "PATCH", f"/rooms/{theirs.id}", {"pstnDialOutEnabled": True}).status_code == 404
    )
    assert call(acs, "DELETE", f"/rooms/{theirs.id}").status_code == 404
    assert call(acs, "GET", f"/rooms/{theirs.id}/participants").status_code == 404
    assert call(acs, "GET", "/rooms").json()["value"] == []
    mine = call(
        acs, "POST", "/rooms", {"participants": {their_identity.raw_id: {"role": "Attendee"}}}
    )
    assert mine.status_code == 400
    assert state() == before


def test_a_wrong_key_is_refused(acs: AcsClient, other_acs: AcsClient) -> None:
    response = acs.call(
        "POST", "/rooms", {}, api_version=VERSION, sign_key=other_acs.resource.primary_key
    )
    assert response.status_code == 401 and not Room.objects.exists()
