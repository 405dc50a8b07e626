"""Number carriers: where a purchased number is provisioned. One small interface; the
loopback carrier (embedded default) provisions nothing outside this deployment. A SIP/SMPP
carrier's number API plugs in here (SPOOL_NUMBER_CARRIER names the module)."""

from __future__ import annotations

import importlib
from typing import Protocol

from django.conf import settings

from apps.numbers.models import PhoneNumber


class CarrierError(Exception):
    """A carrier refused or failed. `permanent` failures fail the operation; others retry."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NumberCarrier(Protocol):
    def provision(self, number: PhoneNumber) -> None: ...

    def release(self, number: PhoneNumber) -> None: ...

    def update(self, number: PhoneNumber, calling: str, sms: str) -> None: ...


def get() -> NumberCarrier:
    name = settings.NUMBER_CARRIER  # a module here ("loopback") or a dotted path elsewhere
    module = importlib.import_module(name if "." in name else f"apps.numbers.carriers.{name}")
    carrier: NumberCarrier = module.Carrier()
    return carrier
