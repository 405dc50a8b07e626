from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """When each Celery worker last ran the beat-scheduled heartbeat: proof that beat,
    the broker and a worker all work, shown to operators."""

    hostname = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.last_seen:%Y-%m-%d %H:%M:%S}"
