"""Number field checks at the edge: digits are ASCII digits, and an imported inventory file
holds no text that a database cannot store."""

from __future__ import annotations

from typing import Any

import pytest

from apps.core.errors import ApiError
from apps.numbers import inventory, orders
from apps.numbers.models import PhoneNumber
from tests.numbers.test_inventory import _csv, _errors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "most", "digits"),
    [
        ("425", 8, True),
        ("42\u00b2", 8, False),  # str.isdigit says yes to a superscript two
        ("\u0664\u0662\u0665", 8, False),  # and to Arabic-Indic digits
        ("4" * 9, 8, False),
        ("", 8, False),
        ("42 5", 8, False),
        (425, 8, False),
    ],
)
def test_digits_are_ascii_digits(value: Any, most: int, digits: bool) -> None:
    assert orders.is_digits(value, most) is digits


@pytest.mark.parametrize("number", ["+1425555010\u00b2", "1425555010\u0662", "+1\x004255550100"])
def test_an_owned_number_of_other_digits_is_not_a_phone_number(resource: Any, number: str) -> None:
    with pytest.raises(ApiError) as refused:
        orders.access_owned_number(resource, number)
    assert (refused.value.status, refused.value.code) == (400, "InvalidPhoneNumber")


@pytest.mark.parametrize(
    ("column", "value"),
    [("locality", "Red\x00mond"), ("administrative_division", "W\x07A"), ("carrier", "loop\nback")],
)
def test_an_inventory_row_with_a_control_character_is_refused_and_adds_nothing(
    column: str, value: str
) -> None:
    # given a row with the character in one column (a quoted CSV cell)
    row = {
        "locality": "Redmond",
        "administrative_division": "WA",
        "carrier": "",
    } | {column: value}
    line = (
        f'+14255550100,US,geographic,"{row["locality"]}","{row["administrative_division"]}",'
        f'425,,inbound+outbound,inbound+outbound,1.00,,USD,"{row["carrier"]}"'
    )

    # when
    errors = _errors(_csv(line))

    # then
    assert any(f"{column} holds a control character" in problem for _, problem in errors), errors
    assert not PhoneNumber.objects.exists()


def test_an_inventory_locality_keeps_a_quoted_line_break() -> None:
    # (CSV's own: a quoted cell may span lines; it is text, not a control character)
    line = '+14255550100,US,geographic,"Red\nmond",WA,425,,inbound+outbound,inbound+outbound,1.00,,USD,'
    inventory.import_numbers(_csv(line))
    assert PhoneNumber.objects.get().locality == "Red\nmond"
