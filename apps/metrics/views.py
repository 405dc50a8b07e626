"""GET /metrics: the Prometheus endpoint (apps/metrics/exporter.py), behind a bearer token.

No SPOOL_METRICS_TOKEN: 404, as for any path that does not exist (the endpoint is off).
A token set and a request without it, or with another: 401 with `WWW-Authenticate: Bearer`,
so a scrape job with a missing or stale token says exactly that in Prometheus's target page.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from apps.metrics import exporter


def authorized(authorization: str) -> bool:
    """An Authorization header carrying SPOOL_METRICS_TOKEN (the endpoint is on)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = authorization.partition(" ")
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII str).
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("The metrics endpoint is off: set SPOOL_METRICS_TOKEN.")
    if not authorized(request.headers.get("Authorization", "")):
        response = HttpResponse(
            "Unauthorized: send Authorization: Bearer <SPOOL_METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="spool-metrics"'
        return response
    body, content_type = exporter.render(request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
