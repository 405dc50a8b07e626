"""No double sale: many simultaneous searches and purchases from several resources."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection, connections

from apps.accounts import services as accounts
from apps.core.errors import ApiError
from apps.numbers import orders
from apps.numbers.models import NumberStatus, NumberType, PhoneNumber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SEARCH = {
    "phoneNumberType": "geographic",
    "assignmentType": "application",
    "capabilities": {"calling": "inbound+outbound", "sms": "inbound+outbound"},
    "areaCode": "425",
    "quantity": 2,
}


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite serializes writers instead")


def test_fifty_simultaneous_searches_and_purchases_never_share_a_number() -> None:
    # given 60 numbers in one area code and three resources
    PhoneNumber.objects.bulk_create(
        PhoneNumber(
            number=f"+142555501{n:02d}",
            country_code="US",
            number_type=NumberType.GEOGRAPHIC,
            area_code="425",
            monthly_cost=Decimal("1.00"),
            currency="USD",
        )
        for n in range(60)
    )
    resources = [accounts.create_resource(f"Tenant {n}") for n in range(3)]
    held: list[list[str]] = []
    refused: list[str] = []
    start = threading.Barrier(50)

    def buyer(index: int) -> None:
        resource = resources[index % 3]
        try:
            start.wait()
            operation = orders.do_search(resource, orders.check_search_request("US", SEARCH))
            numbers = orders.search_numbers(operation.search)
            held.append(numbers)
            purchase = orders.check_purchase(resource, operation.search_id)
            orders.run_operation(purchase.pk)
        except ApiError as error:
            refused.append(error.code)
        finally:
            connections.close_all()

    # when 50 threads search and buy at once (100 numbers wanted, 60 exist)
    threads = [threading.Thread(target=buyer, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then every number went to at most one search and one owner, and nothing is left held
    counts = Counter(number for numbers in held for number in numbers)
    assert len(held) == 30 and set(refused) == {"NoNumbersAvailable"} and len(refused) == 20
    assert max(counts.values()) == 1
    owned = PhoneNumber.objects.filter(status=NumberStatus.OWNED)
    assert owned.count() == 60
    assert not PhoneNumber.objects.filter(status=NumberStatus.HELD).exists()
    for resource in resources:
        mine = set(owned.filter(owner=resource).values_list("number", flat=True))
        others = set(owned.exclude(owner=resource).values_list("number", flat=True))
        assert not mine & others
