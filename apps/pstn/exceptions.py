"""Domain errors of the PSTN app."""

from __future__ import annotations

from typing import Any

from apps.core.errors import ApiError, error_body


class SipConfigurationError(ApiError):
    """A SIP routing configuration ACS refuses. ACS answers `UnprocessableConfiguration`, 422
    (400 for duplicates), with the reason in `innererror` (`InvalidTrunkFqdn`, `MissingTrunk`,
    ...); Spool's `message` names the trunk or route as well."""

    status = 422
    code = "UnprocessableConfiguration"

    def __init__(
        self, inner_code: str, message: str, *, status: int | None = None, target: str = ""
    ) -> None:
        super().__init__(message, status=status, target=target or None)
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        body = error_body(self.code, self.message, target=self.target)
        body["error"]["innererror"] = {"code": self.inner_code, "message": self.message}
        return body


class InvalidTrunkSettings(ApiError):
    """An operator's trunk settings were refused; `field` names the setting."""

    code = "InvalidTrunkSettings"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, target=field)
        self.field = field
