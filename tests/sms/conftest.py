"""SMS fixtures: numbers a resource owns, and the loopback carrier by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.accounts.models import Resource
from apps.numbers.models import AssignmentType, Capability, NumberStatus, PhoneNumber
from apps.sms import carriers, delivery


@pytest.fixture(autouse=True)
def _fresh_carrier(settings: Any) -> Iterator[None]:
    settings.SMS_CARRIER = "loopback"
    settings.SMS_SEGMENTS_PER_SECOND = 1000.0  # pacing has its own tests
    carriers.reset()
    # A drain "queued" by an earlier test (its task patched away) must not mute this one's.
    drain_keys = [delivery.DRAIN_REQUESTED, delivery.DRAIN_SCHEDULED_AT]
    cache.delete_many(drain_keys)
    yield
    cache.delete_many(drain_keys)
    carriers.reset()


@pytest.fixture
def own(make_numbers: Any) -> Any:
    """Give `resource` the next inventory number, with the SMS capability asked for."""
    pool: list[PhoneNumber] = []

    def give(resource: Resource, sms: str = Capability.BOTH) -> PhoneNumber:
        if not pool:
            pool.extend(make_numbers(10))
        number = pool.pop(0)
        number.status = NumberStatus.OWNED
        number.owner = resource
        number.owned_sms = sms
        number.owned_calling = Capability.BOTH
        number.owned_assignment_type = AssignmentType.APPLICATION
        number.purchased_at = timezone.now()
        number.save()
        return number

    return give


@pytest.fixture
def sender(resource: Resource, own: Any) -> str:
    return str(own(resource).number)
