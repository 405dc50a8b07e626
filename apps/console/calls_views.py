"""Console pages for calling: the resource's call log, with a page for each call; Try calling
(a 1:1 call between identities) and Group call, live in the browser through
static/calling/spool-calling.js on the identity socket. Rooms are in rooms_views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.models import Resource
from apps.calls import records, rooms
from apps.calls.models import Call
from apps.console.chat_views import IDENTITY_CHOICES, TRY_TOKEN_MINUTES, issue_try_token
from apps.console.views import _page, _resource_context, resource_page
from apps.core.errors import ApiError
from apps.pstn import dialing

# The Calls section's sub-tabs, in order: (key, label, URL name). A page marks its own tab by
# passing its key; a new page adds its line here and nothing else changes.
CALLS_TABS = [
    ("log", "Call log", "console:calls"),
    ("rooms", "Rooms", "console:rooms"),
    ("try", "Try calling", "console:calls-try"),
    ("group", "Group call", "console:calls-group"),
    ("phones", "Virtual phones", "console:calls-phones"),
]
# The Try pages' tokens: place, answer and join calls.
TRY_CALL_SCOPES = ["voip"]


@dataclass(frozen=True)
class CallRow:
    """A call as the log shows it: `caller` is short for an identity of the resource (the
    start of its id; the page keeps the raw id in a tooltip), `duration` is "—" when the call
    never connected and the time so far while it is `ongoing`."""

    call: Call
    caller: str
    duration: str
    ongoing: bool


def _context(
    request: HttpRequest, resource: Resource, calls_tab: str, **extra: Any
) -> dict[str, Any]:
    tabs = [
        {"key": key, "label": label, "url": reverse(name, kwargs={"slug": resource.slug})}
        for key, label, name in CALLS_TABS
    ]
    return _resource_context(
        request, resource, "calls", calls_tab=calls_tab, calls_tabs=tabs, **extra
    )


def _not_found(request: HttpRequest, error: ApiError) -> HttpResponse:
    return render(request, "console/not_found.html", {"message": error.message}, status=404)


def _length(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def _short(raw_id: str, resource_id: Any) -> str:
    prefix = f"8:acs:{resource_id}_"
    if raw_id.startswith(prefix):
        return f"{raw_id[len(prefix) :][:8]}…"
    return raw_id


def _row(call: Call, now: datetime) -> CallRow:
    ongoing = call.ended_at is None
    caller = _short(call.caller_raw_id, call.resource_id)
    if call.connected_at is None:
        return CallRow(call, caller, "—", ongoing)
    return CallRow(call, caller, _length((call.ended_at or now) - call.connected_at), ongoing)


def _rows(calls: Any, now: datetime) -> list[CallRow]:
    return [_row(call, now) for call in calls]


@resource_page()
def calls(request: HttpRequest, resource: Resource) -> HttpResponse:
    state = request.GET.get("state", "").strip()
    if state not in records.STATES:
        state = ""
    page = _page(request, records.calls_of_resource(resource, state))
    context = _context(
        request,
        resource,
        "log",
        page=page,
        rows=_rows(page.object_list, timezone.now()),
        state=state,
        states=[("", "All"), (records.LIVE, "Live"), (records.ENDED, "Ended")],
        pager_query=f"{urlencode({'state': state})}&" if state else "",
    )
    return render(request, "console/calls.html", context)


@resource_page()
def call(request: HttpRequest, resource: Resource, call_id: str) -> HttpResponse:
    try:
        found = records.call_of_resource(resource, call_id)
    except ApiError as error:
        return _not_found(request, error)
    context = _context(
        request,
        resource,
        "log",
        call=found,
        row=_row(found, timezone.now()),
        participants=records.participants_of_call(found),
    )
    return render(request, "console/calls_detail.html", context)


def _try_context(request: HttpRequest, resource: Resource, calls_tab: str) -> dict[str, Any]:
    return _context(
        request,
        resource,
        calls_tab,
        token_url=reverse("console:calls-token", kwargs={"slug": resource.slug}),
        token_minutes=TRY_TOKEN_MINUTES,
    )


@resource_page()
def calls_try(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _try_context(request, resource, "try")
    context["caller_ids"] = dialing.caller_ids(resource)
    return render(request, "console/calls_try.html", context)


@resource_page()
def calls_group(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _try_context(request, resource, "group")
    open_rooms = rooms.list_rooms(resource).filter(rooms.open_at(timezone.now()))
    context["rooms"] = open_rooms[:IDENTITY_CHOICES]
    context["caller_ids"] = dialing.caller_ids(resource)
    return render(request, "console/calls_group.html", context)


@require_POST
def calls_token(request: HttpRequest, slug: str) -> HttpResponse:
    """The calling Try pages' sign-in and token renewal: a `voip` token (see issue_try_token)."""
    return issue_try_token(request, slug, TRY_CALL_SCOPES)
