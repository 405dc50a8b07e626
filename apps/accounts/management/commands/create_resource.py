"""`manage.py create_resource NAME [--owner USER]`: prints the connection string last."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.core.errors import ApiError


class Command(BaseCommand):
    help = "Create a communication resource and print its connection string (last line)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--owner", help="username of the portal user who owns it")

    def handle(self, *args: Any, name: str, owner: str | None, **options: Any) -> None:
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"No user named {owner!r}.")
        try:
            resource = services.create_resource(name, owner=user)
        except ApiError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"Created resource {resource.name} (slug {resource.slug}, id {resource.id}), "
            f"endpoint {services.resource_endpoint(resource)} "
            f"(also {services.path_endpoint(resource)})"
        )
        self.stdout.write(services.connection_string(resource))
