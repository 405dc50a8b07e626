"""Domain errors of the calls app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidRoomRequest(ApiError):
    code = "BadRequest"


class RoomNotFound(ApiError):
    status = 404
    code = "NotFound"
