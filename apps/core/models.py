from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """When each Celery worker last ran the beat-scheduled heartbeat: proof that beat,
    the broker and a worker all work, shown to operators."""

    hostname = models.CharField(max_length=255, unique=True)
    last_seen = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} at {self.last_seen:%Y-%m-%d %H:%M:%S}"


class RequestLog(models.Model):
    """One ACS or management API request, for operators and the console's request log.
    Written in batches behind the request (apps/core/request_log.py), kept
    SPOOL_REQUEST_LOG_DAYS. `resource_slug` rather than a key: core sits below accounts, and a
    resource's slug is fixed for its life (its rows are dropped when it is deleted)."""

    class Kind(models.TextChoices):
        ACS = "acs", "ACS API"
        MANAGEMENT = "management", "Management API"

    at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    resource_slug = models.CharField(max_length=63, blank=True)
    method = models.CharField(max_length=10)
    route = models.CharField(max_length=200)
    path = models.CharField(max_length=300)
    api_version = models.CharField(max_length=32, blank=True)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    caller = models.CharField(max_length=200, blank=True)
    # The client's address: behind a load balancer, the one it forwarded (SPOOL_BEHIND_PROXY).
    client_address = models.GenericIPAddressField(null=True, blank=True)
    # A refused or failed request's ACS error (`error.code`, `error.message`).
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    client_request_id = models.CharField(max_length=100, blank=True)
    request_id = models.CharField(max_length=36)

    class Meta:
        indexes = [
            models.Index(fields=["resource_slug", "-at"]),
            models.Index(fields=["at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.method} {self.path} {self.status}"
