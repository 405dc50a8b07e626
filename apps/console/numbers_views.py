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
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.console.views import _page, _resource_context, resource_page, staff_page
from apps.core.errors import ApiError
from apps.numbers import inventory, orders, services
from apps.numbers.models import Capability, NumberStatus, NumberType, OperationStatus


@resource_page()
def numbers(request: HttpRequest, resource: Resource) -> HttpResponse:
    if request.method == "POST":
        if not accounts.can(request.user, resource, accounts.MANAGE_NUMBERS):
            messages.error(request, "Your role cannot buy or release numbers.")
            return redirect("console:numbers", slug=resource.slug)
        return _numbers_action(request, resource)
    country = (request.GET.get("country") or "US").upper()
    owned = resource.phone_numbers.filter(status=NumberStatus.OWNED).order_by("number")
    context = _resource_context(
        request,
        resource,
        "numbers",
        page=_page(request, owned),
        countries=services.list_countries(),
        country=country,
        area_codes=_area_codes(country),
        number_types=NumberType.choices,
        capabilities=Capability.choices,
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


def _numbers_action(request: HttpRequest, resource: Resource) -> HttpResponse:
    action = request.POST.get("action")
    try:
        if action == "search":
            wanted = orders.check_search_request(
                request.POST.get("country", ""),
                {
                    "phoneNumberType": request.POST.get("type"),
                    "assignmentType": request.POST.get("assignment"),
                    "capabilities": {
                        "calling": request.POST.get("calling"),
                        "sms": request.POST.get("sms"),
                    },
                    "areaCode": request.POST.get("area_code", ""),
                    "quantity": _int(request.POST.get("quantity")),
                },
            )
            operation = orders.do_search(resource, wanted)
            return redirect(
                "console:number-search", slug=resource.slug, search_id=operation.search_id
            )
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
        messages.error(request, error.message)
    return redirect("console:numbers", slug=resource.slug)


def _int(value: str | None) -> Any:
    try:
        return int(value or "")
    except ValueError:
        return value


@resource_page()
def number_search(request: HttpRequest, resource: Resource, search_id: str) -> HttpResponse:
    try:
        search = orders.access_search(resource, search_id)
        if request.method == "POST":
            if not accounts.can(request.user, resource, accounts.MANAGE_NUMBERS):
                raise ApiError("Your role cannot buy numbers.", status=403, code="Forbidden")
            operation = orders.check_purchase(resource, search.pk)
            return redirect(
                "console:number-operation", slug=resource.slug, operation_id=operation.pk
            )
    except ApiError as error:
        messages.error(request, error.message)
        return redirect("console:numbers", slug=resource.slug)
    held = list(search.numbers.order_by("number"))
    context = _resource_context(
        request,
        resource,
        "numbers",
        search=search,
        held=held,
        monthly_total=sum(number.monthly_cost for number in held),
        currency=held[0].currency if held else "",
        seconds_left=max(0, int((search.expires_at - timezone.now()).total_seconds())),
    )
    return render(request, "console/number_search.html", context)


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
