"""Console pages for phone numbers: the get-numbers wizard, owned numbers, operations, and
the staff inventory import."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.console.views import _page, _resource_context, resource_page, staff_page
from apps.core.errors import ApiError
from apps.numbers import holds, inventory, orders, services
from apps.numbers.models import (
    AssignmentType,
    Capability,
    NumberStatus,
    NumberType,
    OperationStatus,
)

# What the console says for the numbers services' errors. The API keeps its own messages for
# SDK users, which name fields ("areaCode must be ..."); people in the console read these.
# Keyed by (error code, target), then (error code, None) for any target; anything else is
# shown as the service said it.
USER_WORDS: dict[tuple[str, str | None], str] = {
    ("InvalidRequest", "countryCode"): "Choose a country from the list.",
    ("InvalidRequest", "phoneNumberType"): "Choose a number type from the list.",
    ("InvalidRequest", "assignmentType"): "Choose whether the numbers are for an application "
    "or a person.",
    ("BadRequest", "assignmentType"): "Choose whether the numbers are for an application or a "
    "person.",
    ("BadRequest", "capabilities"): "Choose calling, SMS or both: a number with neither can "
    "do nothing.",
    ("BadRequest", "capabilities.calling"): "Choose the calling the numbers need from the list.",
    ("BadRequest", "capabilities.sms"): "Choose the SMS the numbers need from the list.",
    ("BadRequest", "areaCode"): "The area code is digits only, e.g. 425.",
    ("BadRequest", "quantity"): f"Ask for 1 to {orders.MAX_SEARCH_QUANTITY} numbers.",
    ("NoNumbersAvailable", None): "No numbers match this search: try another area code or "
    "fewer numbers.",
    ("TooManyHeldNumbers", None): "This resource holds as many numbers as it may at once: buy "
    "or cancel a hold, or wait for one to end, then search again.",
    ("SearchNotFound", None): "This search was not found.",
    ("SearchNotPurchasable", None): "These numbers can no longer be bought: their hold ended, "
    "or they are bought already. Search again for more.",
    ("SearchNotCancellable", None): "These numbers are bought, or being bought: there is no "
    "hold left to cancel.",
}


def user_words(error: ApiError) -> str:
    return (
        USER_WORDS.get((error.code, error.target))
        or USER_WORDS.get((error.code, None))
        or error.message
    )


# The search form as it first shows (and what a resubmitted form falls back to).
SEARCH_DEFAULTS = {
    "type": NumberType.GEOGRAPHIC.value,
    "assignment": AssignmentType.APPLICATION.value,
    "calling": Capability.BOTH.value,
    "sms": Capability.BOTH.value,
    "area_code": "",
    "quantity": "1",
}


@resource_page()
def numbers(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.MANAGE_NUMBERS):
            messages.error(request, "Your role cannot search, buy or release numbers.")
            return redirect("console:numbers", slug=resource.slug)
        if request.POST.get("action") == "search":
            return _search(request, resource)
        return _numbers_action(request, resource)
    return _numbers_page(request, resource, request.GET.get("country") or "US")


def _numbers_page(
    request: HttpRequest,
    resource: Resource,
    country: str,
    *,
    chosen: dict[str, str] | None = None,
    search_error: str = "",
) -> HttpResponse:
    countries = services.list_countries()
    offered = [code for code, _ in countries]
    country = country.upper()
    if country not in offered and offered:
        # The search form's country is the one its list shows selected.
        country = "US" if "US" in offered else offered[0]
    owned = resource.phone_numbers.filter(status=NumberStatus.OWNED).order_by("number")
    context = _resource_context(
        request,
        resource,
        "numbers",
        page=_page(request, owned),
        countries=countries,
        country=country,
        area_codes=_area_codes(country),
        number_types=NumberType.choices,
        capabilities=Capability.choices,
        chosen={**SEARCH_DEFAULTS, **(chosen or {})},
        search_error=search_error,
        holds=holds.list_holds(resource),
        running=resource.number_operations.filter(
            status__in=[OperationStatus.NOT_STARTED, OperationStatus.RUNNING]
        ).order_by("-created_at")[:10],
    )
    return render(request, "console/numbers.html", context)


def _area_codes(country: str) -> list[str]:
    try:
        return services.list_area_codes(country, number_type=NumberType.GEOGRAPHIC)
    except ApiError:
        return []


def _search(request: HttpRequest, resource: Resource) -> HttpResponse:
    """Hold the numbers the form asks for and show their summary; on a mistake, the form
    again with what was typed and what to change (nothing is held)."""
    posted = {name: request.POST.get(name, "") for name in SEARCH_DEFAULTS}
    country = request.POST.get("country", "")
    try:
        if posted["calling"] == Capability.NONE and posted["sms"] == Capability.NONE:
            # The ACS API takes such a search (its capabilities are each "none" or more); in
            # the console it is always a mistake.
            raise ApiError("calling or sms must be more than none.", target="capabilities")
        wanted = orders.check_search_request(
            country,
            {
                "phoneNumberType": posted["type"],
                "assignmentType": posted["assignment"],
                "capabilities": {"calling": posted["calling"], "sms": posted["sms"]},
                "areaCode": posted["area_code"].strip(),
                "quantity": _int(posted["quantity"]),
            },
        )
        operation = orders.do_search(resource, wanted)
    except ApiError as error:
        return _numbers_page(
            request, resource, country or "US", chosen=posted, search_error=user_words(error)
        )
    return redirect("console:number-search", slug=resource.slug, search_id=operation.search_id)


def _numbers_action(request: HttpRequest, resource: Resource) -> HttpResponse:
    action = request.POST.get("action")
    try:
        if action == "destination":
            number = request.POST.get("number", "")
            orders.set_inbound_destination(resource, number, request.POST.get("destination", ""))
            messages.success(request, f"Inbound traffic of {number} now goes where you set it.")
            return redirect("console:numbers", slug=resource.slug)
        if action == "release":
            operation = orders.check_release(resource, request.POST.get("number", ""))
            messages.success(request, f"Releasing {request.POST.get('number')}.")
            return redirect(
                "console:number-operation", slug=resource.slug, operation_id=operation.pk
            )
    except ApiError as error:
        messages.error(request, user_words(error))
    return redirect("console:numbers", slug=resource.slug)


def _int(value: str | None) -> Any:
    try:
        return int(value or "")
    except ValueError:
        return value


@resource_page()
def number_search(request: HttpRequest, resource: Resource, search_id: str) -> HttpResponse:
    """A search's summary (its numbers, capabilities, costs and time left), the confirmation
    step before buying (?step=confirm), and its Buy and Cancel (POST action=buy / cancel)."""
    try:
        hold = holds.access_hold(resource, search_id)
    except ApiError as error:
        return render(request, "console/not_found.html", {"message": user_words(error)}, status=404)
    here = redirect("console:number-search", slug=resource.slug, search_id=hold.search.pk)
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.MANAGE_NUMBERS):
            messages.error(request, "Your role cannot buy numbers or cancel holds.")
            return here
        try:
            if request.POST.get("action") == "buy":
                operation = orders.check_purchase(resource, hold.search.pk)
                return redirect(
                    "console:number-operation", slug=resource.slug, operation_id=operation.pk
                )
            if request.POST.get("action") == "cancel":
                released = holds.cancel_search(resource, hold.search.pk)
                messages.success(request, _cancelled(released))
                return redirect("console:numbers", slug=resource.slug)
        except ApiError as error:
            messages.error(request, user_words(error))
        return here
    can_buy = hold.active and accounts.can(request.user, resource, accounts.MANAGE_NUMBERS)
    context = _resource_context(
        request,
        resource,
        "numbers",
        hold=hold,
        search=hold.search,
        confirming=can_buy and request.GET.get("step") == "confirm",
    )
    return render(request, "console/number_search.html", context)


def _cancelled(released: list[str]) -> str:
    if not released:
        return "That hold had ended already."
    verb = "is" if len(released) == 1 else "are"
    return f"Hold cancelled: {', '.join(released)} {verb} on offer again."


@resource_page()
def number_operation(request: HttpRequest, resource: Resource, operation_id: str) -> HttpResponse:
    try:
        operation = orders.access_operation(resource, operation_id)
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("console:numbers", slug=resource.slug)
    finished = operation.status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED)
    context = _resource_context(
        request, resource, "numbers", operation=operation, finished=finished
    )
    return render(request, "console/number_operation.html", context)


@staff_page
def inventory_import(request: HttpRequest) -> HttpResponse:
    """Staff: add numbers from a carrier's CSV; a file with any bad row adds nothing."""
    errors: list[tuple[int, str]] = []
    upload = request.FILES.get("file") if request.method == "POST" else None
    if isinstance(upload, UploadedFile):
        try:
            lines = upload.read().decode("utf-8-sig").splitlines()
            with transaction.atomic():
                result = inventory.import_numbers(lines, source_name=upload.name or "")
        except UnicodeDecodeError:
            messages.error(request, "The file is not UTF-8 text.")
        except ApiError as error:
            messages.error(request, error.message)
            errors = list(getattr(error, "errors", []))
        else:
            messages.success(request, result.summary())
            return redirect("console:inventory-import")
    by_country = (
        services.available_numbers()
        .values("country_code")
        .annotate(count=Count("pk"))
        .order_by("country_code")
    )
    return render(
        request, "console/inventory_import.html", {"errors": errors, "by_country": by_country}
    )
