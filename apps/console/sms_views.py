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
from apps.sms.models import Direction, MessageStatus

LAST_RESULTS = "sms_last_results"


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


@resource_page()
def sms_send(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.SEND_SMS):
            messages.error(request, "Your role cannot send SMS.")
            return redirect("console:sms", slug=resource.slug)
        recipients = [to.strip() for to in request.POST.get("to", "").replace(";", ",").split(",")]
        try:
            send_request = services.check_simple_send(
                request.POST.get("from", ""),
                [to for to in recipients if to],
                request.POST.get("message", ""),
                delivery_report=request.POST.get("delivery_report") == "on",
                tag=request.POST.get("tag", ""),
            )
            request.session[LAST_RESULTS] = services.send(resource, send_request)
        except ApiError as error:
            messages.error(request, error.message)
            request.session["sms_draft"] = request.POST.dict()
        return redirect("console:sms", slug=resource.slug)
    context = _context(
        request,
        resource,
        "send",
        senders=services.sending_numbers(resource),
        results=request.session.pop(LAST_RESULTS, None),
        draft=request.session.pop("sms_draft", {}),
        max_length=services.MAX_MESSAGE_LENGTH,
    )
    return render(request, "console/sms_send.html", context)


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
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("console:sms-messages", slug=resource.slug)
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
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.SEND_SMS):
            messages.error(request, "Your role cannot send SMS.")
        else:
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
        return redirect(f"{url}?{urlencode({'handset': handset})}")
    try:
        conversation = list(handsets.conversation(resource, handset)) if handset else []
    except ApiError:  # not a phone number: nobody to show
        conversation = []
    context = _context(
        request,
        resource,
        "handsets",
        handsets=handsets.list_handsets(resource),
        handset=handset,
        conversation=conversation,
        counterparts=sorted({m.counterpart for m in conversation}),
        senders=services.sending_numbers(resource),
    )
    template = (
        "console/sms_conversation.html"
        if request.GET.get("fragment")
        else "console/sms_handsets.html"
    )
    return render(request, template, context)


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
