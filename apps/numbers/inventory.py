"""The operator's number inventory: importing a carrier's CSV, and seeding demo numbers from
ranges reserved for fiction.

Commands (`import_numbers`, `seed_numbers`, `seed_demo_numbers`) and the console upload
call these functions; they hold the rules.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import TextIO

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core.parsers import is_single_line, is_text
from apps.numbers.exceptions import (
    InvalidSeedCount,
    InventoryImportError,
    SeedRangeExhausted,
    UnsupportedSeedCountry,
)
from apps.numbers.models import AssignmentType, Capability, NumberStatus, NumberType, PhoneNumber

# Below SQLite's historical limit of 999 parameters per query.
QUERY_CHUNK = 900
INSERT_BATCH = 1000

# --- CSV import -------------------------------------------------------------------------------
REQUIRED_COLUMNS = ("number", "country", "type", "calling", "sms", "monthly_cost", "currency")
OPTIONAL_COLUMNS = (
    "locality",
    "administrative_division",
    "area_code",
    "assignment",
    "setup_cost",
    "carrier",
)
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
ASSIGNMENTS = ("person", "application")
DEFAULT_CARRIER = "loopback"

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_AREA_CODE = re.compile(r"[0-9]{1,8}")
_CENT = Decimal("0.01")
_MAX_COST = Decimal("99999999.99")  # DecimalField(max_digits=10, decimal_places=2)
_TEXT_LIMITS = {"locality": 100, "administrative_division": 100, "carrier": 64}
_TYPES = frozenset(NumberType.values)
_CAPABILITIES = frozenset(Capability.values)


@dataclass(frozen=True)
class ImportResult:
    created: int
    by_country: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """`Imported 3 numbers (GB: 1, US: 2)`."""
        noun = "number" if self.created == 1 else "numbers"
        counts = ", ".join(f"{code}: {n}" for code, n in sorted(self.by_country.items()))
        return f"Imported {self.created} {noun}" + (f" ({counts})" if counts else "")


def import_numbers(rows: Iterable[str] | TextIO, *, source_name: str = "") -> ImportResult:
    """Add every number of a carrier's CSV file to the inventory as available.

    `rows` are the file's lines (an open text file will do; open it with `newline=""`).
    The header names the columns (any order, case-insensitive): required
    number, country, type, calling, sms, monthly_cost, currency; optional locality,
    administrative_division, area_code, assignment, setup_cost, carrier.

    All or nothing: every row is checked first (including against numbers already in the
    inventory, in chunked queries); if any is invalid, raises InventoryImportError listing
    every problem by line and writes nothing. Otherwise inserts all rows in one transaction.
    """
    name = source_name or "The file"
    reader = csv.DictReader(rows)
    errors: list[tuple[int, str]] = []
    numbers: list[PhoneNumber] = []
    try:
        header = _check_header(reader, name)
        first_line: dict[str, int] = {}
        for row in _data_rows(reader):
            line = reader.line_num
            number, problems = _parse_row(row, header)
            errors += [(line, problem) for problem in problems]
            if number is None:
                continue
            if number.number in first_line:
                errors.append(
                    (line, f"{number.number} is already on line {first_line[number.number]}.")
                )
                continue
            first_line[number.number] = line
            if not problems:
                numbers.append(number)
    except UnicodeDecodeError:
        raise _refused(name, [(reader.line_num + 1, "The file is not UTF-8 text.")]) from None
    except csv.Error as error:
        raise _refused(name, [(reader.line_num, f"Unreadable CSV: {error}.")]) from None

    known = existing_numbers(first_line)
    errors += [(first_line[n], f"{n} is already in the inventory.") for n in known]
    if errors:
        raise _refused(name, errors)

    try:
        with transaction.atomic():
            PhoneNumber.objects.bulk_create(numbers, batch_size=INSERT_BATCH)
    except IntegrityError:
        # Another import or seed added one of these numbers after the check above.
        raise _refused(
            name, [(1, "The inventory changed during the import; nothing was written. Retry.")]
        ) from None
    return ImportResult(len(numbers), dict(Counter(n.country_code for n in numbers)))


def existing_numbers(numbers: Iterable[str]) -> set[str]:
    """Which of these E.164 numbers are in the inventory already (any status)."""
    wanted = list(numbers)
    found: set[str] = set()
    for start in range(0, len(wanted), QUERY_CHUNK):
        chunk = wanted[start : start + QUERY_CHUNK]
        found.update(PhoneNumber.objects.filter(number__in=chunk).values_list("number", flat=True))
    return found


def _refused(name: str, errors: list[tuple[int, str]]) -> InventoryImportError:
    errors = sorted(errors, key=lambda error: error[0])
    line, first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return InventoryImportError(
        f"{name} was not imported; line {line}: {first}{more}", errors=errors
    )


def _check_header(reader: csv.DictReader[str], name: str) -> dict[str, str]:
    """Map each known column to its name as written in the file. Raises on an empty file,
    unknown, repeated or missing columns (problems of the file, reported on line 1)."""
    names = reader.fieldnames
    if not names:
        raise _refused(name, [(1, "The file is empty; the first line must name the columns.")])
    problems: list[str] = []
    header: dict[str, str] = {}
    for raw in names:
        column = raw.strip().lstrip("\ufeff").strip().lower()
        if column not in COLUMNS:
            problems.append(f"Unknown column {raw.strip() or '(empty)'!r}.")
        elif column in header:
            problems.append(f"Column {column!r} appears twice.")
        else:
            header[column] = raw
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        problems.append(f"Missing required column(s): {', '.join(missing)}.")
    if problems:
        problems.append(f"Known columns: {', '.join(COLUMNS)}.")
        raise _refused(name, [(1, problem) for problem in problems])
    return header


def _data_rows(reader: csv.DictReader[str]) -> Iterator[dict[str | None, str | list[str]]]:
    for row in reader:
        # A line of bare commas is as empty as a blank line (which DictReader skips).
        if any(isinstance(v, list) or (v or "").strip() for v in row.values()):
            yield row


def _parse_row(
    row: dict[str | None, str | list[str]], header: dict[str, str]
) -> tuple[PhoneNumber | None, list[str]]:
    """The row as an unsaved PhoneNumber (None when its number is unusable) and its problems."""
    problems: list[str] = []
    if None in row:
        problems.append(f"The row has more fields than the header ({len(header)}).")

    def value(column: str) -> str:
        raw = row.get(header[column]) if column in header else None
        return raw.strip() if isinstance(raw, str) else ""

    for column in REQUIRED_COLUMNS:
        if not value(column):
            problems.append(f"{column} is required.")

    country = value("country")
    if country and (
        not re.fullmatch(r"[A-Z]{2}", country) or country not in phonenumbers.SUPPORTED_REGIONS
    ):
        problems.append(
            f"country {country!r} is not an upper-case ISO 3166 two-letter code of a "
            "country with phone numbers."
        )
        country = ""

    number_type = value("type")
    if number_type and number_type not in _TYPES:
        problems.append(f"type {number_type!r} must be one of {', '.join(NumberType.values)}.")
        number_type = ""

    phone = _check_number(value("number"), country, number_type, problems)

    for column in ("calling", "sms"):
        if value(column) and value(column) not in _CAPABILITIES:
            problems.append(
                f"{column} {value(column)!r} must be one of {', '.join(Capability.values)}."
            )

    monthly_cost = _check_cost("monthly_cost", value("monthly_cost"), problems)
    setup_cost = _check_cost("setup_cost", value("setup_cost") or "0", problems)

    currency = value("currency")
    if currency and not _CURRENCY.fullmatch(currency):
        problems.append(f"currency {currency!r} must be three upper-case letters, e.g. USD.")

    area_code = value("area_code")
    if area_code and not _AREA_CODE.fullmatch(area_code):
        problems.append(f"area_code {area_code!r} must be 1 to 8 digits.")

    assignment = value("assignment")
    kinds = {part.strip() for part in assignment.split(";")} if assignment else set(ASSIGNMENTS)
    if not kinds or not kinds <= set(ASSIGNMENTS):
        problems.append(
            f"assignment {assignment!r} must be person, application or person;application."
        )

    for column, limit in _TEXT_LIMITS.items():
        if len(value(column)) > limit:
            problems.append(f"{column} is longer than {limit} characters.")
        elif not (is_single_line if column == "carrier" else is_text)(value(column)):
            # (a NUL above all: PostgreSQL stores none; a quoted line break is CSV's own)
            problems.append(f"{column} holds a control character.")

    if phone is None:
        return None, problems
    number = PhoneNumber(
        number=phonenumbers.format_number(phone, phonenumbers.PhoneNumberFormat.E164),
        country_code=country,
        number_type=number_type,
        locality=value("locality"),
        administrative_division=value("administrative_division"),
        area_code=area_code or area_code_of(phone),
        assignable_to_person="person" in kinds,
        assignable_to_application="application" in kinds,
        calling=value("calling"),
        sms=value("sms"),
        monthly_cost=monthly_cost,
        setup_cost=setup_cost,
        currency=currency,
        carrier=value("carrier") or DEFAULT_CARRIER,
    )
    return number, problems


def _check_number(
    text: str, country: str, number_type: str, problems: list[str]
) -> phonenumbers.PhoneNumber | None:
    """The parsed number, or None (with a problem noted) when it is unusable."""
    if not text:
        return None
    if not _E164.fullmatch(text):
        problems.append(f"number {text!r} is not in E.164 format (+, then up to 15 digits).")
        return None
    try:
        phone = phonenumbers.parse(text)
    except phonenumbers.NumberParseException:
        problems.append(f"number {text!r} is not a phone number.")
        return None
    if not phonenumbers.is_valid_number(phone):
        problems.append(f"number {text} is not a valid phone number.")
        return None
    # NANP toll-free numbers belong to every NANP country, hence "valid for region", not
    # "region of the number".
    region = phonenumbers.region_code_for_number(phone)
    if (
        country
        and region != country
        and not phonenumbers.is_valid_number_for_region(phone, country)
    ):
        problems.append(f"number {text} belongs to {region}, not {country}.")
    kind = phonenumbers.number_type(phone)
    toll_free = kind == phonenumbers.PhoneNumberType.TOLL_FREE
    if number_type == NumberType.TOLL_FREE and not toll_free:
        problems.append(f"number {text} is not a toll-free number.")
    elif number_type and number_type != NumberType.TOLL_FREE and toll_free:
        problems.append(f"number {text} is toll-free, not {number_type}.")
    elif number_type == NumberType.GEOGRAPHIC and kind == phonenumbers.PhoneNumberType.MOBILE:
        problems.append(f"number {text} is a mobile number, not geographic.")
    elif number_type == NumberType.MOBILE and kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        problems.append(f"number {text} is a fixed-line number, not mobile.")
    return phone


def _check_cost(column: str, text: str, problems: list[str]) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        if text:
            problems.append(f"{column} {text!r} is not a number.")
        return Decimal(0)
    if (
        not amount.is_finite()
        or amount < 0
        or amount > _MAX_COST
        or amount != amount.quantize(_CENT)
    ):
        problems.append(f"{column} {text!r} must be a non-negative amount with at most 2 decimals.")
        return Decimal(0)
    return amount


def area_code_of(phone: phonenumbers.PhoneNumber) -> str:
    """The area code searches filter on: the NPA in NANP; elsewhere the geographic area code
    without trunk prefix ("20" for London), or the non-geographic prefix ("808", "1800")."""
    national = phonenumbers.national_significant_number(phone)
    if phone.country_code == 1:
        return national[:3]
    length = phonenumbers.length_of_geographical_area_code(phone)
    length = length or phonenumbers.length_of_national_destination_code(phone)
    return national[:length]


# --- Demo numbers from ranges reserved for fiction ------------------------------------------
@dataclass(frozen=True)
class FictionalRange:
    """`prefix` + a counter from `first` to `last`, zero-padded to `width` digits."""

    number_type: str
    prefix: str
    first: int
    last: int
    width: int
    area_code: str
    locality: str = ""
    administrative_division: str = ""

    def numbers(self) -> list[str]:
        return [f"{self.prefix}{n:0{self.width}d}" for n in range(self.first, self.last + 1)]


@dataclass(frozen=True)
class DemoCountry:
    currency: str
    monthly_cost: dict[str, Decimal]
    ranges: tuple[FictionalRange, ...]


def _nanp(npa: str, locality: str = "", division: str = "") -> FictionalRange:
    # NANPA reserves NXX-555-0100..0199 in every area code for fiction.
    number_type = NumberType.GEOGRAPHIC if locality else NumberType.TOLL_FREE
    return FictionalRange(number_type, f"+1{npa}555", 100, 199, 4, npa, locality, division)


def _ofcom(area: str, block: str, locality: str, division: str) -> FictionalRange:
    # Ofcom's drama numbers: 1,000 per range, e.g. 020 7946 0000-0999.
    return FictionalRange(
        NumberType.GEOGRAPHIC, f"+44{area}{block}", 0, 999, 4, area, locality, division
    )


def _acma(area: str, locality: str, division: str, block: str = "5550") -> FictionalRange:
    # ACMA's numbers for creative works, e.g. 02 5550 xxxx (the first 1,000 of each block).
    return FictionalRange(
        NumberType.GEOGRAPHIC, f"+61{area}{block}", 0, 999, 4, area, locality, division
    )


# NANP toll-free codes are shared by the US and Canada, so they split them between the two.
DEMO_COUNTRIES: dict[str, DemoCountry] = {
    "US": DemoCountry(
        "USD",
        {NumberType.GEOGRAPHIC: Decimal("1.00"), NumberType.TOLL_FREE: Decimal("2.00")},
        (
            _nanp("206", "Seattle", "WA"),
            _nanp("212", "New York", "NY"),
            _nanp("312", "Chicago", "IL"),
            _nanp("415", "San Francisco", "CA"),
            _nanp("425", "Redmond", "WA"),
            _nanp("512", "Austin", "TX"),
            _nanp("617", "Boston", "MA"),
            _nanp("702", "Las Vegas", "NV"),
            _nanp("800"),
            _nanp("833"),
            _nanp("844"),
            _nanp("855"),
        ),
    ),
    "CA": DemoCountry(
        "CAD",
        {NumberType.GEOGRAPHIC: Decimal("1.00"), NumberType.TOLL_FREE: Decimal("2.00")},
        (
            _nanp("416", "Toronto", "ON"),
            _nanp("514", "Montreal", "QC"),
            _nanp("604", "Vancouver", "BC"),
            _nanp("613", "Ottawa", "ON"),
            _nanp("403", "Calgary", "AB"),
            _nanp("902", "Halifax", "NS"),
            _nanp("866"),
            _nanp("877"),
            _nanp("888"),
        ),
    ),
    "GB": DemoCountry(
        "GBP",
        {NumberType.GEOGRAPHIC: Decimal("1.00"), NumberType.TOLL_FREE: Decimal("2.00")},
        (
            _ofcom("20", "7946", "London", "England"),
            _ofcom("161", "496", "Manchester", "England"),
            _ofcom("121", "496", "Birmingham", "England"),
            _ofcom("113", "496", "Leeds", "England"),
            _ofcom("117", "496", "Bristol", "England"),
            _ofcom("141", "496", "Glasgow", "Scotland"),
            _ofcom("131", "496", "Edinburgh", "Scotland"),
            _ofcom("29", "2018", "Cardiff", "Wales"),
            _ofcom("28", "9018", "Belfast", "Northern Ireland"),
            FictionalRange(NumberType.TOLL_FREE, "+448081570", 0, 999, 3, "808"),
        ),
    ),
    "AU": DemoCountry(
        "AUD",
        {NumberType.GEOGRAPHIC: Decimal("1.50"), NumberType.TOLL_FREE: Decimal("3.00")},
        (
            _acma("2", "Sydney", "NSW"),
            _acma("3", "Melbourne", "VIC"),
            _acma("7", "Brisbane", "QLD"),
            _acma("8", "Perth", "WA"),
            _acma("2", "Canberra", "ACT", block="7010"),
            _acma("3", "Hobart", "TAS", block="7010"),
            _acma("8", "Adelaide", "SA", block="7010"),
            # ACMA's fictional freephone numbers: 1800 160 401 and 1800 975 707-711.
            FictionalRange(NumberType.TOLL_FREE, "+611800160", 401, 401, 3, "1800"),
            FictionalRange(NumberType.TOLL_FREE, "+611800975", 707, 711, 3, "1800"),
        ),
    ),
}

# `seed_demo_numbers` keeps at least this many seeded numbers per country.
DEMO_SET = {"US": 20, "CA": 20, "GB": 20, "AU": 10}
TOLL_FREE_SHARE = 5  # one seeded number in five is toll-free


@cache
def fictional_numbers(fictional_range: FictionalRange) -> tuple[str, ...]:
    """The range's numbers that phonenumbers accepts as valid (all of them, tests check)."""
    return tuple(
        number
        for number in fictional_range.numbers()
        if phonenumbers.is_valid_number(phonenumbers.parse(number))
    )


def seed_numbers(country: str, count: int) -> int:
    """Add `count` more demo numbers in `country` (US, CA, GB or AU) from ranges reserved
    for fiction, skipping numbers already in the inventory; returns how many were added.

    About one in five is toll-free (over all the seeded numbers of the country, so repeated
    small seeds keep the mix); each type is spread over its ranges, fullest first. Every
    number offers calling and SMS both ways to persons and applications, carrier loopback.
    Raises UnsupportedSeedCountry, InvalidSeedCount, or SeedRangeExhausted (saying how many
    are left) and then writes nothing. Runs in one transaction.
    """
    code = (country or "").upper()
    spec = DEMO_COUNTRIES.get(code)
    if spec is None:
        raise UnsupportedSeedCountry(
            f"Cannot seed {country!r}; supported countries: {', '.join(DEMO_COUNTRIES)}.",
            target="country",
        )
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidSeedCount("count must be a positive integer.", target="count")

    taken = existing_numbers(n for r in spec.ranges for n in fictional_numbers(r))
    pools: list[tuple[FictionalRange, deque[str]]] = []
    total = toll_free = 0
    for fictional_range in spec.ranges:
        candidates = fictional_numbers(fictional_range)
        free = deque(n for n in candidates if n not in taken)
        pools.append((fictional_range, free))
        used = len(candidates) - len(free)
        total += used
        if fictional_range.number_type == NumberType.TOLL_FREE:
            toll_free += used
    left = sum(len(free) for _, free in pools)
    if left < count:
        raise SeedRangeExhausted(
            f"Only {left} fictional {code} number(s) are left; cannot add {count}.",
            target="count",
        )

    numbers: list[PhoneNumber] = []
    for _ in range(count):
        total += 1
        wanted = (
            NumberType.TOLL_FREE if toll_free < total // TOLL_FREE_SHARE else NumberType.GEOGRAPHIC
        )
        open_pools = [pool for pool in pools if pool[1]]
        chosen = [pool for pool in open_pools if pool[0].number_type == wanted] or open_pools
        fictional_range, free = max(chosen, key=lambda pool: len(pool[1]))
        toll_free += fictional_range.number_type == NumberType.TOLL_FREE
        numbers.append(_demo_number(code, spec, fictional_range, free.popleft()))

    with transaction.atomic():
        PhoneNumber.objects.bulk_create(numbers, batch_size=INSERT_BATCH)
    return len(numbers)


def _demo_number(
    country: str, spec: DemoCountry, fictional_range: FictionalRange, number: str
) -> PhoneNumber:
    return PhoneNumber(
        number=number,
        country_code=country,
        number_type=fictional_range.number_type,
        locality=fictional_range.locality,
        administrative_division=fictional_range.administrative_division,
        area_code=fictional_range.area_code,
        assignable_to_person=True,
        assignable_to_application=True,
        calling=Capability.BOTH,
        sms=Capability.BOTH,
        monthly_cost=spec.monthly_cost[fictional_range.number_type],
        setup_cost=Decimal(0),
        currency=spec.currency,
        carrier=DEFAULT_CARRIER,
    )


def seeded_count(country: str) -> int:
    """How many numbers of the country's fictional ranges are in the inventory (any status)."""
    spec = DEMO_COUNTRIES[country]
    return len(existing_numbers(n for r in spec.ranges for n in fictional_numbers(r)))


def seed_demo_numbers() -> dict[str, int]:
    """Top up the demo set (`make run`): at least DEMO_SET[country] seeded numbers in each
    country, sold or not. Safe to rerun; returns how many were added per country."""
    added: dict[str, int] = {}
    with transaction.atomic():
        for country, wanted in DEMO_SET.items():
            missing = wanted - seeded_count(country)
            added[country] = seed_numbers(country, missing) if missing > 0 else 0
    return added


def give_demo_number(resource: Resource) -> PhoneNumber | None:
    """The number the demo resource owns (`make run`), so SMS works from the first minute:
    the first available US geographic number, owned at once with calling and SMS both ways.
    No purchase job: nothing runs yet when the demo is seeded, and demo numbers live on the
    loopback carrier. Returns the number it owns (already or now); None if none is left."""
    owned = (
        resource.phone_numbers.filter(status=NumberStatus.OWNED, owned_sms=Capability.BOTH)
        .order_by("number")
        .first()
    )
    if owned is not None:
        return owned
    with transaction.atomic():
        number = (
            PhoneNumber.objects.select_for_update()
            .filter(
                status=NumberStatus.AVAILABLE,
                country_code="US",
                number_type=NumberType.GEOGRAPHIC,
                sms=Capability.BOTH,
            )
            .order_by("number")
            .first()
        )
        if number is None:
            return None
        number.status = NumberStatus.OWNED
        number.owner = resource
        number.owned_assignment_type = AssignmentType.APPLICATION
        number.owned_calling = Capability.BOTH
        number.owned_sms = Capability.BOTH
        number.purchased_at = timezone.now()
        number.save()
    return number
