"""Holds as the console shows them, and cancelling a search (which ACS's API cannot do)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.numbers import holds, orders
from apps.numbers.exceptions import SearchNotCancellable, SearchNotFound, SearchNotPurchasable
from apps.numbers.models import NumberSearch, NumberStatus, PhoneNumber, SearchState

pytestmark = pytest.mark.django_db

WANTED = {
    "country_code": "US",
    "number_type": "geographic",
    "assignment_type": "application",
    "calling": "inbound+outbound",
    "sms": "none",
    "area_code": "425",
}


@pytest.fixture
def inventory(make_numbers) -> list[PhoneNumber]:
    return make_numbers(3)


def _search(resource, quantity: int) -> NumberSearch:
    search = orders.do_search(resource, {**WANTED, "quantity": quantity}).search
    assert search is not None
    return search


def test_cancelling_offers_the_numbers_again_at_once(resource, other_resource, inventory) -> None:
    # given a search holding every number there is
    search = _search(resource, 3)

    # when it is cancelled
    released = holds.cancel_search(resource, search.pk)

    # then it says which numbers it let go, they are available, and another search gets them
    assert released == [number.number for number in inventory]
    assert PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE).count() == 3
    search.refresh_from_db()
    assert search.state == SearchState.EXPIRED and search.expires_at <= timezone.now()
    assert len(orders.search_numbers(_search(other_resource, 3))) == 3


def test_a_cancelled_search_cannot_be_bought(resource, inventory) -> None:
    # given a cancelled search
    search = _search(resource, 1)
    holds.cancel_search(resource, search.pk)

    # when it is bought, then it is refused as expired
    with pytest.raises(SearchNotPurchasable, match="expired"):
        orders.check_purchase(resource, search.pk)


def test_cancelling_again_or_after_the_hold_ran_out_releases_nothing_twice(
    resource, inventory
) -> None:
    # given a search cancelled once, and another whose hold ran out (before beat's sweep)
    cancelled = _search(resource, 1)
    holds.cancel_search(resource, cancelled.pk)
    expired = _search(resource, 1)
    NumberSearch.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    # when either is cancelled (again), then only the expired one still had a number to let go
    assert holds.cancel_search(resource, cancelled.pk) == []
    assert holds.cancel_search(resource, expired.pk) == [inventory[0].number]
    assert holds.cancel_search(resource, expired.pk) == []
    assert PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE).count() == 3


def test_a_bought_search_or_one_being_bought_cannot_be_cancelled(
    resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a search being bought, and one bought
    buying = _search(resource, 1)
    with django_capture_on_commit_callbacks(execute=False):
        orders.check_purchase(resource, buying.pk)
    bought = _search(resource, 1)
    with django_capture_on_commit_callbacks(execute=True):
        orders.check_purchase(resource, bought.pk)

    # then neither can be cancelled, and their numbers stay as they were
    for search in (buying, bought):
        with pytest.raises(SearchNotCancellable):
            holds.cancel_search(resource, search.pk)
    assert PhoneNumber.objects.filter(held_by=buying, status=NumberStatus.HELD).count() == 1
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 1


def test_another_resources_search_is_not_found(resource, other_resource, inventory) -> None:
    # given another resource's search
    theirs = _search(other_resource, 2)

    # then this resource can neither see nor cancel it, nor name junk
    for search_id in (theirs.pk, "nope", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(SearchNotFound):
            holds.cancel_search(resource, search_id)
        with pytest.raises(SearchNotFound):
            holds.access_hold(resource, search_id)
    assert PhoneNumber.objects.filter(held_by=theirs, status=NumberStatus.HELD).count() == 2


def test_reservations_are_not_searches_here(resource, inventory) -> None:
    # given a reservation (the API's holds built number by number)
    from apps.numbers import reservations

    reservation, _, _ = reservations.update_reservation(
        resource,
        "6f0f3c2e-1a2b-4c3d-8e9f-000000000009",
        {
            "phoneNumbers": {
                inventory[0].number[1:]: {
                    "phoneNumberType": "geographic",
                    "capabilities": {"calling": "inbound", "sms": "none"},
                }
            }
        },
    )

    # then neither the holds list nor cancel treats it as a search
    assert holds.list_holds(resource) == []
    with pytest.raises(SearchNotFound):
        holds.cancel_search(resource, reservation.pk)


def test_list_holds_shows_active_searches_with_numbers_costs_and_time_left(
    resource, other_resource, make_numbers, django_assert_num_queries
) -> None:
    # given two held searches (one number with a setup cost), an expired search, and a
    # search of another resource
    inventory = make_numbers(4)
    PhoneNumber.objects.filter(number=inventory[0].number).update(setup_cost=Decimal("5.00"))
    first = _search(resource, 2)
    later = _search(resource, 1)
    NumberSearch.objects.filter(pk=later.pk).update(
        expires_at=timezone.now() + timedelta(minutes=20)
    )
    NumberSearch.objects.create(
        resource=resource, expires_at=timezone.now() - timedelta(seconds=1), quantity=1
    )
    _search(other_resource, 1)

    # when the resource's holds are listed (in two queries)
    with django_assert_num_queries(2):
        listed = holds.list_holds(resource)

    # then both active searches are, the first to expire first, with their numbers and costs
    assert [hold.search.pk for hold in listed] == [first.pk, later.pk]
    assert [n.number for n in listed[0].numbers] == [inventory[0].number, inventory[1].number]
    assert listed[0].costs == [holds.Cost("USD", Decimal("2.00"), Decimal("5.00"))]
    assert listed[0].active and 15 * 60 < listed[0].seconds_left <= 16 * 60
    assert listed[0].time_left in {"15:59", "16:00"}
