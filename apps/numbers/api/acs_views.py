"""The ACS Phone Numbers API: browsing the available inventory (azure-communication-phonenumbers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.core.api import AcsApiView, json_object, page_of, rfc3339
from apps.core.http import endpoint_link
from apps.numbers import lookup, orders, reservations, services
from apps.numbers.models import (
    NumberOperation,
    NumberSearch,
    NumberStatus,
    OperationStatus,
    PhoneNumber,
)

# Every version the current SDKs send or let callers choose (azure-communication-phonenumbers
# 1.4 lists them in _api_versions.py; @azure/communication-phone-numbers 1.5 sends 2025-06-01).
PHONE_NUMBERS_API_VERSIONS = (
    "2021-03-07",
    "2022-01-11-preview2",
    "2022-12-01",
    "2023-05-01-preview",
    "2024-03-01-preview",
    "2025-02-11",
    "2025-04-01",
    "2025-06-01",
)


class NumbersView(AcsApiView):
    api_versions = PHONE_NUMBERS_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]


class Countries(NumbersView):
    def get(self, request: Request, slug: str) -> Response:
        countries = [
            {"countryCode": code, "localizedName": name} for code, name in services.list_countries()
        ]
        return Response(page_of(request, countries, "countries"))


class Localities(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        pairs = services.list_localities(
            country_code,
            administrative_division=request.query_params.get("administrativeDivision"),
            number_type=request.query_params.get("phoneNumberType"),
        )
        localities = [
            {
                "localizedName": locality,
                # Spool keeps one name per division: the abbreviation (e.g. WA).
                "administrativeDivision": {"localizedName": division, "abbreviatedName": division},
            }
            for locality, division in pairs
        ]
        return Response(page_of(request, localities, "phoneNumberLocalities"))


class AreaCodes(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        codes = services.list_area_codes(
            country_code,
            number_type=request.query_params.get("phoneNumberType"),
            assignment_type=request.query_params.get("assignmentType"),
            locality=request.query_params.get("locality"),
            administrative_division=request.query_params.get("administrativeDivision"),
        )
        return Response(page_of(request, [{"areaCode": code} for code in codes], "areaCodes"))


class Offerings(NumbersView):
    def get(self, request: Request, slug: str, country_code: str) -> Response:
        offerings = [
            {
                "phoneNumberType": offering.number_type,
                "assignmentType": offering.assignment_type,
                "availableCapabilities": {"calling": offering.calling, "sms": offering.sms},
                "cost": services.cost_body(offering.monthly_cost, offering.currency),
            }
            for offering in services.list_offerings(
                country_code,
                number_type=request.query_params.get("phoneNumberType"),
                assignment_type=request.query_params.get("assignmentType"),
            )
        ]
        return Response(page_of(request, offerings, "phoneNumberOfferings"))


# --- Searches, purchases, owned numbers: ACS long-running operations -----------------------
def _link(request: Request, path: str) -> str:
    """An absolute link on this resource's endpoint, with the caller's api-version. (The SDK
    polls Operation-Location as given; a relative one would be joined to the endpoint's path.)"""
    version = request.query_params.get("api-version", "")
    return endpoint_link(request._request, f"{path}?api-version={version}")


def _operation_body(request: Request, operation: NumberOperation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(operation.pk),
        "operationType": operation.kind,
        "status": operation.status,
        "createdDateTime": rfc3339(operation.created_at),
        "lastActionDateTime": rfc3339(operation.last_action_at),
    }
    if operation.resource_location:
        body["resourceLocation"] = _link(request, f"phoneNumbers/{operation.resource_location}")
    if operation.error_code:
        body["error"] = {"code": operation.error_code, "message": operation.error_message}
    return body


def _accepted(request: Request, operation: NumberOperation, **headers: str) -> Response:
    # No body: the SDK then polls Operation-Location and, for searches, GETs Location.
    response = Response(status=202)
    response["Operation-Location"] = _link(request, f"phoneNumbers/operations/{operation.pk}")
    response["operation-id"] = str(operation.pk)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _purchased_body(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.number.lstrip("+"),
        "phoneNumber": number.number,
        "countryCode": number.country_code,
        "phoneNumberType": number.number_type,
        "capabilities": {"calling": number.owned_calling, "sms": number.owned_sms},
        "assignmentType": number.owned_assignment_type,
        "purchaseDate": rfc3339(number.purchased_at) if number.purchased_at else None,
        "cost": services.cost_body(number.monthly_cost, number.currency),
    }


class Search(NumbersView):
    def post(self, request: Request, slug: str, country_code: str) -> Response:
        wanted = orders.check_search_request(country_code, json_object(request))
        operation = orders.do_search(request_resource(request), wanted)
        assert operation.search_id is not None
        search_id = str(operation.search_id)
        return _accepted(
            request,
            operation,
            Location=_link(request, f"availablePhoneNumbers/searchResults/{search_id}"),
            search_id=search_id,
        )


class Browse(NumbersView):
    def post(self, request: Request, slug: str, country_code: str) -> Response:
        numbers = orders.browse(country_code, json_object(request))
        return Response(
            {
                "phoneNumbers": [
                    {
                        "id": number.number.lstrip("+"),
                        "countryCode": number.country_code,
                        "phoneNumber": number.number,
                        "capabilities": {"calling": number.calling, "sms": number.sms},
                        "phoneNumberType": number.number_type,
                        "assignmentType": json_object(request).get("assignmentType")
                        or "application",
                        "cost": services.cost_body(number.monthly_cost, number.currency),
                        "status": "available",
                    }
                    for number in numbers
                ]
            }
        )


class SearchResult(NumbersView):
    def get(self, request: Request, slug: str, search_id: str) -> Response:
        search = orders.access_search(request_resource(request), search_id)
        numbers = list(search.numbers.order_by("number"))
        first = numbers[0] if numbers else None
        return Response(
            {
                "searchId": str(search.pk),
                "phoneNumbers": [number.number for number in numbers],
                "phoneNumberType": search.number_type,
                "assignmentType": search.assignment_type,
                "capabilities": {"calling": search.calling, "sms": search.sms},
                "cost": services.cost_body(first.monthly_cost, first.currency)
                if first
                else services.cost_body(Decimal(0), "USD"),
                "searchExpiresBy": rfc3339(search.expires_at),
                "isAgreementToNotResellRequired": False,
            }
        )


class Purchase(NumbersView):
    def post(self, request: Request, slug: str) -> Response:
        operation = orders.check_purchase(
            request_resource(request), json_object(request).get("searchId")
        )
        return _accepted(request, operation, purchase_id=str(operation.search_id))


class Operation(NumbersView):
    def get(self, request: Request, slug: str, operation_id: str) -> Response:
        operation = orders.access_operation(request_resource(request), operation_id)
        response = Response(_operation_body(request, operation))
        if operation.status in (OperationStatus.NOT_STARTED, OperationStatus.RUNNING):
            response["Retry-After"] = "1"
        if operation.resource_location:
            response["Location"] = _link(request, f"phoneNumbers/{operation.resource_location}")
        return response


class OwnedNumbers(NumbersView):
    def get(self, request: Request, slug: str) -> Response:
        owned = (
            request_resource(request)
            .phone_numbers.filter(status=NumberStatus.OWNED)
            .order_by("number")
        )
        body = page_of(request, owned, "phoneNumbers", size_param="top")
        body["phoneNumbers"] = [_purchased_body(number) for number in body["phoneNumbers"]]
        return Response(body)


class OwnedNumber(NumbersView):
    def get(self, request: Request, slug: str, number: str) -> Response:
        return Response(
            _purchased_body(orders.access_owned_number(request_resource(request), number))
        )

    def delete(self, request: Request, slug: str, number: str) -> Response:
        operation = orders.check_release(request_resource(request), number)
        return _accepted(request, operation, release_id=str(operation.pk))


class OwnedNumberCapabilities(NumbersView):
    def patch(self, request: Request, slug: str, number: str) -> Response:
        operation = orders.check_update_capabilities(
            request_resource(request), number, json_object(request)
        )
        assert operation.phone_number is not None
        return _accepted(
            request,
            operation,
            Location=_link(request, f"phoneNumbers/{operation.phone_number.number}"),
            capabilities_id=str(operation.pk),
        )


# --- Reservations ---------------------------------------------------------------------------
RESERVATION_STATUS = {
    "held": "active",
    "purchasing": "submitted",
    "purchased": "completed",
    "expired": "expired",
}
NUMBER_STATUS_IN_RESERVATION = {"held": "reserved", "owned": "purchased"}


def _available_number_body(number: PhoneNumber) -> dict[str, Any]:
    return {
        "id": number.number.lstrip("+"),
        "countryCode": number.country_code,
        "phoneNumber": number.number,
        "capabilities": {"calling": number.owned_calling, "sms": number.owned_sms},
        "phoneNumberType": number.number_type,
        "assignmentType": number.owned_assignment_type,
        "cost": services.cost_body(number.monthly_cost, number.currency),
        "status": NUMBER_STATUS_IN_RESERVATION.get(number.status, "expired"),
    }


def _reservation_body(
    reservation: NumberSearch,
    *,
    numbers: bool = True,
    failures: dict[str, str] | None = None,
    requested: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(reservation.pk),
        "expiresAt": rfc3339(reservation.expires_at),
        "status": RESERVATION_STATUS[reservation.state],
    }
    if numbers:
        body["phoneNumbers"] = {
            number.number.lstrip("+"): _available_number_body(number)
            for number in reservation.numbers.all()
        }
        for key, reason in (failures or {}).items():
            wanted = (requested or {}).get(key) or {}
            body["phoneNumbers"][key] = {
                **wanted,
                "id": key,
                "phoneNumber": f"+{key}",
                "status": "error",
                "error": {"code": "PhoneNumberNotHeld", "message": reason},
            }
    return body


class Reservations(NumbersView):
    def get(self, request: Request, slug: str) -> Response:
        held = reservations.list_reservations(request_resource(request))
        body = page_of(request, held, "reservations")
        body["reservations"] = [_reservation_body(r, numbers=False) for r in body["reservations"]]
        return Response(body)


class Reservation(NumbersView):
    def get(self, request: Request, slug: str, reservation_id: str) -> Response:
        return Response(
            _reservation_body(
                reservations.access_reservation(request_resource(request), reservation_id)
            )
        )

    def patch(self, request: Request, slug: str, reservation_id: str) -> Response:
        body = json_object(request)
        reservation, created, failures = reservations.update_reservation(
            request_resource(request), reservation_id, body
        )
        status = 207 if failures else 201 if created else 200
        answer = _reservation_body(
            reservation, failures=failures, requested=body.get("phoneNumbers")
        )
        return Response(answer, status=status)

    def delete(self, request: Request, slug: str, reservation_id: str) -> Response:
        reservations.delete_reservation(request_resource(request), reservation_id)
        return Response(status=204)


class PurchaseReservation(NumbersView):
    def post(self, request: Request, slug: str, reservation_id: str) -> Response:
        operation = orders.check_purchase(
            request_resource(request), reservation_id, reservation=True
        )
        return _accepted(request, operation, reservation_purchase_id=str(operation.search_id))


class OperatorInformation(NumbersView):
    def post(self, request: Request, slug: str) -> Response:
        return Response({"values": lookup.search_operator_information(json_object(request))})
