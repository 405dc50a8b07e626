"""The Celery app: settings come from Django settings under the CELERY namespace."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spool.settings")

app = Celery("spool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _announce_worker(sender: object = None, **kwargs: object) -> None:
    # A heartbeat at start-up, so liveness shows at once rather than at beat's first tick.
    app.send_task("apps.core.tasks.heartbeat")
