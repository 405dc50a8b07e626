"""Operational endpoints."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from apps.core import services


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and operators: database, Redis, and live Celery workers."""
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # the point is to report any failure, not to raise it
        checks["database"] = f"error: {error.__class__.__name__}"
    try:
        cache.set("healthz", "ok", 5)
        checks["redis"] = "ok" if cache.get("healthz") == "ok" else "error"
    except Exception as error:
        checks["redis"] = f"error: {error.__class__.__name__}"
    workers = (
        sorted(services.live_workers().values_list("hostname", flat=True))
        if checks["database"] == "ok"
        else []
    )
    checks["workers"] = workers
    healthy = checks["database"] == "ok" and checks["redis"] == "ok"
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status=200 if healthy else 503
    )
