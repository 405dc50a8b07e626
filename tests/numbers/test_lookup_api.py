"""The ACS operator information search (`/operatorInformation/:search`)."""

from __future__ import annotations

import pytest

from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db

API = "2025-06-01"
PATH = "/operatorInformation/:search"


def test_formats_for_any_number_and_details_on_request(acs: AcsClient, make_numbers) -> None:
    # given a number of Spool's inventory and one outside it
    ours = make_numbers(1)[0].number

    # when
    plain = acs.call("POST", PATH, {"phoneNumbers": [ours, "+447400123456"]}, api_version=API)
    detailed = acs.call(
        "POST",
        PATH,
        {
            "phoneNumbers": [ours, "+447400123456"],
            "options": {"includeAdditionalOperatorDetails": True},
        },
        api_version=API,
    )

    # then formats always, type, country and operator only when asked
    assert plain.status_code == 200, plain.content
    assert plain.json()["values"] == [
        {
            "phoneNumber": ours,
            "nationalFormat": "(425) 555-0100",
            "internationalFormat": "+1 425-555-0100",
        },
        {
            "phoneNumber": "+447400123456",
            "nationalFormat": "07400 123456",
            "internationalFormat": "+44 7400 123456",
        },
    ]
    first, second = detailed.json()["values"]
    assert first["isoCountryCode"] == "US" and first["numberType"] == "geographic"
    assert first["operatorDetails"] == {"name": "Spool"}
    assert second["isoCountryCode"] == "GB" and second["numberType"] == "mobile"
    assert "operatorDetails" not in second


@pytest.mark.parametrize(
    "body, target",
    [
        ({}, "phoneNumbers"),
        ({"phoneNumbers": []}, "phoneNumbers"),
        ({"phoneNumbers": "+14255550100"}, "phoneNumbers"),
        ({"phoneNumbers": ["+1425555010"]}, "phoneNumbers[0]"),
        ({"phoneNumbers": ["+14255550100", 5]}, "phoneNumbers[1]"),
        ({"phoneNumbers": ["\ud800"]}, "phoneNumbers[0]"),
        ({"phoneNumbers": ["+14255550100"] * 101}, "phoneNumbers"),
        (
            {"phoneNumbers": ["+14255550100"], "options": {"includeAdditionalOperatorDetails": 1}},
            "options.includeAdditionalOperatorDetails",
        ),
    ],
)
def test_bad_searches_are_400_naming_the_field(acs: AcsClient, body, target) -> None:
    response = acs.call("POST", PATH, body, api_version=API)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["target"] == target
