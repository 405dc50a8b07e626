"""The error log ("what went wrong"): one list of a resource's recent failures from every part
of the platform, newest first, each with a link to its own page and, where the cause is known,
what to do about it. Read from the rows each app keeps (no copy): API requests refused or
failed (the request log), SMS that failed, webhook deliveries dead-lettered or failing, calls
that ended in an error, and Call Automation operations and callbacks that failed.

    listing = problems(resource, source="sms", since=now - timedelta(days=1))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Resource

# How many of each source's newest failures are read; the page is paged over their union.
PER_SOURCE = 500


@dataclass(frozen=True)
class Problem:
    at: datetime
    source: str  # a key of SOURCES
    title: str
    detail: str
    url: str
    fix: str = ""


SOURCES = {
    "api": "API requests",
    "sms": "SMS",
    "webhooks": "Webhooks",
    "calls": "Calls",
    "automation": "Call Automation",
}

# What to do, by the ACS error code of a refused request (apps/core/errors.py and the apps').
API_FIXES = {
    "Unauthorized": "Sign with one of the resource's current keys (Keys): a regenerated key "
    "stops the old one at once. The clock of the caller must be within 5 minutes of the "
    "server's.",
    "TooManyRequests": "A quota was reached: retry after the Retry-After seconds, and spread "
    "the requests out. Operators set the quotas (SPOOL_QUOTA_*).",
    "UnsupportedApiVersion": "Use an api-version Spool serves: the error lists them.",
    "MissingApiVersionParameter": "Add ?api-version=... (the official SDKs do).",
    "RequestEntityTooLarge": "Send a smaller body (ACS's limits apply).",
    "NoRouteToNumber": "Add a voice route that matches the number, through an enabled trunk "
    "(SIP trunks; the ACS SIP routing API).",
    "TooManyCalls": "The resource has as many phone calls as it may: end some, or ask the "
    "operator for more (SPOOL_PSTN_MAX_CALLS).",
    "TooManyHeldNumbers": "Buy or cancel the number searches you hold (Phone numbers).",
    "NoNumbersAvailable": "Search another area code or country: the inventory has none left.",
    "Forbidden": "The caller may not do this: check the token's scopes, the caller id, or the "
    "member's role.",
}
SMS_FIXES = (
    (
        "opted out",
        "The recipient texted STOP: only their START lets messages through again (SMS › Opt-outs).",
    ),
    ("not one of", "Send from a number the resource owns with outbound SMS (Phone numbers)."),
    ("rate", "Slow down: the carrier or the sender's pace refused it."),
)
RECEIPT_OVERDUE_FIX = (
    "The handset may be off or out of coverage (the carrier keeps trying until the message's "
    "validity ends), or the carrier sends no receipts: ask the operator to check its SMPP "
    "account asks for them."
)
WEBHOOK_FIX = (
    "Check that the endpoint answers 2xx within 30 s (Events › the delivery shows each "
    "attempt); fix it, then Redeliver."
)
CALL_FIXES = {
    408: "Nobody answered in time.",
    480: "The callee was not reachable: is it signed in with a voip token?",
    486: "The callee was busy.",
    503: "A media server or a trunk was down: see the operator's health page.",
}


def problems(
    resource: Resource, *, source: str = "", since: datetime | None = None
) -> list[Problem]:
    """The resource's failures since `since` (all kept when None), from one source or all,
    newest first."""
    readers = {
        "api": _api,
        "sms": _sms,
        "webhooks": _webhooks,
        "calls": _calls,
        "automation": _automation,
    }
    chosen = [readers[source]] if source in readers else list(readers.values())
    found: list[Problem] = []
    for read in chosen:
        found += read(resource, since)
    found.sort(key=lambda problem: problem.at, reverse=True)
    return found


def _since(queryset: Any, field: str, since: datetime | None) -> Any:
    return queryset.filter(**{f"{field}__gte": since}) if since else queryset


def _api(resource: Resource, since: datetime | None) -> list[Problem]:
    from apps.core.models import RequestLog

    rows = _since(
        RequestLog.objects.filter(resource_slug=resource.slug, status__gte=400), "at", since
    ).order_by("-at")[:PER_SOURCE]
    url = reverse("console:request-log", kwargs={"slug": resource.slug})
    return [
        Problem(
            at=row.at,
            source="api",
            title=f"{row.method} {row.route} → {row.status} {row.error_code}".strip(),
            detail=row.error_message,
            url=f"{url}?status={row.status}",
            fix=API_FIXES.get(row.error_code, ""),
        )
        for row in rows
    ]


def _sms(resource: Resource, since: datetime | None) -> list[Problem]:
    from apps.sms.models import MessageStatus, SmsMessage

    rows = _since(
        SmsMessage.objects.filter(resource=resource, status=MessageStatus.FAILED),
        "created_at",
        since,
    ).order_by("-created_at")[:PER_SOURCE]
    return [
        Problem(
            at=row.finished_at or row.created_at,
            source="sms",
            title=f"SMS from {row.sender} to {row.recipient} failed",
            detail=row.status_detail,
            url=reverse(
                "console:sms-message", kwargs={"slug": resource.slug, "message_id": row.id}
            ),
            fix=next((fix for words, fix in SMS_FIXES if words in row.status_detail.lower()), ""),
        )
        for row in rows
    ] + _sms_receipts_overdue(resource, since)


def _sms_receipts_overdue(resource: Resource, since: datetime | None) -> list[Problem]:
    """Messages sent with a delivery report asked for whose carrier receipt is overdue."""
    from apps.sms.models import MessageStatus, SmsMessage

    overdue = timedelta(minutes=settings.SMS_RECEIPT_OVERDUE_MINUTES)
    rows = _since(
        SmsMessage.objects.filter(
            resource=resource,
            status=MessageStatus.SENT,
            delivery_report_requested=True,
            submitted_at__lt=timezone.now() - overdue,
        ),
        "submitted_at",
        since,
    ).order_by("-submitted_at")[:PER_SOURCE]
    return [
        Problem(
            at=row.submitted_at,
            source="sms",
            title=f"SMS from {row.sender} to {row.recipient}: no delivery receipt",
            detail=f"The carrier took it {row.submitted_at:%Y-%m-%d %H:%M} UTC and has not "
            "said whether it reached the handset.",
            url=reverse(
                "console:sms-message", kwargs={"slug": resource.slug, "message_id": row.id}
            ),
            fix=RECEIPT_OVERDUE_FIX,
        )
        for row in rows
    ]


def _webhooks(resource: Resource, since: datetime | None) -> list[Problem]:
    from django.db.models import Q

    from apps.events.models import DeliveryState, EventDelivery

    # Dead letters, and deliveries still retrying after a failed attempt.
    failing = Q(state=DeliveryState.DEAD_LETTERED) | Q(
        state=DeliveryState.PENDING, attempt_count__gt=0
    )
    rows = (
        _since(EventDelivery.objects.filter(failing, resource=resource), "created_at", since)
        .select_related("event", "subscription")
        .order_by("-created_at")[:PER_SOURCE]
    )
    found = []
    for row in rows:
        dead = row.state == DeliveryState.DEAD_LETTERED
        found.append(
            Problem(
                at=row.created_at,
                source="webhooks",
                title=(
                    f"{row.event.event_type} to {row.subscription.name}: "
                    + ("dead-lettered" if dead else f"failing, {row.attempt_count} attempts")
                ),
                detail=row.dead_letter_reason if dead else row.last_error,
                url=reverse(
                    "console:event-delivery",
                    kwargs={"slug": resource.slug, "delivery_id": str(row.id)},
                ),
                fix=WEBHOOK_FIX,
            )
        )
    return found


def _calls(resource: Resource, since: datetime | None) -> list[Problem]:
    from apps.calls.models import Call

    # Declines (603), cancels (487) and a caller's hang-up are choices, not failures.
    rows = (
        _since(Call.objects.filter(resource=resource, end_code__gte=400), "ended_at", since)
        .exclude(end_code__in=(487, 603))
        .order_by("-ended_at")[:PER_SOURCE]
    )
    return [
        Problem(
            at=row.ended_at or row.created_at,
            source="calls",
            title=f"Call ended {row.end_code}" + (f"/{row.end_subcode}" if row.end_subcode else ""),
            detail=row.end_reason,
            url=reverse("console:call", kwargs={"slug": resource.slug, "call_id": str(row.id)}),
            fix=CALL_FIXES.get(row.end_code or 0, ""),
        )
        for row in rows
    ]


def _automation(resource: Resource, since: datetime | None) -> list[Problem]:
    from apps.automation.models import Callback, CallbackState, MediaOperation, OperationState

    found = []
    operations = (
        _since(
            MediaOperation.objects.filter(
                connection__resource=resource, state=OperationState.FAILED
            ),
            "created_at",
            since,
        )
        .select_related("connection")
        .order_by("-created_at")[:PER_SOURCE]
    )
    for operation in operations:
        found.append(
            Problem(
                at=operation.ended_at or operation.created_at,
                source="automation",
                title=f"{operation.kind} failed"
                + (
                    f" ({operation.result_code}/{operation.result_subcode})"
                    if operation.result_code
                    else ""
                ),
                detail=operation.result_message,
                url=_connection_url(resource, operation.connection_id),
            )
        )
    callbacks = _since(
        Callback.objects.filter(connection__resource=resource, state=CallbackState.FAILED),
        "created_at",
        since,
    ).order_by("-created_at")[:PER_SOURCE]
    for callback in callbacks:
        found.append(
            Problem(
                at=callback.created_at,
                source="automation",
                title=f"Callback {callback.event_type} could not be delivered",
                detail=callback.last_error
                or (f"HTTP {callback.last_status_code}" if callback.last_status_code else ""),
                url=_connection_url(resource, callback.connection_id),
                fix="Your callback URL must answer 2xx: the call's later callbacks wait for it.",
            )
        )
    return found


def _connection_url(resource: Resource, connection_id: Any) -> str:
    return reverse(
        "console:calls-connection",
        kwargs={"slug": resource.slug, "connection_id": str(connection_id)},
    )
