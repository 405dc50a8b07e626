"""Console pages for Call Automation, under Calls: the resource's call connections with a
timeline of each (media operations and callbacks in time order), its recordings (played and
downloaded through the console), and Try IVR (a call from the browser to Spool's built-in IVR,
apps/automation/ivr.py, through static/calling/spool-calling.js)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, IncomingCalls, Resource
from apps.automation import callbacks, downloads, services
from apps.automation.models import (
    Callback,
    CallbackState,
    CallConnection,
    MediaOperation,
    OperationState,
    Recording,
    RecordingState,
)
from apps.console.calls_views import _context, _length, _not_found, _short
from apps.console.chat_views import TRY_TOKEN_MINUTES
from apps.console.views import _page, resource_page
from apps.core.errors import ApiError, error_response

# Try IVR's two identities per resource, kept in the console session: {resource id: {"caller":
# raw id, "line": raw id}}.
TRY_IVR_KEY = "console-try-ivr"
TRY_IVR_SCOPES = ["voip"]
KEYPAD = [
    ("1", "Num1", ""),
    ("2", "Num2", "ABC"),
    ("3", "Num3", "DEF"),
    ("4", "Num4", "GHI"),
    ("5", "Num5", "JKL"),
    ("6", "Num6", "MNO"),
    ("7", "Num7", "PQRS"),
    ("8", "Num8", "TUV"),
    ("9", "Num9", "WXYZ"),
    ("*", "Star", ""),
    ("0", "Num0", "+"),
    ("#", "Pound", ""),
]
STATE_CLASSES = {
    "connected": "ok",
    "connecting": "warn",
    "transferring": "warn",
    "disconnecting": "warn",
    OperationState.QUEUED: "pending",
    OperationState.RUNNING: "pending",
    OperationState.COMPLETED: "ok",
    OperationState.FAILED: "bad",
    CallbackState.PENDING: "pending",
    CallbackState.DELIVERED: "ok",
    CallbackState.FAILED: "bad",
    RecordingState.ACTIVE: "active",
    RecordingState.INACTIVE: "warn",
}


# --- Call connections ------------------------------------------------------------------------
def _count_of(model: Any) -> Subquery:
    rows = model.objects.filter(connection=OuterRef("pk")).order_by().values("connection")
    return Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField())


def _connections(resource: Resource) -> QuerySet[CallConnection]:
    return services.list_connections(resource).annotate(
        operation_count=_count_of(MediaOperation), callback_count=_count_of(Callback)
    )


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    return _length((end or now) - start) if start else "—"


@resource_page()
def connections(request: HttpRequest, resource: Resource) -> HttpResponse:
    now = timezone.now()
    page = _page(request, _connections(resource))
    rows = [
        {
            "connection": c,
            "source": _short(c.source_raw_id, resource.pk),
            "built_in": c.callback_uri == callbacks.BUILT_IN_IVR_URI,
            "duration": _duration(c.connected_at, c.ended_at, now),
            "state_class": STATE_CLASSES.get(c.state, ""),
        }
        for c in page.object_list
    ]
    context = _context(request, resource, "automation", page=page, rows=rows)
    return render(request, "console/automation.html", context)


@dataclass(frozen=True)
class Step:
    """One line of a connection's timeline: `kind` is connection, recording, operation or
    callback, and `item` the row it shows (None for the connection's own steps)."""

    at: datetime
    rank: int
    kind: str
    title: str
    state: str = ""
    state_class: str = ""
    item: Any = None
    detail: str = ""
    offset: str = ""


def _timeline(
    connection: CallConnection,
    operations: list[MediaOperation],
    sent: list[Callback],
    recordings: list[Recording],
) -> list[Step]:
    steps = [Step(connection.created_at, 0, "connection", "Created", "connecting", "warn")]
    if connection.connected_at:
        steps.append(Step(connection.connected_at, 0, "connection", "Connected", "connected", "ok"))
    if connection.ended_at:
        steps.append(
            Step(
                connection.ended_at,
                0,
                "connection",
                "Disconnected",
                "disconnected",
                detail=connection.end_reason,
            )
        )
    for recording in recordings:
        steps.append(
            Step(recording.started_at, 1, "recording", "Recording started", item=recording)
        )
        if recording.stopped_at:
            steps.append(
                Step(recording.stopped_at, 1, "recording", "Recording stopped", item=recording)
            )
    for op in operations:
        steps.append(
            Step(
                op.created_at,
                2,
                "operation",
                op.get_kind_display(),
                op.state,
                STATE_CLASSES.get(op.state, ""),
                op,
                json.dumps(op.request, indent=2, sort_keys=True),
            )
        )
    for cb in sent:
        steps.append(
            Step(
                cb.created_at,
                3,
                "callback",
                cb.event_type.removeprefix(callbacks.PREFIX),
                cb.state,
                STATE_CLASSES.get(cb.state, ""),
                cb,
                json.dumps(cb.data, indent=2, sort_keys=True),
            )
        )
    steps.sort(key=lambda step: (step.at, step.rank))
    start = connection.created_at
    return [replace(step, offset=f"+{(step.at - start).total_seconds():.3f} s") for step in steps]


@resource_page()
def connection(request: HttpRequest, resource: Resource, connection_id: str) -> HttpResponse:
    try:
        found = services.access_connection(resource, connection_id)
    except ApiError as error:
        return _not_found(request, error)
    operations = list(found.operations.all())
    sent = list(found.callbacks.all())
    recordings = list(found.recordings.all())
    context = _context(
        request,
        resource,
        "automation",
        connection=found,
        built_in=found.callback_uri == callbacks.BUILT_IN_IVR_URI,
        built_in_uri=callbacks.BUILT_IN_IVR_URI,
        duration=_duration(found.connected_at, found.ended_at, timezone.now()),
        state_class=STATE_CLASSES.get(found.state, ""),
        steps=_timeline(found, operations, sent, recordings),
        operation_count=len(operations),
        callback_count=len(sent),
    )
    return render(request, "console/automation_detail.html", context)


# --- Recordings ------------------------------------------------------------------------------
def _file_status(recording: Recording) -> tuple[str, str]:
    """(status, what to say): status is "ready" when the file can be played."""
    if recording.deleted_at:
        return "deleted", f"Deleted {recording.deleted_at:%Y-%m-%d %H:%M:%S}"
    if recording.state == RecordingState.ACTIVE:
        return "recording", "Recording…"
    if recording.state == RecordingState.INACTIVE:
        return "recording", "Paused"
    if not recording.file_name:
        return "writing", "The file is being written…"
    if recording.file_name == "-":
        return "empty", "Nothing was recorded"
    if downloads.ready_size(recording) is None:
        return "missing", "The file is missing from where recordings are kept"
    return "ready", ""


@resource_page()
def recordings(request: HttpRequest, resource: Resource) -> HttpResponse:
    now = timezone.now()
    page = _page(request, Recording.objects.filter(resource=resource).select_related("call"))
    rows = []
    for recording in page.object_list:
        status, says = _file_status(recording)
        rows.append(
            {
                "recording": recording,
                "duration": _duration(recording.started_at, recording.stopped_at, now),
                "status": status,
                "says": says,
                "state_class": STATE_CLASSES.get(recording.state, ""),
            }
        )
    context = _context(
        request,
        resource,
        "recordings",
        page=page,
        rows=rows,
        retention_days=settings.RECORDING_RETENTION_DAYS,
    )
    return render(request, "console/recordings.html", context)


@resource_page()
def recording_file(request: HttpRequest, resource: Resource, recording_id: str) -> HttpResponse:
    """A recording's audio for the page's player (Range: 206), or as a download (?download=1)."""
    try:
        recording = services.access_recording(resource, recording_id)
    except ApiError as error:
        return _not_found(request, error)
    status, says = _file_status(recording)
    if status != "ready":
        return render(request, "console/not_found.html", {"message": f"{says}."}, status=404)
    response = downloads.recording_response(recording, request.headers.get("Range", ""))
    disposition = "attachment" if request.GET.get("download") else "inline"
    suffix = Path(recording.file_name).suffix
    response["Content-Disposition"] = f'{disposition}; filename="recording-{recording.pk}{suffix}"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- Try IVR ---------------------------------------------------------------------------------
def _kept(request: HttpRequest, resource: Resource) -> dict[str, str]:
    return dict(request.session.get(TRY_IVR_KEY, {}).get(str(resource.pk), {}))


def _identity(resource: Resource, raw_id: str | None) -> CommunicationIdentity | None:
    if not raw_id:
        return None
    try:
        return accounts.access_identity(resource, raw_id)
    except ApiError:  # deleted since: a new one is made
        return None


def _try_ivr_identities(
    request: HttpRequest, resource: Resource
) -> tuple[CommunicationIdentity, CommunicationIdentity]:
    """The caller and the IVR line made for this console user's Try IVR on `resource`: found
    by the raw ids the session keeps, made (again) when missing."""
    kept = _kept(request, resource)
    caller = _identity(resource, kept.get("caller"))
    line = _identity(resource, kept.get("line"))
    with transaction.atomic():
        if caller is None:
            caller, _ = accounts.create_identity(resource)
        if line is None:
            line, _ = accounts.create_identity(resource)
        if line.incoming_calls != IncomingCalls.BUILT_IN_IVR:
            accounts.set_incoming_calls(line, IncomingCalls.BUILT_IN_IVR)
    every = dict(request.session.get(TRY_IVR_KEY, {}))
    every[str(resource.pk)] = {"caller": caller.raw_id, "line": line.raw_id}
    request.session[TRY_IVR_KEY] = every
    return caller, line


@resource_page()
def try_ivr(request: HttpRequest, resource: Resource) -> HttpResponse:
    kept = _kept(request, resource)
    context = _context(
        request,
        resource,
        "ivr",
        media_available=services.media_available(),
        caller_id=kept.get("caller", ""),
        line_id=kept.get("line", ""),
        token_url=reverse("console:calls-ivr-token", kwargs={"slug": resource.slug}),
        token_minutes=TRY_TOKEN_MINUTES,
        keypad=KEYPAD,
    )
    return render(request, "console/calls_ivr.html", context)


@require_POST
def try_ivr_token(request: HttpRequest, slug: str) -> HttpResponse:
    """Try IVR's sign-in and token renewal: makes the page's two identities when missing, and
    issues a `voip` token to the caller. JSON out: identity, token, expiresOn, line (the IVR
    line's raw id). Needs a role that manages identities; Django checks the CSRF token."""
    if not request.user.is_authenticated:
        return error_response(401, "Unauthorized", "Your console session has ended: sign in again.")
    try:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_IDENTITIES)
        caller, line = _try_ivr_identities(request, resource)
        token = accounts.issue_token(caller, TRY_IVR_SCOPES, TRY_TOKEN_MINUTES)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    return JsonResponse(
        {
            "identity": caller.raw_id,
            "token": token.token,
            "expiresOn": token.expires_on.isoformat().replace("+00:00", "Z"),
            "line": line.raw_id,
        }
    )
