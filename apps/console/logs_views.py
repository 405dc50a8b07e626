"""The resource's request log (Logs): every ACS and management API request made to it, newest
first, filtered by status, route and time (apps/core/request_log.py writes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.models import Resource
from apps.console.views import _page, _resource_context, resource_page
from apps.core import services as core

STATUS_CHOICES = [
    ("", "Any"),
    ("2xx", "2xx success"),
    ("4xx", "4xx refused"),
    ("5xx", "5xx failed"),
]


def _short_caller(caller: str) -> str:
    """An identity's raw id by the start of its own part (the page keeps it in a tooltip)."""
    if caller.startswith("8:acs:") and "_" in caller:
        return caller.rsplit("_", 1)[1][:8] + "…"
    return caller


def _when(value: str) -> datetime | None:
    """A `datetime-local` field's value, read as UTC (the page says so); None if unreadable."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None
    except ValueError:
        return None


@resource_page()
def request_log(request: HttpRequest, resource: Resource) -> HttpResponse:
    status = request.GET.get("status", "").strip()
    if not (status in dict(STATUS_CHOICES) or (status.isdigit() and len(status) == 3)):
        status = ""
    routes = core.request_routes(resource.slug)
    route = request.GET.get("route", "")
    route = route if route in routes else ""
    since_text, until_text = request.GET.get("since", ""), request.GET.get("until", "")
    since, until = _when(since_text), _when(until_text)
    filters = {
        "status": status,
        "route": route,
        "since": since_text if since else "",
        "until": until_text if until else "",
    }
    requests = core.list_requests(
        resource.slug, status=status, route=route, since=since, until=until
    )
    page = _page(request, requests)
    chosen = {name: value for name, value in filters.items() if value}
    context = _resource_context(
        request,
        resource,
        "logs",
        page=page,
        rows=[(entry, _short_caller(entry.caller)) for entry in page.object_list],
        routes=routes,
        statuses=STATUS_CHOICES,
        filters=filters,
        filtered=bool(chosen),
        pager_query=f"{urlencode(chosen)}&" if chosen else "",
        retention_days=settings.REQUEST_LOG_DAYS,
    )
    return render(request, "console/request_log.html", context)
