"""The ACS Rooms API (`/r/<slug>/rooms`), as azure-communication-rooms calls it (HMAC)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.calls import rooms, signaling, turn
from apps.calls.models import Room, RoomParticipant
from apps.core.api import AcsApiView, json_object, page_of, rfc3339

# azure-communication-rooms 1.2 sends 2025-03-13; 1.0 and 1.1 the earlier ones.
ROOMS_API_VERSIONS = ("2023-06-14", "2024-04-15", "2025-03-13")


class RoomsView(AcsApiView):
    api_versions = ROOMS_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]


def room_body(room: Room) -> dict[str, Any]:
    return {
        "id": room.pk,
        "createdAt": rfc3339(room.created_at),
        "validFrom": rfc3339(room.valid_from),
        "validUntil": rfc3339(room.valid_until),
        "pstnDialOutEnabled": room.pstn_dial_out_enabled,
    }


def participant_body(participant: RoomParticipant) -> dict[str, Any]:
    return {"rawId": participant.identity.raw_id, "role": participant.role}


class Rooms(RoomsView):
    def post(self, request: Request, slug: str) -> Response:
        room = rooms.create_room(
            request_resource(request),
            json_object(request),
            repeatability_request_id=request.headers.get("Repeatability-Request-Id", ""),
        )
        return Response(room_body(room), status=201)

    def get(self, request: Request, slug: str) -> Response:
        page = page_of(request, rooms.list_rooms(request_resource(request)), "value")
        page["value"] = [room_body(r) for r in page["value"]]
        return Response(page)


class RoomDetail(RoomsView):
    def get(self, request: Request, slug: str, room_id: str) -> Response:
        return Response(room_body(rooms.access_room(request_resource(request), room_id)))

    def patch(self, request: Request, slug: str, room_id: str) -> Response:
        room = rooms.access_room(request_resource(request), room_id)
        room = rooms.update_room(room, json_object(request))
        signaling.room_changed(room)  # a room closed by its new window ends its call
        return Response(room_body(room))

    def delete(self, request: Request, slug: str, room_id: str) -> Response:
        room = rooms.access_room(request_resource(request), room_id)
        signaling.room_changed(room, deleted=True)
        rooms.delete_room(room)
        return Response(status=204)


class RoomParticipants(RoomsView):
    def get(self, request: Request, slug: str, room_id: str) -> Response:
        room = rooms.access_room(request_resource(request), room_id)
        page = page_of(request, rooms.list_participants(room), "value")
        page["value"] = [participant_body(p) for p in page["value"]]
        return Response(page)

    def patch(self, request: Request, slug: str, room_id: str) -> Response:
        room = rooms.access_room(request_resource(request), room_id)
        rooms.update_participants(room, json_object(request))
        signaling.room_changed(room)  # the live call follows: removed participants leave
        return Response({})


# azure-communication-networktraversal sends 2022-03-01-preview; 1.0 sent 2021-10-08-preview.
RELAY_API_VERSIONS = ("2021-10-08-preview", "2022-03-01-preview")


class IssueRelayConfiguration(AcsApiView):
    api_versions = RELAY_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]

    def post(self, request: Request, slug: str) -> Response:
        user, ttl, route_type = turn.check_relay_request(
            request_resource(request), json_object(request)
        )
        configuration = turn.relay_configuration(user, ttl=ttl, route_type=route_type)
        return Response(
            {
                "expiresOn": rfc3339(configuration.expires_on),
                "iceServers": configuration.ice_servers,
            }
        )
