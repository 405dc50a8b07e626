"""Domain errors of the numbers app; each carries its HTTP status and ACS error code."""

from __future__ import annotations

from apps.core.errors import ApiError

# How many row errors an API answer lists in `details`; the exception keeps them all.
MAX_ERROR_DETAILS = 100


class InventoryImportError(ApiError):
    """An inventory file was refused. `errors` holds every problem as (line, message),
    lines numbered as a person sees them in the file (the header is line 1)."""

    code = "InvalidInventoryFile"

    def __init__(self, message: str, *, errors: list[tuple[int, str]]) -> None:
        details = [
            {"code": "InvalidRow", "message": text, "target": f"line {line}"}
            for line, text in errors[:MAX_ERROR_DETAILS]
        ]
        super().__init__(message, details=details)
        self.errors = errors


class UnsupportedSeedCountry(ApiError):
    code = "UnsupportedCountry"


class InvalidSeedCount(ApiError):
    code = "InvalidCount"


class SeedRangeExhausted(ApiError):
    status = 409
    code = "FictionalRangeExhausted"


class NumbersUnavailable(ApiError):
    code = "NoNumbersAvailable"


class SearchNotFound(ApiError):
    status = 404
    code = "SearchNotFound"


class SearchNotPurchasable(ApiError):
    status = 409
    code = "SearchNotPurchasable"


class NumberNotFound(ApiError):
    status = 404
    code = "PhoneNumberNotFound"


class OperationNotFound(ApiError):
    status = 404
    code = "OperationNotFound"


class NumberBusy(ApiError):
    status = 409
    code = "OperationInProgress"


class ReservationNotFound(ApiError):
    status = 404
    code = "ReservationNotFound"


class InvalidNumberQuery(ApiError):
    code = "InvalidRequest"


class TooManyHeldNumbers(ApiError):
    """A resource holds SPOOL_MAX_HELD_NUMBERS in searches and reservations: 409, not 429,
    because the SDKs wait out a 429's Retry-After, and a hold lasts 16 minutes."""

    status = 409
    code = "TooManyHeldNumbers"


class SearchNotCancellable(ApiError):
    status = 409
    code = "SearchNotCancellable"
