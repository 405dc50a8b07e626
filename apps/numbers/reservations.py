"""Reservations (api-version 2025-06-01): holds built number by number, each number with
its own requested assignment and capabilities, purchased like a search."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core.errors import ApiError
from apps.numbers import services
from apps.numbers.exceptions import ReservationNotFound, SearchNotPurchasable
from apps.numbers.models import Capability, NumberSearch, NumberStatus, PhoneNumber, SearchState
from apps.numbers.orders import (
    COVERS,
    check_capability,
    check_hold_allowance,
    expire,
    is_digits,
    parse_uuid,
    unhold,
)

RESERVATION_MINUTES = 15


def _requested_number(key: Any, wanted: Any) -> dict[str, str]:
    """Validate one entry of a reservation's phoneNumbers map (the whole request fails on any)."""
    if not is_digits(key, 15):
        raise ApiError(f"{key!r} is not a phone number id (digits only).", target="phoneNumbers")
    if not isinstance(wanted, dict):
        raise ApiError(
            f"phoneNumbers[{key}] must be an object or null.", target=f"phoneNumbers[{key}]"
        )
    capabilities = wanted.get("capabilities")
    if not isinstance(capabilities, dict):
        raise ApiError(
            "capabilities ({calling, sms}) is required.", target=f"phoneNumbers[{key}].capabilities"
        )
    return {
        "number_type": services.check_number_type(wanted.get("phoneNumberType"), required=True)
        or "",
        "assignment_type": services.check_assignment_type(wanted.get("assignmentType"))
        or "application",
        "calling": check_capability(
            capabilities.get("calling"), f"phoneNumbers[{key}].capabilities.calling"
        ),
        "sms": check_capability(capabilities.get("sms"), f"phoneNumbers[{key}].capabilities.sms"),
    }


def _why_not_holdable(number: PhoneNumber | None, wanted: dict[str, str]) -> str | None:
    if number is None or number.status != NumberStatus.AVAILABLE:
        return "The number is not available."
    if number.number_type != wanted["number_type"]:
        return f"The number is {number.number_type}, not {wanted['number_type']}."
    if not getattr(number, f"assignable_to_{wanted['assignment_type']}"):
        return f"The number cannot be assigned to a {wanted['assignment_type']}."
    for name in ("calling", "sms"):
        if getattr(number, name) not in COVERS[Capability(wanted[name])]:
            return f"The number supports {name} {getattr(number, name)!r} at most."
    return None


def update_reservation(
    resource: Resource, reservation_id: Any, body: dict[str, Any]
) -> tuple[NumberSearch, bool, dict[str, str]]:
    """Create or update a reservation: hold each number given, release each given as null,
    and extend the hold to RESERVATION_MINUTES. Returns (reservation, created, failures by
    number id); a number that cannot be held is reported and the rest still applies (ACS
    answers 207). Raises ApiError (400) for a malformed request, changing nothing."""
    rid = parse_uuid(reservation_id)
    if rid is None:
        raise ApiError("The reservation id must be a UUID.", target="reservationId")
    entries = body.get("phoneNumbers") or {}
    if not isinstance(entries, dict):
        raise ApiError("phoneNumbers must be an object.", target="phoneNumbers")
    requests = {
        key: None if wanted is None else _requested_number(key, wanted)
        for key, wanted in entries.items()
    }
    failures: dict[str, str] = {}
    additions = [f"+{key}" for key, wanted in requests.items() if wanted is not None]
    already = PhoneNumber.objects.filter(number__in=additions, held_by_id=rid).count()
    check_hold_allowance(resource, len(additions) - already)
    with transaction.atomic():
        reservation = NumberSearch.objects.select_for_update().filter(pk=rid).first()
        if reservation is not None and (
            reservation.resource_id != resource.id or not reservation.is_reservation
        ):
            raise ReservationNotFound(
                "That reservation id belongs to something else; choose another."
            )
        created = reservation is None
        if reservation is None:
            reservation = NumberSearch.objects.create(
                id=rid, resource=resource, is_reservation=True, expires_at=timezone.now()
            )
        elif reservation.state != SearchState.HELD or reservation.expires_at <= timezone.now():
            raise SearchNotPurchasable(
                f"Reservation {rid} is no longer active.", target="reservationId"
            )
        for key, wanted in requests.items():
            numbers = PhoneNumber.objects.filter(number=f"+{key}")
            if wanted is None:
                unhold(numbers.filter(held_by=reservation))
                continue
            number = numbers.select_for_update().first()
            if (
                number is not None
                and number.held_by_id == reservation.pk
                and number.status == NumberStatus.HELD
            ):
                reason = None
            else:
                reason = _why_not_holdable(number, wanted)
            if reason:
                failures[key] = reason
                continue
            numbers.update(
                status=NumberStatus.HELD,
                held_by=reservation,
                owned_assignment_type=wanted["assignment_type"],
                owned_calling=wanted["calling"],
                owned_sms=wanted["sms"],
            )
        reservation.expires_at = timezone.now() + timedelta(minutes=RESERVATION_MINUTES)
        reservation.quantity = reservation.numbers.count()
        reservation.save(update_fields=["expires_at", "quantity"])
    return reservation, created, failures


def access_reservation(resource: Resource, reservation_id: Any) -> NumberSearch:
    reservation = NumberSearch.objects.filter(
        resource=resource, pk=parse_uuid(reservation_id), is_reservation=True
    ).first()
    if reservation is None:
        raise ReservationNotFound(f"Reservation {reservation_id!r} was not found.")
    if reservation.state == SearchState.HELD and reservation.expires_at <= timezone.now():
        with transaction.atomic():
            expire(reservation)
    return reservation


def delete_reservation(resource: Resource, reservation_id: Any) -> None:
    """Release an active reservation's numbers and forget it. Raises ReservationNotFound or
    SearchNotPurchasable (409) when it is being or was purchased."""
    with transaction.atomic():
        reservation = access_reservation(resource, reservation_id)
        if reservation.state in (SearchState.PURCHASING, SearchState.PURCHASED):
            raise SearchNotPurchasable(f"Reservation {reservation.pk} is {reservation.state}.")
        unhold(PhoneNumber.objects.filter(held_by=reservation))
        reservation.delete()


def list_reservations(resource: Resource) -> QuerySet[NumberSearch]:
    return NumberSearch.objects.filter(resource=resource, is_reservation=True).order_by(
        "-created_at"
    )
