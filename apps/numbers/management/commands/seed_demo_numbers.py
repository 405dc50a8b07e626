"""`manage.py seed_demo_numbers`: the demo inventory of `make run` (safe to rerun)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.numbers import inventory


class Command(BaseCommand):
    help = "Top up the demo phone numbers (US, CA, GB, AU) to their demo counts."

    def handle(self, *args: Any, **options: Any) -> None:
        inventory.seed_demo_numbers()
        # The totals, not what was added, so a rerun prints the same (like seed_demo).
        counts = ", ".join(f"{code}: {inventory.seeded_count(code)}" for code in inventory.DEMO_SET)
        self.stdout.write(f"Demo phone numbers ({counts}).")
