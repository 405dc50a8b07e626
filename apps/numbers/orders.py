"""The life of a tenant's number: search (a hold), purchase, capability updates, release.

Each is an ACS long-running operation (a NumberOperation row). A search holds its numbers at
once, inside one transaction that locks the rows it takes (SKIP LOCKED on PostgreSQL;
SQLite's IMMEDIATE transactions serialize writers), so no number is offered twice. Purchases,
releases and capability updates are jobs: the row is committed first, a Celery task is queued
on commit, each step is idempotent, and beat re-queues a job left unfinished past its lease.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.calls import rooms
from apps.core.errors import ApiError
from apps.core.parsers import is_single_line
from apps.numbers import carriers, services
from apps.numbers.exceptions import (
    NumberBusy,
    NumberNotFound,
    NumbersUnavailable,
    OperationNotFound,
    ReservationNotFound,
    SearchNotFound,
    SearchNotPurchasable,
    TooManyHeldNumbers,
)
from apps.numbers.models import (
    Capability,
    NumberOperation,
    NumberSearch,
    NumberStatus,
    OperationKind,
    OperationStatus,
    PhoneNumber,
    SearchState,
)

logger = logging.getLogger(__name__)

MAX_SEARCH_QUANTITY = 100
MAX_DESTINATION_LENGTH = 2048  # the column's size
# A number's inbound destination that hands its calls to the resource's application.
APPLICATION_DESTINATION = "application"
# Destinations whose calls from phones join a group call, or a room's call.
GROUP_PREFIX = "group:"
ROOM_PREFIX = "room:"

# The capabilities a number must support to serve a request for each value.
COVERS: dict[str, list[str]] = {
    Capability.NONE: list(Capability.values),
    Capability.INBOUND: [Capability.INBOUND, Capability.BOTH],
    Capability.OUTBOUND: [Capability.OUTBOUND, Capability.BOTH],
    Capability.BOTH: [Capability.BOTH],
}


def check_capability(value: Any, target: str) -> str:
    if value not in Capability.values:
        raise ApiError(f"{target} must be one of {', '.join(Capability.values)}.", target=target)
    return str(value)


def check_search_request(country_code: str, body: dict[str, Any]) -> dict[str, Any]:
    """Validate a raw ACS search body. Raises ApiError (400) naming the bad field."""
    capabilities = body.get("capabilities")
    if not isinstance(capabilities, dict):
        raise ApiError("capabilities ({calling, sms}) is required.", target="capabilities")
    quantity = body.get("quantity", 1)
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 1 <= quantity <= MAX_SEARCH_QUANTITY
    ):
        raise ApiError(
            f"quantity must be an integer from 1 to {MAX_SEARCH_QUANTITY}.", target="quantity"
        )
    assignment = body.get("assignmentType")
    if not assignment:
        raise ApiError("assignmentType is required.", target="assignmentType")
    area_code = body.get("areaCode") or ""
    if not isinstance(area_code, str) or (area_code and not is_digits(area_code, 8)):
        raise ApiError("areaCode must be 1 to 8 digits (0-9).", target="areaCode")
    return {
        "country_code": services.check_country(country_code),
        "number_type": services.check_number_type(body.get("phoneNumberType"), required=True),
        "assignment_type": services.check_assignment_type(assignment),
        "calling": check_capability(capabilities.get("calling"), "capabilities.calling"),
        "sms": check_capability(capabilities.get("sms"), "capabilities.sms"),
        "area_code": area_code,
        "quantity": quantity,
    }


MAX_BROWSE_RESULTS = 100


def browse(country_code: str, body: dict[str, Any]) -> list[PhoneNumber]:
    """Available numbers matching a raw ACS browse body, without holding them (a later
    search or reservation holds). Prefixes narrow by area code (e.g. "42" matches 425)."""
    capabilities = body.get("capabilities") or {}
    if not isinstance(capabilities, dict):
        raise ApiError("capabilities must be an object.", target="capabilities")
    prefixes = body.get("phoneNumberPrefixes") or []
    if not isinstance(prefixes, list) or not all(is_digits(p, 15) for p in prefixes):
        raise ApiError(
            "phoneNumberPrefixes must be a list of digit strings.", target="phoneNumberPrefixes"
        )
    wanted = {
        "country_code": services.check_country(country_code),
        "number_type": services.check_number_type(body.get("phoneNumberType"), required=True),
        "assignment_type": services.check_assignment_type(body.get("assignmentType"))
        or "application",
        "calling": check_capability(
            capabilities.get("calling", Capability.NONE), "capabilities.calling"
        ),
        "sms": check_capability(capabilities.get("sms", Capability.NONE), "capabilities.sms"),
        "area_code": "",
    }
    numbers = _candidates(wanted)
    if prefixes:
        match = Q()
        for prefix in prefixes:
            match |= Q(area_code__startswith=prefix)
        numbers = numbers.filter(match)
    return list(numbers[:MAX_BROWSE_RESULTS])


def _candidates(request: dict[str, Any]) -> QuerySet[PhoneNumber]:
    numbers = services.available_numbers(request["country_code"]).filter(
        services.assignable_to(request["assignment_type"]),
        number_type=request["number_type"],
        calling__in=COVERS[Capability(request["calling"])],
        sms__in=COVERS[Capability(request["sms"])],
    )
    if request["area_code"]:
        numbers = numbers.filter(area_code=request["area_code"])
    return numbers.order_by("number")


def check_hold_allowance(resource: Resource, more: int) -> None:
    """Raise TooManyHeldNumbers if holding `more` numbers would take the resource past
    SPOOL_MAX_HELD_NUMBERS in unexpired searches and reservations (so that one tenant's
    searches cannot take the whole stock)."""
    held = PhoneNumber.objects.filter(
        status=NumberStatus.HELD,
        held_by__resource=resource,
        held_by__expires_at__gt=timezone.now(),
    ).count()
    if held + more > settings.MAX_HELD_NUMBERS:
        raise TooManyHeldNumbers(
            f"This resource holds {held} numbers in searches and reservations, and may hold "
            f"{settings.MAX_HELD_NUMBERS} at once: purchase or cancel some, or let their holds "
            "expire, then search again."
        )


def do_search(resource: Resource, request: dict[str, Any]) -> NumberOperation:
    """Hold `quantity` matching numbers for the resource, all or none.

    Raises TooManyHeldNumbers past the resource's allowance, or NumbersUnavailable when fewer
    match; nothing is held then. The operation is complete when this returns (holding is one
    short transaction).
    """
    check_hold_allowance(resource, request["quantity"])
    with transaction.atomic():
        locked = _candidates(request).select_for_update(
            skip_locked=connection.features.has_select_for_update_skip_locked
        )
        picked = list(locked.values_list("pk", flat=True)[: request["quantity"]])
        if len(picked) < request["quantity"]:
            raise NumbersUnavailable(
                f"Only {len(picked)} numbers match this search; {request['quantity']} were asked for."
            )
        search = NumberSearch.objects.create(
            resource=resource,
            expires_at=timezone.now() + timedelta(minutes=settings.NUMBER_SEARCH_HOLD_MINUTES),
            **request,
        )
        held = PhoneNumber.objects.filter(pk__in=picked, status=NumberStatus.AVAILABLE).update(
            status=NumberStatus.HELD,
            held_by=search,
            owned_assignment_type=search.assignment_type,
            owned_calling=search.calling,
            owned_sms=search.sms,
        )
        if held != len(picked):  # cannot happen while the rows are locked; never half-hold
            raise NumbersUnavailable(
                "The numbers changed while they were being held; search again.", status=409
            )
        return NumberOperation.objects.create(
            resource=resource,
            kind=OperationKind.SEARCH,
            status=OperationStatus.SUCCEEDED,
            search=search,
            progress_done=held,
            progress_total=held,
        )


def access_search(resource: Resource, search_id: Any) -> NumberSearch:
    search = NumberSearch.objects.filter(resource=resource, pk=parse_uuid(search_id)).first()
    if search is None:
        raise SearchNotFound(f"Search {search_id!r} was not found.", target="searchId")
    return search


def access_operation(resource: Resource, operation_id: Any) -> NumberOperation:
    operation = NumberOperation.objects.filter(
        resource=resource, pk=parse_uuid(operation_id)
    ).first()
    if operation is None:
        raise OperationNotFound(f"Operation {operation_id!r} was not found.")
    return operation


def is_owned(resource: Resource, number: str) -> bool:
    """Whether `number` (E.164, or digits) is one of the resource's own numbers."""
    e164 = number if number.startswith("+") else f"+{number}"
    return PhoneNumber.objects.filter(
        owner=resource, status=NumberStatus.OWNED, number=e164
    ).exists()


def access_owned_number(resource: Resource, number: str) -> PhoneNumber:
    """The resource's own number, given as E.164 or as ACS ids do (digits only). Raises
    ApiError (400) for something that is not a phone number, NumberNotFound otherwise."""
    e164 = number if number.startswith("+") else f"+{number}"
    if not is_digits(e164[1:], 15) or len(e164) < 6:
        raise ApiError(
            f"{number!r} is not an E.164 phone number.",
            code="InvalidPhoneNumber",
            target="phoneNumber",
        )
    owned = PhoneNumber.objects.filter(
        owner=resource, status=NumberStatus.OWNED, number=e164
    ).first()
    if owned is None:
        raise NumberNotFound(f"Phone number {number!r} is not one of this resource's numbers.")
    return owned


def is_digits(value: Any, most: int) -> bool:
    """A string of 1 to `most` ASCII digits (str.isdigit also takes "²" and "٤")."""
    return isinstance(value, str) and 0 < len(value) <= most and value.isascii() and value.isdigit()


def parse_uuid(value: Any) -> Any:
    """A UUID, or None (which matches no row)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def search_numbers(search: NumberSearch) -> list[str]:
    return list(search.numbers.order_by("number").values_list("number", flat=True))


def check_purchase(
    resource: Resource, search_id: Any, *, reservation: bool = False
) -> NumberOperation:
    """Start purchasing a held search (or reservation). Raises SearchNotFound, or
    SearchNotPurchasable when it was purchased already, is being purchased, expired, or holds
    no number."""
    with transaction.atomic():
        search = (
            NumberSearch.objects.select_for_update()
            .filter(resource=resource, pk=parse_uuid(search_id), is_reservation=reservation)
            .first()
        )
        if search is None and reservation:
            raise ReservationNotFound(f"Reservation {search_id!r} was not found.")
        if search is None:
            raise SearchNotFound(f"Search {search_id!r} was not found.", target="searchId")
        if search.state == SearchState.HELD and search.expires_at <= timezone.now():
            expire(search)  # committed even though the purchase is refused below
    with transaction.atomic():
        search = NumberSearch.objects.select_for_update().get(pk=search.pk)
        if search.state != SearchState.HELD:
            reason = {
                SearchState.PURCHASING: "is already being purchased",
                SearchState.PURCHASED: "was already purchased",
                SearchState.EXPIRED: "expired; search again",
            }[SearchState(search.state)]
            raise SearchNotPurchasable(f"Search {search.id} {reason}.", target="searchId")
        if not search.numbers.exists():
            raise SearchNotPurchasable(
                f"{search.id} holds no number to purchase.", target="searchId"
            )
        search.state = SearchState.PURCHASING
        search.save(update_fields=["state"])
        operation = NumberOperation.objects.create(
            resource=resource,
            kind=OperationKind.RESERVATION_PURCHASE if reservation else OperationKind.PURCHASE,
            search=search,
            progress_total=search.numbers.count(),
        )
        _enqueue(operation)
    return operation


def check_release(resource: Resource, number: str) -> NumberOperation:
    with transaction.atomic():
        owned = access_owned_number(resource, number)
        _refuse_if_busy(owned)
        operation = NumberOperation.objects.create(
            resource=resource, kind=OperationKind.RELEASE, phone_number=owned, progress_total=1
        )
        _enqueue(operation)
    return operation


def check_update_capabilities(
    resource: Resource, number: str, body: dict[str, Any]
) -> NumberOperation:
    """Start changing an owned number's capabilities (each within what its carrier supports)."""
    with transaction.atomic():
        owned = access_owned_number(resource, number)
        calling = check_capability(body.get("calling", owned.owned_calling), "calling")
        sms = check_capability(body.get("sms", owned.owned_sms), "sms")
        for name, wanted, supported in (
            ("calling", calling, owned.calling),
            ("sms", sms, owned.sms),
        ):
            if supported not in COVERS[Capability(wanted)]:
                raise ApiError(
                    f"{owned.number} supports {name} {supported!r} at most.", target=name
                )
        _refuse_if_busy(owned)
        operation = NumberOperation.objects.create(
            resource=resource,
            kind=OperationKind.UPDATE_CAPABILITIES,
            phone_number=owned,
            requested={"calling": calling, "sms": sms},
            progress_total=1,
        )
        _enqueue(operation)
    return operation


def set_inbound_destination(resource: Resource, number: str, destination: str) -> PhoneNumber:
    """Point an owned number's inbound traffic at one of the resource's identities, at an
    http(s) URL, or (calls) at the resource's application ("application"), a group call
    ("group:<uuid>") or a room's call ("room:<room id>"); an empty value clears it. Raises
    NumberNotFound, IdentityNotFound, RoomNotFound or ApiError (400)."""
    destination = (destination or "").strip()
    if len(destination) > MAX_DESTINATION_LENGTH or not is_single_line(destination):
        raise ApiError(
            f"The destination is at most {MAX_DESTINATION_LENGTH} characters, without control "
            "characters.",
            target="inboundDestination",
        )
    if destination.startswith("8:"):
        accounts.access_identity(resource, destination)
    elif destination == APPLICATION_DESTINATION:
        pass  # calls raise IncomingCall for the resource's application (Call Automation)
    elif destination.startswith(GROUP_PREFIX):
        try:
            destination = GROUP_PREFIX + str(uuid.UUID(destination[len(GROUP_PREFIX) :]))
        except ValueError:
            raise ApiError(
                "A group call's destination is group:<group id, a UUID>.",
                target="inboundDestination",
            ) from None
    elif destination.startswith(ROOM_PREFIX):
        rooms.access_room(resource, destination[len(ROOM_PREFIX) :])
    elif destination:
        parts = urlsplit(destination)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(
                "The destination must be an identity of this resource (8:acs:...), an http(s) "
                "URL, application, group:<group id> or room:<room id>.",
                target="inboundDestination",
            )
    with transaction.atomic():
        owned = access_owned_number(resource, number)
        owned.inbound_destination = destination
        owned.save(update_fields=["inbound_destination"])
    return owned


def _refuse_if_busy(number: PhoneNumber) -> None:
    unfinished = [OperationStatus.NOT_STARTED, OperationStatus.RUNNING]
    if NumberOperation.objects.filter(phone_number=number, status__in=unfinished).exists():
        raise NumberBusy(f"{number.number} has an operation in progress; try again when it ends.")


def _enqueue(operation: NumberOperation) -> None:
    from apps.numbers.tasks import run_operation

    def queue() -> None:
        try:
            run_operation.delay(str(operation.pk))
        except Exception:
            # Committed: beat's sweep queues it after its lease, once the broker is back.
            logger.exception("could not queue number operation %s", operation.pk)

    transaction.on_commit(queue)


# --- The jobs -------------------------------------------------------------------------------
def run_operation(operation_id: Any) -> None:
    """Advance one operation to its end. Safe to run twice (redelivery, sweeper): every step
    checks the state it would change. Raises carriers.CarrierError when a transient carrier
    failure should be retried."""
    with transaction.atomic():
        operation = NumberOperation.objects.select_for_update().filter(pk=operation_id).first()
        if operation is None or operation.status in (
            OperationStatus.SUCCEEDED,
            OperationStatus.FAILED,
        ):
            return
        operation.status = OperationStatus.RUNNING
        operation.save(update_fields=["status", "last_action_at"])
    step = {
        OperationKind.PURCHASE: _purchase,
        OperationKind.RESERVATION_PURCHASE: _purchase,
        OperationKind.RELEASE: _release,
        OperationKind.UPDATE_CAPABILITIES: _update_capabilities,
    }[OperationKind(operation.kind)]
    try:
        step(operation)
    except carriers.CarrierError as error:
        if not error.permanent:
            raise
        _fail(operation, "CarrierRejected", str(error))


def _purchase(operation: NumberOperation) -> None:
    search = operation.search
    assert search is not None
    carrier = carriers.get()
    for number in search.numbers.filter(status=NumberStatus.HELD).order_by("number"):
        carrier.provision(number)
        with transaction.atomic():
            claimed = PhoneNumber.objects.filter(
                pk=number.pk, held_by=search, status=NumberStatus.HELD
            ).update(
                status=NumberStatus.OWNED, owner=operation.resource, purchased_at=timezone.now()
            )
            if claimed:
                NumberOperation.objects.filter(pk=operation.pk).update(
                    progress_done=search.numbers.filter(status=NumberStatus.OWNED).count(),
                    last_action_at=timezone.now(),
                )
    with transaction.atomic():
        NumberSearch.objects.filter(pk=search.pk).update(state=SearchState.PURCHASED)
        _succeed(operation, resource_location="")


def _release(operation: NumberOperation) -> None:
    number = operation.phone_number
    assert number is not None
    if number.status == NumberStatus.OWNED and number.owner_id == operation.resource_id:
        carriers.get().release(number)
        quarantine = timedelta(days=settings.NUMBER_QUARANTINE_DAYS)
        PhoneNumber.objects.filter(pk=number.pk, owner=operation.resource).update(
            status=NumberStatus.QUARANTINED if quarantine else NumberStatus.AVAILABLE,
            owner=None,
            held_by=None,
            owned_assignment_type="",
            owned_calling="",
            owned_sms="",
            inbound_destination="",
            purchased_at=None,
            quarantined_until=timezone.now() + quarantine if quarantine else None,
        )
    _succeed(operation)


def _update_capabilities(operation: NumberOperation) -> None:
    number = operation.phone_number
    assert number is not None
    carriers.get().update(number, operation.requested["calling"], operation.requested["sms"])
    PhoneNumber.objects.filter(pk=number.pk, owner=operation.resource).update(
        owned_calling=operation.requested["calling"], owned_sms=operation.requested["sms"]
    )
    _succeed(operation, resource_location=number.number)


def _succeed(operation: NumberOperation, resource_location: str = "") -> None:
    NumberOperation.objects.filter(pk=operation.pk).update(
        status=OperationStatus.SUCCEEDED,
        progress_done=operation.progress_total,
        resource_location=resource_location,
        last_action_at=timezone.now(),
    )


def _fail(operation: NumberOperation, code: str, message: str) -> None:
    NumberOperation.objects.filter(pk=operation.pk).update(
        status=OperationStatus.FAILED,
        error_code=code,
        error_message=message[:500],
        last_action_at=timezone.now(),
    )
    if (
        operation.kind in (OperationKind.PURCHASE, OperationKind.RESERVATION_PURCHASE)
        and operation.search_id
    ):
        # Numbers not yet owned go back to the hold, which then expires as usual.
        NumberSearch.objects.filter(pk=operation.search_id).update(state=SearchState.HELD)


# --- Upkeep (beat) --------------------------------------------------------------------------
def unhold(numbers: QuerySet[PhoneNumber]) -> int:
    return numbers.filter(status=NumberStatus.HELD).update(
        status=NumberStatus.AVAILABLE,
        held_by=None,
        owned_assignment_type="",
        owned_calling="",
        owned_sms="",
    )


def expire(search: NumberSearch) -> None:
    unhold(PhoneNumber.objects.filter(held_by=search))
    NumberSearch.objects.filter(pk=search.pk).update(state=SearchState.EXPIRED)
    search.state = SearchState.EXPIRED


def expire_holds() -> int:
    """Release the numbers of searches whose hold ran out. Returns how many searches."""
    expired = 0
    due = NumberSearch.objects.filter(state=SearchState.HELD, expires_at__lte=timezone.now())
    for search_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            search = (
                NumberSearch.objects.select_for_update()
                .filter(pk=search_id, state=SearchState.HELD)
                .first()
            )
            if search is not None and search.expires_at <= timezone.now():
                expire(search)
                expired += 1
    return expired


def end_quarantines() -> int:
    """Return released numbers whose quarantine is over to the inventory."""
    return PhoneNumber.objects.filter(
        status=NumberStatus.QUARANTINED, quarantined_until__lte=timezone.now()
    ).update(status=NumberStatus.AVAILABLE, quarantined_until=None)


def requeue_stalled_operations() -> int:
    """Re-queue jobs left unfinished past their lease (a lost message, a killed worker)."""
    stalled = NumberOperation.objects.filter(
        Q(status=OperationStatus.NOT_STARTED) | Q(status=OperationStatus.RUNNING),
        last_action_at__lte=timezone.now() - timedelta(seconds=settings.NUMBER_JOB_LEASE_SECONDS),
    ).exclude(kind=OperationKind.SEARCH)
    count = 0
    for operation in stalled:
        NumberOperation.objects.filter(pk=operation.pk).update(last_action_at=timezone.now())
        _enqueue(operation)
        count += 1
    return count
