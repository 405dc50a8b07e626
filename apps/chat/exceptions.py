"""Domain errors of the chat app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidChatRequest(ApiError):
    code = "InvalidRequest"


class ThreadNotFound(ApiError):
    status = 404
    code = "NotFound"


class MessageNotFound(ApiError):
    status = 404
    code = "NotFound"


class NotAParticipant(ApiError):
    status = 403
    code = "Forbidden"


class ScopeNotAllowed(ApiError):
    status = 403
    code = "Forbidden"


class TooManyParticipants(ApiError):
    code = "TooManyParticipants"


class MessageTooLarge(ApiError):
    status = 413
    code = "RequestEntityTooLarge"
