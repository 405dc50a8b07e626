"""`manage.py seed_demo_numbers`: the demo inventory of `make run` (safe to rerun)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.accounts.management.commands.seed_demo import DEMO_RESOURCE
from apps.accounts.models import Resource
from apps.numbers import inventory


class Command(BaseCommand):
    help = (
        "Top up the demo phone numbers (US, CA, GB, AU) to their demo counts, and give the "
        "demo resource a number of its own."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        inventory.seed_demo_numbers()
        # The totals, not what was added, so a rerun prints the same (like seed_demo).
        counts = ", ".join(f"{code}: {inventory.seeded_count(code)}" for code in inventory.DEMO_SET)
        self.stdout.write(f"Demo phone numbers ({counts}).")
        demo = Resource.objects.filter(slug=DEMO_RESOURCE).first()
        number = inventory.give_demo_number(demo) if demo is not None else None
        if number is not None:
            self.stdout.write(
                f"The demo resource owns {number.number} (calling and SMS both ways); SMS to "
                "numbers outside Spool arrive in the console's virtual handsets."
            )
