"""The console's virtual phones (Calls > Virtual phones): a phone outside the deployment, on
the loopback voice carrier, that rings on this page, answers, speaks (the microphone or a test
tone), sends keys and dials the deployment's numbers (apps/automation/virtual_phones.py). The
page asks for a ticket for its number, then talks to /ws/virtual-phone/."""

from __future__ import annotations

import secrets

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.automation.phone_consumers import issue_ticket, phones_available
from apps.console.automation_views import KEYPAD
from apps.console.calls_views import _context
from apps.console.views import resource_page
from apps.core import parsers
from apps.core.errors import ApiError, error_response
from apps.numbers.models import Capability, NumberStatus, PhoneNumber
from apps.pstn import loopback

VIRTUAL_NUMBER_KEY = "spool.virtual-phone"  # the session's virtual number, per resource


def _virtual_number(request: HttpRequest, resource: Resource) -> str:
    """The number this console session's virtual phone had, or a new +1 555 01xx one."""
    kept = dict(request.session.get(VIRTUAL_NUMBER_KEY, {}))
    number = kept.get(str(resource.pk), "")
    if not number:
        for _ in range(20):
            number = f"+1555010{secrets.randbelow(10000):04d}"
            if not loopback.is_deployment_number(number):
                break
        kept[str(resource.pk)] = number
        request.session[VIRTUAL_NUMBER_KEY] = kept
    return str(number)


@resource_page()
def virtual_phones(request: HttpRequest, resource: Resource) -> HttpResponse:
    numbers = PhoneNumber.objects.filter(
        owner=resource,
        status=NumberStatus.OWNED,
        owned_calling__in=[Capability.INBOUND, Capability.BOTH],
    ).order_by("number")
    context = _context(
        request,
        resource,
        "phones",
        available=phones_available(),
        loopback=loopback.enabled(),
        number=_virtual_number(request, resource),
        numbers=[(n.number, n.inbound_destination) for n in numbers],
        ticket_url=reverse("console:calls-phones-ticket", kwargs={"slug": resource.slug}),
        keypad=KEYPAD,
        can_call=accounts.can(request.user, resource, accounts.MANAGE_IDENTITIES),
    )
    return render(request, "console/calls_phones.html", context)


@require_POST
def virtual_phone_ticket(request: HttpRequest, slug: str) -> HttpResponse:
    """A ticket for the virtual phone socket. JSON in: {"number"}; out: {"number", "ticket",
    "socket"}. Needs a role that manages identities (it places calls); Django checks CSRF."""
    if not request.user.is_authenticated:
        return error_response(401, "Unauthorized", "Your console session has ended: sign in again.")
    try:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_IDENTITIES)
        body = parsers.loads(request.body or b"{}")  # (raises InvalidInput, an ApiError)
        number = loopback.check_virtual_number(
            str(body.get("number") or "") if isinstance(body, dict) else ""
        )
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    kept = dict(request.session.get(VIRTUAL_NUMBER_KEY, {}))
    kept[str(resource.pk)] = number
    request.session[VIRTUAL_NUMBER_KEY] = kept
    return JsonResponse(
        {
            "number": number,
            "ticket": issue_ticket(resource.slug, number),
            "socket": "/ws/virtual-phone/",
        }
    )
