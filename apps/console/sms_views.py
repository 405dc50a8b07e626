"""Console pages for SMS: try sending, the message log, virtual handsets and opt-outs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.console.views import _page, _resource_context, resource_page
from apps.core.errors import ApiError
from apps.sms import handsets, optouts, segments, services
from apps.sms.addresses import is_e164
from apps.sms.exceptions import MessageNotFound
from apps.sms.models import Direction, MessageStatus

# What the send form holds; kept, as typed, when anything was refused.
DRAFT_FIELDS = ("from", "to", "message", "delivery_report", "tag")


def _context(
    request: HttpRequest, resource: Resource, sms_tab: str, **extra: Any
) -> dict[str, Any]:
    return _resource_context(
        request,
        resource,
        "sms",
        sms_tab=sms_tab,
        can_send_sms=accounts.can(request.user, resource, accounts.SEND_SMS),
        **extra,
    )


def _outcome_key(resource: Resource) -> str:
    # Per resource: a send's outcome links to its messages, which only its resource shows.
    return f"sms_send_outcome:{resource.pk}"


@resource_page()
def sms_send(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.SEND_SMS):
            messages.error(request, "Your role cannot send SMS.")
            return redirect("console:sms", slug=resource.slug)
        draft = {field: request.POST.get(field, "") for field in DRAFT_FIELDS}
        request.session[_outcome_key(resource)] = _send(resource, draft)
        return redirect("console:sms", slug=resource.slug)
    outcome = request.session.pop(_outcome_key(resource), None)
    context = _context(
        request,
        resource,
        "send",
        senders=services.sending_numbers(resource),
        outcome=outcome,
        draft=outcome["draft"] if outcome and not outcome["everything_sent"] else {},
        max_length=services.MAX_MESSAGE_LENGTH,
    )
    return render(request, "console/sms_send.html", context)


def _send(resource: Resource, draft: dict[str, str]) -> dict[str, Any]:
    """Send what the form holds; the outcome the page shows (JSON-safe: it waits in the
    session until the redirect's page shows it)."""
    recipients = [to.strip() for to in draft["to"].replace(";", ",").split(",") if to.strip()]
    try:
        send_request = services.check_simple_send(
            draft["from"],
            recipients,
            draft["message"],
            delivery_report=draft["delivery_report"] == "on",
            tag=draft["tag"],
        )
        results = services.send(resource, send_request)
    except ApiError as error:
        return {
            "heading": "Nothing was sent",
            "problem": _problem_in_words(error, draft, recipients),
            "rows": [],
            "accepted": 0,
            "everything_sent": False,
            "draft": draft,
        }
    rows = [
        {
            "to": _shown(result["to"]),
            "is_number": is_e164(result["to"]),
            "accepted": result["successful"],
            "message_id": result.get("messageId", "") if result["successful"] else "",
            "reason": "" if result["successful"] else _refusal_in_words(result),
        }
        for result in results
    ]
    accepted = sum(row["accepted"] for row in rows)
    return {
        "heading": _heading(accepted, len(rows)),
        "problem": "",
        "rows": rows,
        "accepted": accepted,
        "everything_sent": accepted == len(rows),
        "draft": draft,
    }


def _heading(accepted: int, total: int) -> str:
    if accepted == 0:
        return "Nothing was sent"
    if accepted == total:
        return "Sent to 1 recipient" if total == 1 else f"Sent to all {total} recipients"
    return f"Sent to {accepted} of {total} recipients"


def _problem_in_words(error: ApiError, draft: dict[str, str], recipients: list[str]) -> str:
    """Why a send was refused as a whole, in the form's words rather than the ACS body's."""
    if error.target == "from":
        sender = draft["from"] if is_e164(draft["from"]) else "The sender"
        return f"{sender} is not one of this resource's numbers with outbound SMS."
    if error.target == "smsRecipients":
        if not recipients:
            return "Type at least one recipient in To."
        if len(recipients) > services.MAX_RECIPIENTS:
            return (
                f"To lists {len(recipients)} numbers; one send reaches at most "
                f"{services.MAX_RECIPIENTS}."
            )
    if error.target == "message":
        text = draft["message"]
        if not text:
            return "Type a message."
        if len(text) > services.MAX_MESSAGE_LENGTH:
            return (
                f"The message is {len(text):,} characters long; the limit is "
                f"{services.MAX_MESSAGE_LENGTH:,}."
            )
        return "The message holds a control character (only line breaks and tabs may be in it)."
    if error.target == "tag":
        return f"The tag must be one line of at most {services.MAX_TAG_LENGTH} characters."
    return error.message


def _refusal_in_words(result: dict[str, Any]) -> str:
    """Why one recipient was refused (its ACS result's errorMessage speaks to programs)."""
    if not is_e164(result["to"]):
        return (
            f"“{_shown(result['to'])}” is not a phone number in E.164 format (+ and 7 to 15 "
            "digits, e.g. +14255550123)."
        )
    return str(result.get("errorMessage") or "Refused.")


def _shown(typed: str) -> str:
    return typed if len(typed) <= 40 else f"{typed[:40]}…"


@resource_page()
def sms_messages(request: HttpRequest, resource: Resource) -> HttpResponse:
    filters = {key: request.GET.get(key, "").strip() for key in ("direction", "status", "number")}
    try:
        log = services.list_messages(resource, **filters)
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("console:sms-messages", slug=resource.slug)
    query = urlencode({key: value for key, value in filters.items() if value})
    context = _context(
        request,
        resource,
        "messages",
        page=_page(request, log),
        filters=filters,
        pager_query=f"{query}&" if query else "",
        directions=Direction.choices,
        statuses=MessageStatus.choices,
    )
    return render(request, "console/sms_messages.html", context)


@resource_page()
def sms_message(request: HttpRequest, resource: Resource, message_id: str) -> HttpResponse:
    try:
        message = services.access_message(resource, message_id)
    except MessageNotFound as error:
        return render(request, "console/not_found.html", {"message": error.message}, status=404)
    context = _context(
        request,
        resource,
        "messages",
        message=message,
        info=segments.analyze(message.text),
    )
    return render(request, "console/sms_message.html", context)


@resource_page()
def sms_handsets(request: HttpRequest, resource: Resource) -> HttpResponse:
    handset = request.GET.get("handset", "").strip()
    problem = ""
    if handset:
        try:
            handsets.check_handset(handset)
        except ApiError as error:  # no handset to show, nor to reply from
            problem = error.message
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.SEND_SMS):
            messages.error(request, "Your role cannot send SMS.")
        elif handset and not problem:
            try:
                handsets.reply(
                    resource,
                    handset=handset,
                    counterpart=request.POST.get("to", ""),
                    text=request.POST.get("message", ""),
                )
            except ApiError as error:
                messages.error(request, error.message)
        url = reverse("console:sms-handsets", kwargs={"slug": resource.slug})
        return redirect(f"{url}?{urlencode({'handset': handset})}" if handset else url)
    shown = handset if handset and not problem else ""
    conversation = list(handsets.conversation(resource, shown)) if shown else []
    context = _context(
        request,
        resource,
        "handsets",
        handsets=handsets.list_handsets(resource),
        typed=handset,
        handset=shown,
        problem=problem,
        conversation=conversation,
        counterparts=sorted({m.counterpart for m in conversation}),
        senders=services.sending_numbers(resource),
    )
    template = (
        "console/sms_conversation.html"
        if request.GET.get("fragment")
        else "console/sms_handsets.html"
    )
    return render(request, template, context, status=404 if problem else 200)


@resource_page()
def sms_opt_outs(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.SEND_SMS):
            messages.error(request, "Your role cannot change opt-outs.")
            return redirect("console:sms-opt-outs", slug=resource.slug)
        try:
            if request.POST.get("action") == "remove":
                opt_out = optouts.remove_opt_out(resource, int(request.POST.get("id") or 0))
                messages.success(
                    request,
                    f"{opt_out.recipient} may receive messages from {opt_out.sender} again.",
                )
            else:
                opt_out = optouts.add_opt_out(
                    resource,
                    sender=request.POST.get("from", ""),
                    recipient=request.POST.get("to", "").strip(),
                    source="console",
                )
                messages.success(request, f"{opt_out.recipient} opted out of {opt_out.sender}.")
        except (ApiError, ValueError) as error:
            messages.error(request, getattr(error, "message", str(error)))
        return redirect("console:sms-opt-outs", slug=resource.slug)
    context = _context(
        request,
        resource,
        "opt-outs",
        page=_page(request, optouts.list_opt_outs(resource)),
        senders=services.sending_numbers(resource),
    )
    return render(request, "console/sms_opt_outs.html", context)
