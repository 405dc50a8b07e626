"""Domain errors of the SMS app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidSendRequest(ApiError):
    code = "InvalidRequest"


class MessageNotFound(ApiError):
    status = 404
    code = "MessageNotFound"


class InvalidOptOutRequest(ApiError):
    code = "InvalidRequest"


class InvalidHandsetReply(ApiError):
    code = "InvalidRequest"


class OptOutNotFound(ApiError):
    status = 404
    code = "NotFound"


class HandsetNotFound(ApiError):
    status = 404
    code = "NotFound"
