"""Console pages for events, in four tabs of one page: webhook subscriptions (create, edit the
event types, test-fire any type they take, enable/disable, delete), the resource's recent
events with their data, deliveries (filter, detail with attempts, redeliver) and dead letters
(redeliver from the list)."""

from __future__ import annotations

import json
from collections.abc import Iterable
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
from apps.core.parsers import is_single_line
from apps.events import schemas, services
from apps.events.models import (
    DeliveryState,
    Event,
    EventSubscription,
    SubscriptionSchema,
    SubscriptionState,
)

TABS = (
    ("subscriptions", "Subscriptions"),
    ("events", "Recent events"),
    ("deliveries", "Deliveries"),
    ("dead-letters", "Dead letters"),
)
DEFAULT_TAB = "subscriptions"
# The data fields worth a glance in the events list, most telling first (every type names a
# few of them); the whole data is one click away.
KEY_FIELDS = (
    "From",
    "To",
    "Message",
    "DeliveryStatus",
    "MessageId",
    "senderDisplayName",
    "messageBody",
    "properties",
    "participants",
    "participantAdded",
    "participantRemoved",
    "from",
    "to",
    "startedBy",
    "user",
    "endedBy",
    "reason",
    "callDurationInSeconds",
    "recordingDurationMs",
    "recordingFormatType",
    "threadId",
    "correlationId",
)
MAX_KEY_FIELDS = 4
KEY_FIELD_CHARS = 60


@resource_page()
def events(request: HttpRequest, resource: Resource) -> HttpResponse:
    can_manage = accounts.can(request.user, resource, accounts.MANAGE_EVENTS)
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Your role cannot change event subscriptions.")
            return redirect("console:events", slug=resource.slug)
        return _action(request, resource)
    tab = request.GET.get("tab", DEFAULT_TAB)
    if tab not in dict(TABS):
        tab = DEFAULT_TAB
    context = _resource_context(
        request,
        resource,
        "events",
        can_manage_events=can_manage,
        events_tab=tab,
        tabs=TABS,
        dead_letters=services.list_deliveries(resource, state=DeliveryState.DEAD_LETTERED).count(),
    )
    try:
        if tab == "subscriptions":
            context.update(_subscriptions_tab(request, resource, can_manage))
        elif tab == "events":
            context.update(_events_tab(request, resource))
        elif tab == "deliveries":
            context.update(_deliveries_tab(request, resource))
        else:
            context.update(_dead_letters_tab(request, resource))
    except ApiError as error:
        if error.status == 404:
            return _not_found(request, error)
        messages.error(request, error.message)
        return redirect(_tab_url(resource, tab))
    return render(request, "console/events.html", context)


# --- The tabs --------------------------------------------------------------------------------
def _subscriptions_tab(
    request: HttpRequest, resource: Resource, can_manage: bool
) -> dict[str, Any]:
    page = _page(request, services.list_subscriptions(resource))
    editing = None
    form = request.session.pop("events-form", None) or {}
    if can_manage and request.GET.get("edit"):
        # Raises SubscriptionNotFound (404) for another resource's subscription.
        editing = services.access_subscription(resource, request.GET["edit"])
        if form.get("editing") != str(editing.pk):
            form = {"event_types": editing.event_types}
    elif form.get("editing"):
        form = {}
    return {
        "subscription_rows": [_subscription_row(s) for s in page.object_list],
        "page": page,
        "page_query": _query(tab="subscriptions"),
        "editing": editing,
        "form": form,
        "type_groups": _type_groups(schemas.EVENT_TYPES, form.get("event_types") or []),
        "schema_choices": SubscriptionSchema.choices,
        "awaiting": SubscriptionState.AWAITING_VALIDATION,
        # Whether a handshake is under way: the page then checks back until it is answered.
        "validating": any(s.state == SubscriptionState.VALIDATING for s in page.object_list),
    }


def _events_tab(request: HttpRequest, resource: Resource) -> dict[str, Any]:
    event_type = request.GET.get("type", "")
    if event_type and event_type not in schemas.EVENT_TYPES:
        raise ApiError(f"Unknown event type {event_type[:100]!r}.", target="type")
    page = _page(request, services.list_events(resource, event_type=event_type or None))
    return {
        "page": page,
        "event_rows": [_event_row(event) for event in page.object_list],
        "event_type": event_type,
        "type_groups": _type_groups(schemas.EVENT_TYPES),
        "page_query": _query(tab="events", type=event_type),
    }


def _deliveries_tab(request: HttpRequest, resource: Resource) -> dict[str, Any]:
    state = request.GET.get("state", "")
    subscription_id = request.GET.get("subscription", "")
    # Raises ApiError (400) for an unknown state, SubscriptionNotFound for a stranger's id.
    deliveries = services.list_deliveries(
        resource, state=state or None, subscription_id=subscription_id or None
    )
    return {
        "page": _page(request, deliveries),
        "state": state,
        "subscription_filter": subscription_id,
        "states": DeliveryState.choices,
        "all_subscriptions": services.list_subscriptions(resource),
        "page_query": _query(tab="deliveries", state=state, subscription=subscription_id),
    }


def _dead_letters_tab(request: HttpRequest, resource: Resource) -> dict[str, Any]:
    deliveries = services.list_deliveries(resource, state=DeliveryState.DEAD_LETTERED)
    return {"page": _page(request, deliveries), "page_query": _query(tab="dead-letters")}


def _subscription_row(subscription: EventSubscription) -> dict[str, Any]:
    return {
        "subscription": subscription,
        "types": _types_summary(subscription.event_types),
        "test_groups": _type_groups(subscription.event_types or schemas.EVENT_TYPES),
    }


def _types_summary(event_types: list[str]) -> list[str]:
    """A filter as it reads best: "all" services by name, other types by their short name."""
    if not event_types:
        return ["all"]
    summary = []
    for service, types in schemas.EVENT_GROUPS:
        chosen = [t for t in types if t in event_types]
        if len(chosen) == len(types):
            summary.append(f"all {service}")
        else:
            summary += [_short(t) for t in chosen]
    return summary


def _type_groups(types: Iterable[str], checked: Iterable[str] = ()) -> list[dict[str, Any]]:
    """`types` by service, in the order of schemas.EVENT_GROUPS, for checkboxes and selects."""
    wanted, ticked = set(types), set(checked)
    groups = []
    for service, members in schemas.EVENT_GROUPS:
        entries = [
            {"value": t, "label": _short(t), "checked": t in ticked} for t in members if t in wanted
        ]
        if entries:
            slug = service.lower().replace(" ", "-")
            groups.append({"service": service, "slug": slug, "types": entries})
    return groups


def _event_row(event: Event) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {"value": event.data}
    fields = [(key, _glance(data[key])) for key in KEY_FIELDS if key in data]
    if not fields:  # a type without the usual fields: its first ones
        fields = [(key, _glance(value)) for key, value in data.items()]
    return {
        "event": event,
        "fields": fields[:MAX_KEY_FIELDS],
        "json": json.dumps(event.data, indent=2, ensure_ascii=False),
    }


def _glance(value: Any) -> str:
    """A data value in a few words: an identifier by its raw id, a list by its length."""
    if isinstance(value, dict):
        for key in ("rawId", "topic", "displayName", "message"):
            if isinstance(value.get(key), str) and value[key]:
                return _cut(value[key])
        for inner in ("communicationIdentifier", "participantCommunicationIdentifier"):
            if isinstance(value.get(inner), dict):
                return _glance(value[inner])
        return _cut(json.dumps(value, separators=(",", ":")))
    if isinstance(value, list):
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    return _cut("" if value is None else str(value))


def _cut(text: str) -> str:
    return text if len(text) <= KEY_FIELD_CHARS else text[: KEY_FIELD_CHARS - 1] + "…"


def _short(event_type: str) -> str:
    return event_type.removeprefix(schemas.PREFIX)


def _query(**params: str) -> str:
    """The filter part of a pager link ("&tab=deliveries&state=pending"), without empty
    values."""
    kept = {name: value for name, value in params.items() if value}
    return "&" + urlencode(kept) if kept else ""


def _tab_url(resource: Resource, tab: str, **params: str) -> str:
    url = reverse("console:events", kwargs={"slug": resource.slug})
    query = {"tab": tab, **params} if tab != DEFAULT_TAB else params
    return f"{url}?{urlencode(query)}" if query else url


def _not_found(request: HttpRequest, error: ApiError) -> HttpResponse:
    return render(request, "console/not_found.html", {"message": error.message}, status=404)


# --- Actions ---------------------------------------------------------------------------------
def _action(request: HttpRequest, resource: Resource) -> HttpResponse:
    """Run one POSTed action and go back to its tab; another resource's subscription or
    delivery is not found (404), any other refusal is a message and changes nothing."""
    action = request.POST.get("action")
    back = _tab_url(resource, DEFAULT_TAB)
    try:
        if action == "create":
            return _create(request, resource)
        if action == "redeliver":
            back = _tab_url(resource, "dead-letters")
            delivery = services.access_delivery(resource, request.POST.get("delivery"))
            services.redeliver(delivery)
            messages.success(
                request,
                f"{_short(delivery.event.event_type)} is being sent to "
                f"{delivery.subscription.name} again: see it under Deliveries.",
            )
            return redirect(back)
        subscription = services.access_subscription(resource, request.POST.get("subscription"))
        if action == "types":
            back = _tab_url(resource, DEFAULT_TAB, edit=str(subscription.pk))
            event_types = _event_types(request)
            services.update_event_types(subscription, event_types)
            messages.success(
                request,
                f"{subscription.name} takes "
                f"{', '.join(_types_summary(subscription.event_types))} events now.",
            )
            return redirect(_tab_url(resource, DEFAULT_TAB))
        if action == "test":
            delivery = services.test_fire(
                subscription, event_type=request.POST.get("event_type") or None
            )
            messages.success(
                request,
                f"A test {_short(delivery.event.event_type)} event was sent to "
                f"{subscription.name}.",
            )
            return redirect("console:event-delivery", slug=resource.slug, delivery_id=delivery.pk)
        if action == "validate":
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
        else:
            messages.error(request, "Unknown action.")
    except ApiError as error:
        if error.status == 404:
            return _not_found(request, error)
        if action in ("create", "types"):
            # Keep what was typed and ticked, so a refusal is fixed rather than redone.
            request.session["events-form"] = {
                "name": request.POST.get("name", ""),
                "endpoint_url": request.POST.get("endpoint_url", ""),
                "event_types": request.POST.getlist("event_types"),
                "schema": request.POST.get("schema", ""),
                "editing": request.POST.get("subscription", "") if action == "types" else "",
            }
        messages.error(request, error.message)
    return redirect(back)


def _create(request: HttpRequest, resource: Resource) -> HttpResponse:
    fields = {
        "name": request.POST.get("name", "").strip(),
        "endpoint_url": request.POST.get("endpoint_url", "").strip(),
    }
    for field, value in fields.items():
        if not is_single_line(value):  # names and URLs: no control characters
            raise ApiError(f"{field} holds a control character.", target=field)
    subscription = services.create_subscription(
        resource,
        **fields,
        event_types=_event_types(request),
        schema=request.POST.get("schema") or None,
    )
    messages.success(
        request,
        f"{subscription.name} is being validated: its endpoint is sent the handshake now. "
        "The state below changes when it answers.",
    )
    return redirect(_tab_url(resource, DEFAULT_TAB))


def _event_types(request: HttpRequest) -> list[str]:
    """The ticked types; the services say which are unknown."""
    event_types = request.POST.getlist("event_types")
    for value in event_types:
        if not is_single_line(value):
            raise ApiError("event_types holds a control character.", target="event_types")
    return event_types


# --- One delivery ----------------------------------------------------------------------------
@resource_page()
def event_delivery(request: HttpRequest, resource: Resource, delivery_id: str) -> HttpResponse:
    try:
        delivery = services.access_delivery(resource, delivery_id)
    except ApiError as error:
        return _not_found(request, error)
    if request.method == "POST":
        try:
            if not accounts.can(request.user, resource, accounts.MANAGE_EVENTS):
                raise ApiError("Your role cannot redeliver events.", status=403, code="Forbidden")
            services.redeliver(delivery)
            messages.success(request, "Sent again.")
        except ApiError as error:
            messages.error(request, error.message)
        return redirect("console:event-delivery", slug=resource.slug, delivery_id=delivery.pk)
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
