"""Console pages for events: webhook subscriptions (create, test, enable/disable, delete) and
deliveries (filter, detail with attempts, redeliver)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.console.views import PAGE_SIZE, _page, _resource_context, resource_page
from apps.core.errors import ApiError
from apps.core.parsers import is_single_line
from apps.events import schemas, services
from apps.events.models import DeliveryState, SubscriptionSchema, SubscriptionState

RECENT_EVENTS = 20


@resource_page()
def events(request: HttpRequest, resource: Resource) -> HttpResponse:
    can_manage = accounts.can(request.user, resource, accounts.MANAGE_EVENTS)
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Your role cannot change event subscriptions.")
        else:
            response = _subscription_action(request, resource)
            if response is not None:
                return response
        return redirect("console:events", slug=resource.slug)
    state = request.GET.get("state", "")
    subscription_id = request.GET.get("subscription", "")
    try:
        deliveries = services.list_deliveries(
            resource, state=state or None, subscription_id=subscription_id or None
        )
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("console:events", slug=resource.slug)
    subscriptions = services.list_subscriptions(resource)
    subscription_page = Paginator(subscriptions, PAGE_SIZE).get_page(request.GET.get("subs"))
    context = _resource_context(
        request,
        resource,
        "events",
        can_manage_events=can_manage,
        subscriptions=subscription_page,
        all_subscriptions=subscriptions,
        awaiting=SubscriptionState.AWAITING_VALIDATION,
        page=_page(request, deliveries),
        state=state,
        subscription_filter=subscription_id,
        states=DeliveryState.choices,
        event_types=schemas.EVENT_TYPES,
        schema_choices=SubscriptionSchema.choices,
        filter_query=_query(state=state, subscription=subscription_id),
        form=request.session.pop("events-form", None) or {},
        recent_events=services.list_events(resource)[:RECENT_EVENTS],
    )
    return render(request, "console/events.html", context)


def _query(**params: str) -> str:
    """The filter part of a pager link ("&state=pending"), without empty values."""
    return "".join(f"&{name}={value}" for name, value in params.items() if value)


def _subscription_action(request: HttpRequest, resource: Resource) -> HttpResponse | None:
    """Run one POSTed subscription action; a response to send instead of the events page."""
    action = request.POST.get("action")
    try:
        if action == "create":
            fields = {
                "name": request.POST.get("name", "").strip(),
                "endpoint_url": request.POST.get("endpoint_url", "").strip(),
            }
            event_types = request.POST.getlist("event_types")
            for field, value in [*fields.items(), *(("event_types", t) for t in event_types)]:
                if not is_single_line(value):  # names and URLs: no control characters
                    raise ApiError(f"{field} holds a control character.", target=field)
            subscription = services.create_subscription(
                resource,
                **fields,
                event_types=event_types,
                schema=request.POST.get("schema") or None,
            )
            messages.success(
                request,
                f"{subscription.name} is being validated: its endpoint is sent the handshake "
                "now. The state below changes when it answers.",
            )
            return None
        subscription = services.access_subscription(resource, request.POST.get("subscription"))
        if action == "test":
            delivery = services.test_fire(subscription)
            messages.success(request, f"A test event was sent to {subscription.name}.")
            return redirect("console:event-delivery", slug=resource.slug, delivery_id=delivery.pk)
        elif action == "validate":
            services.revalidate(subscription)
            messages.success(request, f"{subscription.name} is being validated again.")
        elif action in ("enable", "disable"):
            services.set_subscription_enabled(subscription, action == "enable")
            messages.success(
                request, f"{subscription.name} is {subscription.get_state_display().lower()}."
            )
        elif action == "delete":
            name = subscription.name
            services.delete_subscription(subscription)
            messages.success(request, f"Subscription {name} deleted.")
    except ApiError as error:
        if action == "create":
            # Keep what was typed, so a refused endpoint is fixed rather than retyped.
            request.session["events-form"] = {
                "name": request.POST.get("name", ""),
                "endpoint_url": request.POST.get("endpoint_url", ""),
                "event_types": request.POST.getlist("event_types"),
                "schema": request.POST.get("schema", ""),
            }
        messages.error(request, error.message)
    return None


@resource_page()
def event_delivery(request: HttpRequest, resource: Resource, delivery_id: str) -> HttpResponse:
    try:
        delivery = services.access_delivery(resource, delivery_id)
        if request.method == "POST":
            if not accounts.can(request.user, resource, accounts.MANAGE_EVENTS):
                raise ApiError("Your role cannot redeliver events.", status=403, code="Forbidden")
            services.redeliver(delivery)
            messages.success(request, "Sent again.")
            return redirect("console:event-delivery", slug=resource.slug, delivery_id=delivery.pk)
    except ApiError as error:
        messages.error(request, error.message)
        if error.status == 404:
            return redirect("console:events", slug=resource.slug)
        return redirect("console:event-delivery", slug=resource.slug, delivery_id=delivery_id)
    context: dict[str, Any] = _resource_context(
        request,
        resource,
        "events",
        can_manage_events=accounts.can(request.user, resource, accounts.MANAGE_EVENTS),
        delivery=delivery,
        attempts=services.list_attempts(delivery),
        document=json.dumps(services.delivery_document(delivery), indent=2),
        pending=delivery.state == DeliveryState.PENDING,
    )
    return render(request, "console/event_delivery.html", context)
