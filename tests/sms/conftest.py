"""SMS fixtures: numbers a resource owns, and the loopback carrier by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Resource
from apps.numbers.models import AssignmentType, Capability, NumberStatus, PhoneNumber
from apps.sms import carriers


@pytest.fixture(autouse=True)
def _fresh_carrier(settings: Any) -> Iterator[None]:
    settings.SMS_CARRIER = "loopback"
    settings.SMS_SEGMENTS_PER_SECOND = 1000.0  # pacing has its own tests
    carriers.reset()
    yield
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
