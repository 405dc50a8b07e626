"""The loopback carrier: numbers live only inside this deployment, so every step succeeds."""

from __future__ import annotations

from apps.numbers.models import PhoneNumber


class Carrier:
    def provision(self, number: PhoneNumber) -> None:
        pass

    def release(self, number: PhoneNumber) -> None:
        pass

    def update(self, number: PhoneNumber, calling: str, sms: str) -> None:
        pass
