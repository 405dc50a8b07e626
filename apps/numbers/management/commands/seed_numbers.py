"""`manage.py seed_numbers --country CC --count N`: add N demo numbers from ranges reserved
for fiction (US, CA, GB, AU)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ApiError
from apps.numbers import inventory


class Command(BaseCommand):
    help = "Add N more demo phone numbers in a country, from ranges reserved for fiction."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--country", required=True, help=f"one of {', '.join(inventory.DEMO_COUNTRIES)}"
        )
        parser.add_argument("--count", type=int, default=10, help="how many to add (10)")

    def handle(self, *args: Any, country: str, count: int, **options: Any) -> None:
        try:
            added = inventory.seed_numbers(country, count)
        except ApiError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Added {added} demo number(s) in {country.upper()}.")
