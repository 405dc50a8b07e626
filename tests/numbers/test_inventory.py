"""Filling the inventory: CSV import, fictional demo numbers, and their commands."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from io import StringIO
from pathlib import Path

import phonenumbers
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.numbers import inventory
from apps.numbers.exceptions import (
    InvalidSeedCount,
    InventoryImportError,
    SeedRangeExhausted,
    UnsupportedSeedCountry,
)
from apps.numbers.models import Capability, NumberStatus, NumberType, PhoneNumber

pytestmark = pytest.mark.django_db

HEADER = (
    "number,country,type,locality,administrative_division,area_code,assignment,"
    "calling,sms,monthly_cost,setup_cost,currency,carrier"
)
US_ROW = "+14255550100,US,geographic,Redmond,WA,425,,inbound+outbound,inbound+outbound,1.00,,USD,"


def _csv(*rows: str, header: str = HEADER) -> list[str]:
    return [f"{line}\n" for line in (header, *rows)]


def _errors(rows: list[str]) -> list[tuple[int, str]]:
    with pytest.raises(InventoryImportError) as refused:
        inventory.import_numbers(rows)
    assert refused.value.status == 400
    assert refused.value.code == "InvalidInventoryFile"
    return refused.value.errors


def _lines(errors: list[tuple[int, str]]) -> list[int]:
    return sorted({line for line, _ in errors})


def _seed(country: str, number: str, **fields: object) -> PhoneNumber:
    defaults: dict[str, object] = {
        "country_code": country,
        "number_type": NumberType.GEOGRAPHIC,
        "monthly_cost": Decimal("1.00"),
        "currency": "USD",
    }
    return PhoneNumber.objects.create(number=number, **{**defaults, **fields})


# --- import_numbers ---------------------------------------------------------------------------
def test_a_valid_file_imports_every_row() -> None:
    # given
    rows = _csv(
        US_ROW,
        "+18005550100,US,tollFree,,,,application,inbound+outbound,outbound,2.00,0.50,USD,acme",
        "+442079460000,GB,geographic,London,England,20,person,inbound,none,1.5,0,GBP,",
        "+447400123456,GB,mobile,,,,person;application,outbound,inbound+outbound,3,,GBP,",
    )

    # when
    result = inventory.import_numbers(rows)

    # then
    assert result.created == 4
    assert result.by_country == {"US": 2, "GB": 2}
    assert result.summary() == "Imported 4 numbers (GB: 2, US: 2)"
    redmond = PhoneNumber.objects.get(number="+14255550100")
    assert redmond.country_code == "US"
    assert redmond.number_type == NumberType.GEOGRAPHIC
    assert (redmond.locality, redmond.administrative_division, redmond.area_code) == (
        "Redmond",
        "WA",
        "425",
    )
    assert redmond.assignable_to_person and redmond.assignable_to_application
    assert redmond.setup_cost == 0 and redmond.carrier == "loopback"
    assert redmond.status == NumberStatus.AVAILABLE and redmond.owner is None
    toll_free = PhoneNumber.objects.get(number="+18005550100")
    assert not toll_free.assignable_to_person and toll_free.assignable_to_application
    assert (toll_free.sms, toll_free.setup_cost, toll_free.carrier) == (
        Capability.OUTBOUND,
        Decimal("0.50"),
        "acme",
    )
    assert toll_free.area_code == "800"  # derived when the column is empty
    mobile = PhoneNumber.objects.get(number="+447400123456")
    assert mobile.assignable_to_person and mobile.assignable_to_application
    assert mobile.monthly_cost == Decimal("3")


def test_optional_columns_may_be_left_out_in_any_order_and_case() -> None:
    # given
    rows = [
        "\ufeffNumber, Country ,TYPE,calling,sms,monthly_cost,currency\n",
        "+441134960000,GB,geographic,none,inbound,0,GBP\n",
        "+18665550100,CA,tollFree,inbound+outbound,inbound+outbound,1.00,CAD\n",
    ]

    # when
    result = inventory.import_numbers(rows)

    # then
    assert result.by_country == {"GB": 1, "CA": 1}
    leeds = PhoneNumber.objects.get(number="+441134960000")
    assert (leeds.area_code, leeds.locality, leeds.carrier) == ("113", "", "loopback")
    # NANP toll-free numbers are valid in Canada too.
    assert PhoneNumber.objects.get(number="+18665550100").country_code == "CA"


def test_an_open_file_imports(tmp_path: Path) -> None:
    # given
    path = tmp_path / "numbers.csv"
    path.write_text("".join(_csv(US_ROW)))

    # when
    with path.open(newline="") as rows:
        result = inventory.import_numbers(rows, source_name="numbers.csv")

    # then
    assert result.created == 1


def test_every_invalid_row_is_reported_by_line_and_nothing_is_written() -> None:
    # given
    rows = _csv(
        US_ROW,  # line 2: fine
        "14255550101,US,geographic,,,,,inbound,inbound,1,,USD,",  # 3: not E.164
        "+1425555010,US,geographic,,,,,inbound,inbound,1,,USD,",  # 4: too short
        "+442079460001,US,geographic,,,,,inbound,inbound,1,,USD,",  # 5: GB number, US
        "+14255550102,us,geographic,,,,,inbound,inbound,1,,USD,",  # 6: lower-case country
        "+14255550103,US,landline,,,,,inbound,inbound,1,,USD,",  # 7: unknown type
        "+14255550104,US,geographic,,,,,both,inbound,1,,USD,",  # 8: bad calling
        "+14255550105,US,geographic,,,,,inbound,always,1,,USD,",  # 9: bad sms
        "+14255550106,US,geographic,,,,,inbound,inbound,-1,,USD,",  # 10: negative cost
        "+14255550107,US,geographic,,,,,inbound,inbound,1.005,,USD,",  # 11: 3 decimals
        "+14255550108,US,geographic,,,,,inbound,inbound,1,abc,USD,",  # 12: setup not a number
        "+14255550109,US,geographic,,,,,inbound,inbound,1,,usd,",  # 13: bad currency
        "+14255550110,US,geographic,,,,robot,inbound,inbound,1,,USD,",  # 14: bad assignment
        "+14255550111,US,geographic,,,,,,inbound,1,,USD,",  # 15: missing calling
        "+14255550112,US,tollFree,,,,,inbound,inbound,1,,USD,",  # 16: not toll-free
        "+18005550101,US,geographic,,,,,inbound,inbound,1,,USD,",  # 17: is toll-free
        "+14255550113,US,geographic,,,4x5,,inbound,inbound,1,,USD,",  # 18: bad area code
        "+14255550114,US,geographic,,,,,inbound,inbound,1,,USD,,extra",  # 19: extra field
        "+14255550115,US,geographic,,,,,inbound,inbound,NaN,,USD,",  # 20: not finite
        "+14255550116,ZZ,geographic,,,,,inbound,inbound,1,,USD,",  # 21: unknown country
    )

    # when
    errors = _errors(rows)

    # then
    assert _lines(errors) == list(range(3, 22))
    messages = dict(errors)
    assert "E.164" in messages[3]
    assert "not a valid phone number" in messages[4]
    assert "belongs to GB, not US" in messages[5]
    assert "country 'us'" in messages[6]
    assert "type 'landline'" in messages[7]
    assert "calling 'both'" in messages[8]
    assert "sms 'always'" in messages[9]
    assert "monthly_cost '-1'" in messages[10]
    assert "monthly_cost '1.005'" in messages[11]
    assert "setup_cost 'abc' is not a number" in messages[12]
    assert "currency 'usd'" in messages[13]
    assert "assignment 'robot'" in messages[14]
    assert "calling is required" in messages[15]
    assert "not a toll-free number" in messages[16]
    assert "is toll-free, not geographic" in messages[17]
    assert "area_code '4x5'" in messages[18]
    assert "more fields than the header" in messages[19]
    assert "monthly_cost 'NaN'" in messages[20]
    assert "country 'ZZ'" in messages[21]
    assert PhoneNumber.objects.count() == 0


def test_the_error_message_and_details_name_the_lines() -> None:
    # given
    rows = _csv(US_ROW, "+1425,US,geographic,,,,,inbound,inbound,1,,USD,")

    # when
    with pytest.raises(InventoryImportError) as refused:
        inventory.import_numbers(rows, source_name="carrier.csv")

    # then
    assert refused.value.message.startswith("carrier.csv was not imported; line 3: ")
    assert refused.value.details == [
        {"code": "InvalidRow", "message": refused.value.errors[0][1], "target": "line 3"}
    ]


def test_lines_count_as_in_the_file_with_blank_lines_and_quoted_line_breaks() -> None:
    # given
    rows = [
        HEADER + "\n",
        "\n",  # line 2: blank, skipped
        ",,,,,,,,,,,,\n",  # line 3: empty cells only, skipped
        '+14255550100,US,geographic,"Red\n',  # lines 4-5: one record
        'mond",WA,425,,inbound,inbound,1,,USD,\n',
        "+14255550101,US,geographic,,,,,inbound,inbound,1,,EURO,\n",  # line 6
    ]

    # when
    errors = _errors(rows)

    # then
    assert errors == [(6, "currency 'EURO' must be three upper-case letters, e.g. USD.")]


def test_a_number_twice_in_the_file_is_reported_on_its_second_line() -> None:
    # given
    rows = _csv(US_ROW, "+12065550100,US,geographic,,,,,inbound,inbound,1,,USD,", US_ROW)

    # when
    errors = _errors(rows)

    # then
    assert errors == [(4, "+14255550100 is already on line 2.")]
    assert PhoneNumber.objects.count() == 0


def test_a_number_already_in_the_inventory_is_reported() -> None:
    # given
    _seed("US", "+14255550100", status=NumberStatus.OWNED)

    # when
    errors = _errors(_csv("+12065550100,US,geographic,,,,,inbound,inbound,1,,USD,", US_ROW))

    # then
    assert errors == [(3, "+14255550100 is already in the inventory.")]
    assert PhoneNumber.objects.count() == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("number,country,type,calling,sms,monthly_cost", "Missing required column(s): currency."),
        (
            "number,country,type,calling,sms,monthly_cost,currency,colour",
            "Unknown column 'colour'.",
        ),
        (
            "number,country,type,calling,sms,monthly_cost,currency,Currency",
            "Column 'currency' appears twice.",
        ),
    ],
)
def test_a_bad_header_refuses_the_file_on_line_1(header: str, expected: str) -> None:
    # when
    errors = _errors(_csv("+14255550100,US,geographic,inbound,inbound,1,USD", header=header))

    # then
    assert _lines(errors) == [1]
    assert expected in [message for _, message in errors]
    assert PhoneNumber.objects.count() == 0


def test_an_empty_file_is_refused() -> None:
    assert _errors([]) == [(1, "The file is empty; the first line must name the columns.")]


def test_a_header_without_rows_imports_nothing() -> None:
    assert inventory.import_numbers(_csv()).summary() == "Imported 0 numbers"


def test_a_large_file_takes_a_bounded_number_of_queries(django_assert_max_num_queries) -> None:
    # given: 2,500 numbers, 1,000 of them already in the inventory
    numbers = [f"+1206555{n:04d}" for n in range(2000, 4500)]
    PhoneNumber.objects.bulk_create(
        PhoneNumber(number=n, country_code="US", monthly_cost=1, currency="USD")
        for n in numbers[:1000]
    )
    rows = _csv(*(f"{n},US,geographic,,,,,inbound,inbound,1,,USD," for n in numbers))

    # when: the existence check runs in chunks, not one query per row
    with django_assert_max_num_queries(3):
        errors = _errors(rows)

    # then
    assert len(errors) == 1000

    # when: the new ones import in batches (of 1,000, or fewer where the database's limit
    # on query parameters says so, as on SQLite)
    PhoneNumber.objects.all().delete()
    fields = [f for f in PhoneNumber._meta.concrete_fields if not f.primary_key]
    batch = min(1000, connection.ops.bulk_batch_size(fields, [PhoneNumber()] * 2500))
    with django_assert_max_num_queries(3 + math.ceil(2500 / batch) + 2):
        result = inventory.import_numbers(rows)

    # then
    assert result.created == 2500


# --- seed_numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fictional_range",
    [r for spec in inventory.DEMO_COUNTRIES.values() for r in spec.ranges],
    ids=lambda r: f"{r.prefix}{r.first}-{r.last}",
)
def test_every_number_of_every_fictional_range_is_valid(fictional_range) -> None:
    # given
    country = next(
        code for code, spec in inventory.DEMO_COUNTRIES.items() if fictional_range in spec.ranges
    )

    # when
    numbers = fictional_range.numbers()

    # then
    assert len(numbers) == fictional_range.last - fictional_range.first + 1
    assert inventory.fictional_numbers(fictional_range) == tuple(numbers)
    for number in numbers:
        phone = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number_for_region(phone, country), number
        assert inventory.area_code_of(phone) == fictional_range.area_code
        is_toll_free = phonenumbers.number_type(phone) == phonenumbers.PhoneNumberType.TOLL_FREE
        assert is_toll_free == (fictional_range.number_type == NumberType.TOLL_FREE)


def test_fictional_ranges_do_not_overlap() -> None:
    numbers = [
        n for spec in inventory.DEMO_COUNTRIES.values() for r in spec.ranges for n in r.numbers()
    ]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("country", ["US", "CA", "GB", "AU"])
def test_seed_adds_exactly_n_valid_numbers_of_the_country(country: str) -> None:
    # when
    added = inventory.seed_numbers(country, 25)

    # then
    assert added == 25
    seeded = list(PhoneNumber.objects.all())
    assert len(seeded) == 25
    types = Counter(n.number_type for n in seeded)
    assert types == {NumberType.GEOGRAPHIC: 20, NumberType.TOLL_FREE: 5}
    geographic = [n for n in seeded if n.number_type == NumberType.GEOGRAPHIC]
    assert len({n.locality for n in geographic}) >= 4  # spread over the ranges
    for number in seeded:
        phone = phonenumbers.parse(number.number)
        assert phonenumbers.is_valid_number_for_region(phone, country)
        assert number.country_code == country
        assert number.area_code == inventory.area_code_of(phone)
        assert number.calling == number.sms == Capability.BOTH
        assert number.assignable_to_person and number.assignable_to_application
        assert number.currency == inventory.DEMO_COUNTRIES[country].currency
        assert number.carrier == "loopback" and number.status == NumberStatus.AVAILABLE
    for number in geographic:
        assert number.locality and number.administrative_division


def test_seed_prices_like_acs_in_the_us() -> None:
    # when
    inventory.seed_numbers("us", 5)

    # then
    prices = {(n.number_type, n.monthly_cost, n.setup_cost) for n in PhoneNumber.objects.all()}
    assert prices == {
        (NumberType.GEOGRAPHIC, Decimal("1.00"), Decimal("0.00")),
        (NumberType.TOLL_FREE, Decimal("2.00"), Decimal("0.00")),
    }


def test_seed_is_additive_and_skips_numbers_already_in_the_inventory() -> None:
    # given: the first number of the first range is already sold
    _seed("US", "+12065550100", status=NumberStatus.OWNED)
    inventory.seed_numbers("US", 12)

    # when
    added = inventory.seed_numbers("US", 12)

    # then
    assert added == 12
    assert PhoneNumber.objects.count() == 25
    numbers = list(PhoneNumber.objects.values_list("number", flat=True))
    assert len(numbers) == len(set(numbers))


def test_small_seeds_keep_the_toll_free_share() -> None:
    # when
    for _ in range(10):
        inventory.seed_numbers("GB", 1)

    # then
    types = Counter(PhoneNumber.objects.values_list("number_type", flat=True))
    assert types == {NumberType.GEOGRAPHIC: 8, NumberType.TOLL_FREE: 2}


def test_seed_uses_geographic_numbers_when_toll_free_ones_run_out() -> None:
    # when: Australia has six fictional freephone numbers
    inventory.seed_numbers("AU", 50)

    # then
    types = Counter(PhoneNumber.objects.values_list("number_type", flat=True))
    assert types == {NumberType.GEOGRAPHIC: 44, NumberType.TOLL_FREE: 6}


def test_seed_beyond_the_ranges_says_how_many_are_left_and_writes_nothing() -> None:
    # given
    capacity = sum(len(r.numbers()) for r in inventory.DEMO_COUNTRIES["CA"].ranges)
    inventory.seed_numbers("CA", capacity - 3)

    # when
    with pytest.raises(SeedRangeExhausted, match="Only 3 fictional CA number"):
        inventory.seed_numbers("CA", 4)

    # then
    assert PhoneNumber.objects.count() == capacity - 3
    assert inventory.seed_numbers("CA", 3) == 3


def test_seed_refuses_an_unsupported_country_and_a_bad_count() -> None:
    with pytest.raises(UnsupportedSeedCountry, match="US, CA, GB, AU"):
        inventory.seed_numbers("FR", 5)
    with pytest.raises(InvalidSeedCount):
        inventory.seed_numbers("US", 0)
    assert PhoneNumber.objects.count() == 0


def test_seed_demo_numbers_tops_up_once() -> None:
    # given: some US demo numbers exist already, one sold
    inventory.seed_numbers("US", 7)
    PhoneNumber.objects.filter(number="+12065550100").update(status=NumberStatus.OWNED)

    # when
    first = inventory.seed_demo_numbers()
    second = inventory.seed_demo_numbers()

    # then
    assert first == {"US": 13, "CA": 20, "GB": 20, "AU": 10}
    assert second == {"US": 0, "CA": 0, "GB": 0, "AU": 0}
    counts = Counter(PhoneNumber.objects.values_list("country_code", flat=True))
    assert counts == {"US": 20, "CA": 20, "GB": 20, "AU": 10}


# --- Commands ---------------------------------------------------------------------------------
def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_numbers_command(tmp_path: Path) -> None:
    # given
    path = tmp_path / "carrier.csv"
    path.write_text(
        "".join(_csv(US_ROW, "+442079460000,GB,geographic,,,,,inbound,none,1,,GBP,")),
        encoding="utf-8-sig",
    )

    # when
    out, _ = _run("import_numbers", str(path))

    # then
    assert out.strip() == "Imported 2 numbers (GB: 1, US: 1)"


def test_import_numbers_command_lists_problems_on_stderr(tmp_path: Path) -> None:
    # given
    path = tmp_path / "carrier.csv"
    path.write_text("".join(_csv(US_ROW, "+1425,US,geographic,,,,,inbound,inbound,1,,usd,")))
    err = StringIO()

    # when
    with pytest.raises(CommandError, match="carrier.csv was not imported: 2 problem"):
        call_command("import_numbers", str(path), stdout=StringIO(), stderr=err)

    # then
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("line 3: ") for line in lines)
    assert PhoneNumber.objects.count() == 0


def test_import_numbers_command_with_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        _run("import_numbers", str(tmp_path / "missing.csv"))


def test_seed_numbers_command() -> None:
    # when
    out, _ = _run("seed_numbers", "--country", "GB", "--count", "6")

    # then
    assert out.strip() == "Added 6 demo number(s) in GB."
    assert PhoneNumber.objects.filter(country_code="GB").count() == 6
    with pytest.raises(CommandError, match="supported countries"):
        _run("seed_numbers", "--country", "XX", "--count", "1")
    with pytest.raises(CommandError, match="positive"):
        _run("seed_numbers", "--country", "US", "--count", "-1")


def test_seed_demo_numbers_command_prints_the_same_twice() -> None:
    # when
    first, _ = _run("seed_demo_numbers")
    second, _ = _run("seed_demo_numbers")

    # then
    assert first == second == "Demo phone numbers (US: 20, CA: 20, GB: 20, AU: 10).\n"


def test_seed_demo_numbers_gives_the_demo_resource_one_number_once(owner) -> None:
    # given the demo resource (seed_demo makes it)
    from apps.accounts import services as accounts

    demo = accounts.create_resource("Demo", owner=owner)
    assert demo.slug == "demo"
    # when the demo numbers are seeded twice
    first, _ = _run("seed_demo_numbers")
    second, _ = _run("seed_demo_numbers")
    # then the demo resource owns one number with SMS both ways, named in the summary
    owned = PhoneNumber.objects.get(owner=demo)
    assert (owned.status, owned.owned_sms, owned.country_code) == (
        "owned",
        "inbound+outbound",
        "US",
    )
    assert first == second
    assert f"The demo resource owns {owned.number}" in first
