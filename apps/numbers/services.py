"""Phone numbers as tenants browse them: countries, localities, area codes and offerings of
the available inventory. (Inventory import and seeding: apps/numbers/inventory.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import phonenumbers
from django.db.models import Q, QuerySet

from apps.numbers.exceptions import InvalidNumberQuery
from apps.numbers.models import NumberStatus, NumberType, PhoneNumber

ASSIGNMENT_TYPES = ("person", "application")

# Names shown for the countries Spool seeds; any other imported country shows its code.
COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "AU": "Australia",
    "IE": "Ireland",
    "DE": "Germany",
    "FR": "France",
    "NL": "Netherlands",
}


@dataclass(frozen=True)
class Offering:
    number_type: str
    assignment_type: str
    calling: str
    sms: str
    monthly_cost: Decimal
    currency: str


def available_numbers(country_code: str | None = None) -> QuerySet[PhoneNumber]:
    """Unsold numbers, unordered (a default ORDER BY would defeat DISTINCT)."""
    numbers = PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE).order_by()
    if country_code is not None:
        numbers = numbers.filter(country_code=check_country(country_code))
    return numbers


def check_country(country_code: str) -> str:
    code = (country_code or "").upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidNumberQuery(
            f"{country_code!r} is not an ISO 3166 two-letter country code with telephone numbers.",
            target="countryCode",
        )
    return code


def check_number_type(value: str | None, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidNumberQuery("phoneNumberType is required.", target="phoneNumberType")
        return None
    if value not in NumberType.values:
        raise InvalidNumberQuery(
            f"phoneNumberType must be one of {', '.join(NumberType.values)}.",
            target="phoneNumberType",
        )
    return value


def check_assignment_type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in ASSIGNMENT_TYPES:
        raise InvalidNumberQuery(
            f"assignmentType must be one of {', '.join(ASSIGNMENT_TYPES)}.", target="assignmentType"
        )
    return value


def assignable_to(assignment_type: str) -> Q:
    return (
        Q(assignable_to_person=True)
        if assignment_type == "person"
        else Q(assignable_to_application=True)
    )


def list_countries() -> list[tuple[str, str]]:
    """(code, name) of every country with available numbers, by name."""
    codes = available_numbers().values_list("country_code", flat=True).distinct()
    return sorted(((code, COUNTRY_NAMES.get(code, code)) for code in codes), key=lambda c: c[1])


def list_localities(
    country_code: str, *, administrative_division: str | None = None, number_type: str | None = None
) -> list[tuple[str, str]]:
    """(locality, administrative division) pairs with available numbers in the country."""
    numbers = available_numbers(country_code).exclude(locality="")
    if administrative_division:
        numbers = numbers.filter(administrative_division__iexact=administrative_division)
    if check_number_type(number_type):
        numbers = numbers.filter(number_type=number_type)
    pairs = numbers.values_list("locality", "administrative_division").distinct()
    return sorted(pairs)


def list_area_codes(
    country_code: str,
    *,
    number_type: str | None,
    assignment_type: str | None = None,
    locality: str | None = None,
    administrative_division: str | None = None,
) -> list[str]:
    """Area codes with available numbers of the type (required, as in ACS)."""
    numbers = available_numbers(country_code).filter(
        number_type=check_number_type(number_type, required=True)
    )
    if check_assignment_type(assignment_type):
        numbers = numbers.filter(assignable_to(assignment_type or ""))
    if locality:
        numbers = numbers.filter(locality__iexact=locality)
    if administrative_division:
        numbers = numbers.filter(administrative_division__iexact=administrative_division)
    return sorted(numbers.exclude(area_code="").values_list("area_code", flat=True).distinct())


def list_offerings(
    country_code: str, *, number_type: str | None = None, assignment_type: str | None = None
) -> list[Offering]:
    """What can be bought in the country: one offering per type, assignment type,
    capabilities and price among the available numbers."""
    numbers = available_numbers(country_code)
    if check_number_type(number_type):
        numbers = numbers.filter(number_type=number_type)
    wanted = [check_assignment_type(assignment_type)] if assignment_type else list(ASSIGNMENT_TYPES)
    offerings: set[Offering] = set()
    for kind in wanted:
        assert kind is not None
        rows = (
            numbers.filter(assignable_to(kind))
            .values_list("number_type", "calling", "sms", "monthly_cost", "currency")
            .distinct()
        )
        offerings.update(Offering(row[0], kind, row[1], row[2], row[3], row[4]) for row in rows)
    return sorted(
        offerings,
        key=lambda o: (o.number_type, o.assignment_type, o.monthly_cost, o.calling, o.sms),
    )


def cost_body(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"amount": float(amount), "currencyCode": currency, "billingFrequency": "monthly"}
