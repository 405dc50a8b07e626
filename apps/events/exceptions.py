"""Domain errors of the events app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError


class InvalidSubscription(ApiError):
    code = "InvalidRequest"


class DuplicateSubscriptionName(ApiError):
    status = 409
    code = "SubscriptionNameTaken"


class WebhookValidationFailed(ApiError):
    code = "WebhookValidationFailed"


class SubscriptionNotFound(ApiError):
    status = 404
    code = "SubscriptionNotFound"


class SubscriptionNotActive(ApiError):
    status = 409
    code = "SubscriptionNotActive"


class EventNotFound(ApiError):
    status = 404
    code = "EventNotFound"


class DeliveryNotFound(ApiError):
    status = 404
    code = "DeliveryNotFound"


class DeliveryPending(ApiError):
    status = 409
    code = "DeliveryPending"


class InvalidValidationCode(ApiError):
    code = "InvalidValidationCode"
