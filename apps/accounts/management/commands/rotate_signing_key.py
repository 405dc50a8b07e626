"""`manage.py rotate_signing_key`: new tokens get a new key; unexpired ones keep working."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.accounts import tokens


class Command(BaseCommand):
    help = "Create a new token signing key; older keys keep verifying until pruned."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--prune", action="store_true", help="also delete keys no token can still use"
        )
        parser.add_argument(
            "--immediately",
            action="store_true",
            help="sign with the new key at once (the current one leaked)",
        )

    def handle(self, *args: Any, prune: bool, immediately: bool, **options: Any) -> None:
        store = tokens.key_store()
        key = store.rotate(immediately=immediately)
        when = (
            "now"
            if immediately
            else f"in {tokens.KEY_ACTIVATION_SECONDS} s, once caches of the JWKS have it"
        )
        self.stdout.write(
            f"New signing key {key.kid}, signing {when}; {len(store.keys())} key(s) published in the JWKS."
        )
        if prune:
            removed = store.prune()
            self.stdout.write(f"Pruned {len(removed)} key(s).")
