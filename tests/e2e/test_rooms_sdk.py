"""The official azure-communication-rooms SDK against a live `manage.py serve` over TLS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import ParticipantRole, RoomParticipant, RoomsClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


def as_time(value) -> datetime:
    """The SDK hands back the room's times as sent (RFC 3339 strings)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def connection_string(live_spool: LiveSpool) -> str:
    return live_spool.create_resource()


@pytest.fixture
def clients(live_spool: LiveSpool, connection_string: str):
    identities = CommunicationIdentityClient.from_connection_string(
        connection_string, connection_verify=live_spool.cert
    )
    rooms = RoomsClient.from_connection_string(connection_string, connection_verify=live_spool.cert)
    return identities, rooms


def test_room_life_cycle_with_the_official_sdk(clients) -> None:
    identities, rooms = clients
    presenter, attendee, consumer = (identities.create_user() for _ in range(3))
    start = datetime.now(UTC).replace(microsecond=0)

    # when a room is created with a window and two participants
    room = rooms.create_room(
        valid_from=start,
        valid_until=start + timedelta(days=1),
        participants=[
            RoomParticipant(communication_identifier=presenter, role=ParticipantRole.PRESENTER),
            RoomParticipant(communication_identifier=attendee),
        ],
    )

    # then it is there with that window, and its participants with their roles
    assert as_time(room.valid_from) == start
    assert as_time(room.valid_until) == start + timedelta(days=1)
    assert rooms.get_room(room_id=room.id).id == room.id
    roles = {p.communication_identifier.raw_id: p.role for p in rooms.list_participants(room.id)}
    assert roles == {presenter.raw_id: "Presenter", attendee.raw_id: "Attendee"}

    # when a consumer is added, the attendee promoted and then the presenter removed
    rooms.add_or_update_participants(
        room_id=room.id,
        participants=[
            RoomParticipant(communication_identifier=consumer, role=ParticipantRole.CONSUMER),
            RoomParticipant(communication_identifier=attendee, role=ParticipantRole.PRESENTER),
        ],
    )
    rooms.remove_participants(room_id=room.id, participants=[presenter])
    roles = {p.communication_identifier.raw_id: p.role for p in rooms.list_participants(room.id)}
    assert roles == {attendee.raw_id: "Presenter", consumer.raw_id: "Consumer"}

    # and the window is changed and PSTN dial-out turned on
    updated = rooms.update_room(
        room_id=room.id, valid_until=start + timedelta(days=2), pstn_dial_out_enabled=True
    )
    assert as_time(updated.valid_until) == start + timedelta(days=2)
    assert updated.pstn_dial_out_enabled

    # and it is listed, then deleted
    assert room.id in {r.id for r in rooms.list_rooms()}
    rooms.delete_room(room_id=room.id)
    with pytest.raises(ResourceNotFoundError):
        rooms.get_room(room_id=room.id)


def test_bad_rooms_are_refused(clients) -> None:
    _, rooms = clients
    start = datetime.now(UTC)
    with pytest.raises(HttpResponseError) as too_long:
        rooms.create_room(valid_from=start, valid_until=start + timedelta(days=181))
    assert too_long.value.status_code == 400
    with pytest.raises(HttpResponseError) as backwards:
        rooms.create_room(valid_from=start, valid_until=start - timedelta(hours=1))
    assert backwards.value.status_code == 400
