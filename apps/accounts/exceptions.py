"""Domain errors of the accounts app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class ResourceNotFound(ApiError):
    status = 404
    code = "ResourceNotFound"


class AccessDenied(ApiError):
    status = 403
    code = "Forbidden"


class DuplicateResourceName(ApiError):
    status = 409
    code = "ResourceNameTaken"


class InvalidResourceName(ApiError):
    code = "InvalidResourceName"


class MemberNotFound(ApiError):
    status = 404
    code = "MemberNotFound"


class UserNotFound(ApiError):
    status = 404
    code = "UserNotFound"


class LastOwner(ApiError):
    status = 409
    code = "LastOwner"


class IdentityNotFound(ApiError):
    status = 404
    code = "IdentityNotFound"


class InvalidScopes(ApiError):
    code = "InvalidScopes"


class InvalidExpiry(ApiError):
    code = "InvalidExpiresInMinutes"


class TokenRefused(ApiError):
    status = 401
    code = "InvalidToken"


class SignUpLinkInvalid(ApiError):
    code = "SignUpLinkInvalid"


class SignUpLinkExpired(ApiError):
    status = 410
    code = "SignUpLinkExpired"


class SignUpLinkUsed(ApiError):
    status = 409
    code = "SignUpLinkUsed"


class SignUpConflict(ApiError):
    status = 409
    code = "SignUpConflict"
