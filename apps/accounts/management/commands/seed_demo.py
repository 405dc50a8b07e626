"""`manage.py seed_demo`: an admin login and a demo resource, once (safe to rerun)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.accounts import services
from apps.accounts.models import Resource

DEMO_RESOURCE = "demo"


class Command(BaseCommand):
    help = "Create the admin user and the demo resource if missing, and print how to use them."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        password_file = settings.DATA_DIR / "admin-password"
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            password = os.environ.get("SPOOL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser("admin", "admin@localhost", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = (
            password_file.read_text().strip()
            if password_file.exists()
            else "(set earlier; see docs)"
        )
        resource = Resource.objects.filter(slug=DEMO_RESOURCE).first()
        if resource is None:
            resource = services.create_resource("Demo", owner=admin)
        self.stdout.write(
            f"Console:     http://127.0.0.1:{settings.HTTP_PORT}/  (or {settings.PUBLIC_URL}/)"
        )
        self.stdout.write(f"Admin login: admin / {password}")
        self.stdout.write(f"Demo connection string: {services.connection_string(resource)}")
