"""Number lookup: the ACS operator information search (`/operatorInformation/:search`).

Formats come from libphonenumber's metadata for any number. Spool knows the operator only of
numbers in its own inventory (it is their operator); for others it reports what the
numbering plan says (geographic or mobile ranges) and no operator details, rather than guess.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

from apps.core.errors import ApiError
from apps.numbers.models import NumberType, PhoneNumber

# Numbers one search may ask about.
MAX_LOOKUP_NUMBERS = 100

_PLAN_TYPES = {
    phonenumbers.PhoneNumberType.FIXED_LINE: "geographic",
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    # Both kinds share the range (North America): only the operator could tell.
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "unknown",
    phonenumbers.PhoneNumberType.UNKNOWN: "unknown",
}


_INVENTORY_TYPES: dict[str, str] = {
    NumberType.GEOGRAPHIC: "geographic",
    NumberType.MOBILE: "mobile",
    NumberType.TOLL_FREE: "other",
}


def check_operator_search(body: dict[str, Any]) -> tuple[list[phonenumbers.PhoneNumber], bool]:
    """The parsed numbers and whether details were asked for. Raises ApiError (400) naming
    the offending field."""
    numbers = body.get("phoneNumbers")
    if not isinstance(numbers, list) or not 1 <= len(numbers) <= MAX_LOOKUP_NUMBERS:
        raise ApiError(
            f"phoneNumbers must be a list of 1 to {MAX_LOOKUP_NUMBERS} phone numbers.",
            target="phoneNumbers",
        )
    options = body.get("options") or {}
    details = options.get("includeAdditionalOperatorDetails") if isinstance(options, dict) else 0
    if details is not None and not isinstance(details, bool):
        raise ApiError(
            "options.includeAdditionalOperatorDetails must be true or false.",
            target="options.includeAdditionalOperatorDetails",
        )
    parsed = []
    for index, text in enumerate(numbers):
        target = f"phoneNumbers[{index}]"
        try:
            number = phonenumbers.parse(text) if isinstance(text, str) else None
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise ApiError(f"{target} is not a valid E.164 phone number.", target=target)
        parsed.append(number)
    return parsed, bool(details)


def search_operator_information(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per number asked, in order (ACS's OperatorInformation)."""
    numbers, with_details = check_operator_search(body)
    e164 = [phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in numbers]
    ours = {row.number: row for row in PhoneNumber.objects.filter(number__in=e164)}
    return [
        _information(number, text, ours.get(text), with_details)
        for number, text in zip(numbers, e164, strict=True)
    ]


def _information(
    number: phonenumbers.PhoneNumber, e164: str, ours: PhoneNumber | None, with_details: bool
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "phoneNumber": e164,
        "nationalFormat": phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.NATIONAL
        ),
        "internationalFormat": phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.INTERNATIONAL
        ),
    }
    if not with_details:
        return info
    info["isoCountryCode"] = phonenumbers.region_code_for_number(number)
    if ours is not None:
        info["numberType"] = _INVENTORY_TYPES[ours.number_type]
        info["operatorDetails"] = {"name": _operator_name(ours)}
    else:
        info["numberType"] = _PLAN_TYPES.get(phonenumbers.number_type(number), "other")
    return info


def _operator_name(number: PhoneNumber) -> str:
    return "Spool" if number.carrier == "loopback" else f"Spool ({number.carrier})"
