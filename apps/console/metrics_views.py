"""Charts: the resource's metrics (Overview shows the main ones, Metrics all of them), and the
platform's across every resource for staff, with its queues, workers and delivery lag. Pages
render at once; their charts fetch one JSON document (apps/metrics/services.py) and draw it
with uPlot (static/vendor/uplot, served by Spool: no CDN)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.accounts.models import Resource
from apps.console.views import _resource_context, resource_page, staff_page
from apps.metrics import health, services

# What each chart draws (metric names: apps/metrics/catalog.py), in page order.
CHARTS: list[tuple[str, list[str]]] = [
    ("API requests", ["requests.ok", "requests.client_errors", "requests.server_errors"]),
    ("SMS", ["sms.sent", "sms.delivered", "sms.failed", "sms.received"]),
    ("Calls", ["calls.started", "calls.active"]),
    ("Webhook deliveries", ["webhooks.attempts", "webhooks.failures"]),
    ("Access tokens issued", ["tokens.issued"]),
    ("Chat messages", ["chat.messages"]),
    ("Call minutes", ["calls.minutes"]),
    ("Phone numbers owned", ["numbers.owned"]),
]
OVERVIEW_CHARTS = CHARTS[:4]
RANGE_CHOICES = [
    (name, label)
    for name, label in (
        ("1h", "1 hour"),
        ("6h", "6 hours"),
        ("24h", "24 hours"),
        ("7d", "7 days"),
        ("30d", "30 days"),
    )
]


def chart_context(
    request: HttpRequest, charts: list[tuple[str, list[str]]], url: str
) -> dict[str, Any]:
    return {
        "charts": [{"title": title, "metrics": ",".join(names)} for title, names in charts],
        "metrics_url": url,
        "range": services.pick_range(request.GET.get("range")),
        "range_choices": RANGE_CHOICES,
    }


@resource_page()
def metrics_page(request: HttpRequest, resource: Resource) -> HttpResponse:
    from django.urls import reverse

    url = reverse("console:metrics-data", kwargs={"slug": resource.slug})
    context = _resource_context(request, resource, "metrics", **chart_context(request, CHARTS, url))
    return render(request, "console/metrics.html", context)


@resource_page()
def metrics_data(request: HttpRequest, resource: Resource) -> HttpResponse:
    return JsonResponse(services.series([resource.id], request.GET.get("range", "")))


@staff_page
def staff_metrics(request: HttpRequest) -> HttpResponse:
    from django.urls import reverse

    context = chart_context(request, CHARTS, reverse("console:staff-metrics-data"))
    context.update(
        queues=health.queue_depths(),
        workers=health.workers(),
        lag=health.delivery_lag(),
        unmatched_receipts=health.unmatched_receipts(),
        resource_count=Resource.objects.count(),
    )
    return render(request, "console/metrics_staff.html", context)


@staff_page
def staff_metrics_data(request: HttpRequest) -> HttpResponse:
    return JsonResponse(services.series(None, request.GET.get("range", "")))


ERROR_RANGES = [("24h", "Last 24 hours", 1), ("7d", "Last 7 days", 7), ("all", "All kept", 0)]


@resource_page()
def error_log(request: HttpRequest, resource: Resource) -> HttpResponse:
    """What went wrong, from every part of the platform (apps/metrics/problems.py)."""
    from datetime import timedelta
    from urllib.parse import urlencode

    from django.utils import timezone

    from apps.console.views import _page
    from apps.metrics import problems

    source = request.GET.get("source", "")
    source = source if source in problems.SOURCES else ""
    ranges = {name: days for name, _, days in ERROR_RANGES}
    range_name = request.GET.get("range", "7d")
    range_name = range_name if range_name in ranges else "7d"
    days = ranges[range_name]
    since = timezone.now() - timedelta(days=days) if days else None
    found = problems.problems(resource, source=source, since=since)
    chosen = {name: value for name, value in (("source", source), ("range", range_name)) if value}
    context = _resource_context(
        request,
        resource,
        "errors",
        page=_page(request, found),
        sources=problems.SOURCES,
        source=source,
        range_name=range_name,
        ranges=[(name, label) for name, label, _ in ERROR_RANGES],
        pager_query=f"{urlencode(chosen)}&" if chosen else "",
    )
    return render(request, "console/error_log.html", context)
