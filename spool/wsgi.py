"""WSGI entry point, for deployments that serve plain HTTP from a WSGI server (gunicorn)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spool.settings")

application = get_wsgi_application()
