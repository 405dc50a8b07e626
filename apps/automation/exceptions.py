"""Domain errors of Call Automation; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidAutomationRequest(ApiError):
    code = "BadRequest"


class CallConnectionNotFound(ApiError):
    status = 404
    code = "8522"  # ACS: "Call not found" (the SDK shows the code as given)


class RecordingNotFound(ApiError):
    status = 404
    code = "NotFound"


class WrongCallState(ApiError):
    status = 400
    code = "8501"  # ACS: "Action is not valid when call is not in Established state."


class MediaPlaneUnavailable(ApiError):
    status = 503
    code = "ServiceUnavailable"


class NotSupported(ApiError):
    status = 400
    code = "NotSupported"
