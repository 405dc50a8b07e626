"""Browsing the available inventory through the ACS Phone Numbers API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.numbers.models import NumberStatus, NumberType, PhoneNumber
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db

API = "2025-06-01"


def _number(number: str, **fields) -> PhoneNumber:
    defaults = {
        "country_code": "US",
        "number_type": NumberType.GEOGRAPHIC,
        "locality": "Seattle",
        "administrative_division": "WA",
        "area_code": number[2:5],
        "monthly_cost": Decimal("1.00"),
        "currency": "USD",
    }
    return PhoneNumber.objects.create(number=number, **{**defaults, **fields})


@pytest.fixture
def inventory() -> None:
    _number("+12065550100")
    _number("+14255550100", locality="Redmond")
    _number("+14255550101", locality="Redmond", assignable_to_person=False)
    _number(
        "+18005550100",
        number_type=NumberType.TOLL_FREE,
        locality="",
        administrative_division="",
        area_code="800",
        monthly_cost=Decimal("2.00"),
    )
    _number(
        "+442079460000",
        country_code="GB",
        locality="London",
        administrative_division="ENG",
        area_code="20",
        currency="GBP",
    )
    _number(
        "+13125550100", locality="Chicago", administrative_division="IL", status=NumberStatus.OWNED
    )


def test_countries_lists_those_with_available_numbers(acs: AcsClient, inventory) -> None:
    response = acs.call("GET", "/availablePhoneNumbers/countries", api_version=API)
    assert response.status_code == 200
    assert response.json()["countries"] == [
        {"countryCode": "GB", "localizedName": "United Kingdom"},
        {"countryCode": "US", "localizedName": "United States"},
    ]


def test_localities_skip_sold_numbers_and_filter(acs: AcsClient, inventory) -> None:
    response = acs.call("GET", "/availablePhoneNumbers/countries/US/localities", api_version=API)
    names = [item["localizedName"] for item in response.json()["phoneNumberLocalities"]]
    assert names == ["Redmond", "Seattle"]  # Chicago's only number is owned
    assert (
        response.json()["phoneNumberLocalities"][0]["administrativeDivision"]["abbreviatedName"]
        == "WA"
    )


def test_area_codes_need_a_type_and_follow_filters(acs: AcsClient, inventory) -> None:
    def codes(query: str) -> list[str]:
        response = acs.call(
            "GET",
            "/availablePhoneNumbers/countries/US/areaCodes",
            query=f"api-version={API}&{query}",
        )
        assert response.status_code == 200, response.content
        return [item["areaCode"] for item in response.json()["areaCodes"]]

    assert codes("phoneNumberType=geographic") == ["206", "425"]
    assert codes("phoneNumberType=tollFree") == ["800"]
    assert codes("phoneNumberType=geographic&locality=Redmond") == ["425"]
    assert codes("phoneNumberType=geographic&assignmentType=person&locality=seattle") == ["206"]
    missing = acs.call("GET", "/availablePhoneNumbers/countries/US/areaCodes", api_version=API)
    assert missing.status_code == 400
    assert missing.json()["error"]["target"] == "phoneNumberType"


def test_offerings_per_type_assignment_and_price(acs: AcsClient, inventory) -> None:
    response = acs.call("GET", "/availablePhoneNumbers/countries/US/offerings", api_version=API)
    offerings = response.json()["phoneNumberOfferings"]
    assert {
        (o["phoneNumberType"], o["assignmentType"], o["cost"]["amount"]) for o in offerings
    } == {
        ("geographic", "application", 1.0),
        ("geographic", "person", 1.0),
        ("tollFree", "application", 2.0),
        ("tollFree", "person", 2.0),
    }
    assert offerings[0]["cost"] == {
        "amount": 1.0,
        "currencyCode": "USD",
        "billingFrequency": "monthly",
    }
    assert offerings[0]["availableCapabilities"] == {
        "calling": "inbound+outbound",
        "sms": "inbound+outbound",
    }


def test_pages_follow_next_links(acs: AcsClient, inventory) -> None:
    # given a page size of one
    first = acs.call(
        "GET", "/availablePhoneNumbers/countries", query=f"api-version={API}&maxPageSize=1"
    )
    body = first.json()

    # then the next link keeps the query and moves on
    assert body["countries"] == [{"countryCode": "GB", "localizedName": "United Kingdom"}]
    path, _, query = body["nextLink"].partition("?")
    # on the origin the client called, as the SDK signs the next request for its own host
    assert path == f"http://127.0.0.1:{acs.resource.port}/availablePhoneNumbers/countries"
    second = acs.call("GET", "/availablePhoneNumbers/countries", query=query).json()
    assert second["countries"] == [{"countryCode": "US", "localizedName": "United States"}]
    assert "nextLink" not in second


@pytest.mark.parametrize(
    "path, query",
    [
        ("/availablePhoneNumbers/countries/USA/localities", f"api-version={API}"),
        (
            "/availablePhoneNumbers/countries/US/areaCodes",
            f"api-version={API}&phoneNumberType=landline",
        ),
        (
            "/availablePhoneNumbers/countries/US/offerings",
            f"api-version={API}&assignmentType=robot",
        ),
        ("/availablePhoneNumbers/countries", f"api-version={API}&maxPageSize=0"),
        ("/availablePhoneNumbers/countries", f"api-version={API}&skip=x"),
        ("/availablePhoneNumbers/countries", "api-version=1999-01-01"),
    ],
)
def test_bad_queries_get_400_in_acs_shape(acs: AcsClient, inventory, path: str, query: str) -> None:
    response = acs.call("GET", path, query=query)
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}
