"""`manage.py seed_demo_numbers`: the demo inventory of `make run` (safe to rerun)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts import services as accounts
from apps.accounts.management.commands.seed_demo import DEMO_RESOURCE
from apps.accounts.models import IncomingCalls, Resource
from apps.numbers import inventory, orders
from apps.numbers.models import PhoneNumber


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
        if demo is not None and number is not None:
            answer_with_the_ivr(demo, number)
            self.stdout.write(
                f"The demo resource owns {number.number} (calling and SMS both ways); SMS to "
                "numbers outside Spool arrive in the console's virtual handsets. Call it from a "
                "virtual phone (Calls > Virtual phones): the built-in IVR answers."
            )


def answer_with_the_ivr(resource: Resource, number: PhoneNumber) -> None:
    """The demo number's calls go to an identity that Spool's built-in IVR answers (the one
    Try IVR uses), unless its inbound destination was set otherwise."""
    if number.inbound_destination:
        return
    with transaction.atomic():
        line, _ = accounts.create_identity(resource)
        accounts.set_incoming_calls(line, IncomingCalls.BUILT_IN_IVR)
        orders.set_inbound_destination(resource, number.number, line.raw_id)
