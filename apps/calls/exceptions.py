"""Domain errors of the calls app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidRoomRequest(ApiError):
    code = "BadRequest"


class RoomNotFound(ApiError):
    status = 404
    code = "NotFound"


class InvalidCallRequest(ApiError):
    code = "BadRequest"


class CallNotFound(ApiError):
    status = 404
    code = "CallNotFound"


class CallNotAllowed(ApiError):
    status = 403
    code = "Forbidden"


class TooManyCalls(ApiError):
    status = 429
    code = "TooManyCalls"
