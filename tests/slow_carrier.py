"""A test carrier that takes 50 ms per number, so a test can kill a worker mid-purchase.
Selected with SPOOL_NUMBER_CARRIER=tests.slow_carrier."""

from __future__ import annotations

import time

from apps.numbers.carriers.loopback import Carrier as Loopback
from apps.numbers.models import PhoneNumber


class Carrier(Loopback):
    def provision(self, number: PhoneNumber) -> None:
        time.sleep(0.05)
