"""Holds as the console shows them: a search's numbers, what they cost and how long they stay
held; and cancelling a search, which ACS's API cannot do (its searches only expire)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from apps.accounts.models import Resource
from apps.numbers import orders
from apps.numbers.exceptions import SearchNotCancellable, SearchNotFound
from apps.numbers.models import NumberSearch, PhoneNumber, SearchState


@dataclass(frozen=True)
class Cost:
    """What a hold's numbers of one currency cost: `monthly` from purchase, `setup` once."""

    currency: str
    monthly: Decimal
    setup: Decimal


@dataclass(frozen=True)
class Hold:
    search: NumberSearch
    numbers: list[PhoneNumber]
    costs: list[Cost]
    seconds_left: int

    @property
    def active(self) -> bool:
        """Held and not yet expired: it can be bought or cancelled."""
        return self.search.state == SearchState.HELD and self.seconds_left > 0

    @property
    def time_left(self) -> str:
        """minutes:seconds, as the console's countdown shows it."""
        return f"{self.seconds_left // 60}:{self.seconds_left % 60:02d}"


def _hold(search: NumberSearch, numbers: list[PhoneNumber], now: datetime) -> Hold:
    by_currency: dict[str, tuple[Decimal, Decimal]] = {}
    for number in numbers:
        monthly, setup = by_currency.get(number.currency, (Decimal(0), Decimal(0)))
        by_currency[number.currency] = (monthly + number.monthly_cost, setup + number.setup_cost)
    return Hold(
        search=search,
        numbers=numbers,
        costs=[Cost(currency, *totals) for currency, totals in sorted(by_currency.items())],
        seconds_left=max(0, int((search.expires_at - now).total_seconds())),
    )


def access_hold(resource: Resource, search_id: Any) -> Hold:
    """The resource's search `search_id` (not a reservation) with its numbers, in any state.
    Raises SearchNotFound, also for another resource's search."""
    search = NumberSearch.objects.filter(
        resource=resource, pk=orders.parse_uuid(search_id), is_reservation=False
    ).first()
    if search is None:
        raise SearchNotFound(f"Search {search_id!r} was not found.", target="searchId")
    return _hold(search, list(search.numbers.order_by("number")), timezone.now())


def list_holds(resource: Resource) -> list[Hold]:
    """The resource's searches that hold numbers now (not bought, not expired), the first to
    expire first. Two queries; a resource holds at most SPOOL_MAX_HELD_NUMBERS numbers."""
    now = timezone.now()
    searches = (
        NumberSearch.objects.filter(
            resource=resource, is_reservation=False, state=SearchState.HELD, expires_at__gt=now
        )
        .prefetch_related(Prefetch("numbers", queryset=PhoneNumber.objects.order_by("number")))
        .order_by("expires_at", "created_at")
    )
    return [_hold(search, list(search.numbers.all()), now) for search in searches]


def cancel_search(resource: Resource, search_id: Any) -> list[str]:
    """End a search's hold now: its numbers are offered to every search again at once, as
    when the hold expires (orders.expire, the one rule for ending a hold). Returns the numbers
    it held; none when the hold had ended already, which changes nothing.

    Locks the search row, as check_purchase does, so a purchase and a cancel never both win.
    Raises SearchNotFound (also for another resource's search or a reservation), or
    SearchNotCancellable (409) when the search is being or was purchased.
    """
    with transaction.atomic():
        search = (
            NumberSearch.objects.select_for_update()
            .filter(resource=resource, pk=orders.parse_uuid(search_id), is_reservation=False)
            .first()
        )
        if search is None:
            raise SearchNotFound(f"Search {search_id!r} was not found.", target="searchId")
        if search.state in (SearchState.PURCHASING, SearchState.PURCHASED):
            raise SearchNotCancellable(
                f"Search {search.pk} is {search.state}; only a held search can be cancelled.",
                target="searchId",
            )
        if search.state != SearchState.HELD:
            return []
        released = orders.search_numbers(search)
        now = timezone.now()
        if search.expires_at > now:
            NumberSearch.objects.filter(pk=search.pk).update(expires_at=now)
        orders.expire(search)
    return released
