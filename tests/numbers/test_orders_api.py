"""Searching, purchasing, updating and releasing numbers through the ACS API."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from apps.numbers import orders
from apps.numbers.models import (
    NumberOperation,
    NumberSearch,
    NumberStatus,
    PhoneNumber,
    SearchState,
)
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db

API = "2025-06-01"
SEARCH = {
    "phoneNumberType": "geographic",
    "assignmentType": "application",
    "capabilities": {"calling": "inbound+outbound", "sms": "inbound+outbound"},
    "areaCode": "425",
    "quantity": 2,
}


@pytest.fixture
def inventory(make_numbers) -> list[PhoneNumber]:
    return make_numbers(5)


def _api_path(acs: AcsClient, link: str) -> str:
    """The API path of a link, which must be on the origin the client called."""
    origin = f"http://127.0.0.1:{acs.resource.port}/"
    assert link.startswith(origin), link
    return "/" + link.removeprefix(origin).split("?")[0]


def _search(acs: AcsClient, body: dict | None = None) -> dict:
    response = acs.call(
        "POST", "/availablePhoneNumbers/countries/US/:search", body or SEARCH, api_version=API
    )
    assert response.status_code == 202, response.content
    operation = acs.call(
        "GET",
        _api_path(acs, response["Operation-Location"]),
        api_version=API,
    ).json()
    assert operation["status"] == "succeeded"
    result = acs.call(
        "GET",
        _api_path(acs, response["Location"]),
        api_version=API,
    )
    return result.json()


def _purchase(acs: AcsClient, search_id: str, capture) -> dict:
    with capture(execute=True):
        response = acs.call(
            "POST", "/availablePhoneNumbers/:purchase", {"searchId": search_id}, api_version=API
        )
    assert response.status_code == 202, response.content
    path = _api_path(acs, response["Operation-Location"])
    return acs.call("GET", path, api_version=API).json()


def test_a_search_holds_its_numbers_and_a_second_search_is_not_offered_them(acs, inventory) -> None:
    # when
    first = _search(acs)
    second = _search(acs)

    # then the two searches hold different numbers, for 16 minutes
    assert len(first["phoneNumbers"]) == 2 and len(second["phoneNumbers"]) == 2
    assert not set(first["phoneNumbers"]) & set(second["phoneNumbers"])
    assert first["cost"] == {"amount": 1.0, "currencyCode": "USD", "billingFrequency": "monthly"}
    expires = NumberSearch.objects.get(pk=first["searchId"]).expires_at
    assert timedelta(minutes=15) < expires - timezone.now() <= timedelta(minutes=16)
    assert PhoneNumber.objects.filter(status=NumberStatus.HELD).count() == 4


def test_a_search_that_cannot_be_filled_holds_nothing(acs, inventory) -> None:
    response = acs.call(
        "POST",
        "/availablePhoneNumbers/countries/US/:search",
        {**SEARCH, "quantity": 6},
        api_version=API,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "NoNumbersAvailable"
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()
    assert not NumberSearch.objects.exists()


@pytest.mark.parametrize(
    "change, target",
    [
        ({"phoneNumberType": "landline"}, "phoneNumberType"),
        ({"assignmentType": None}, "assignmentType"),
        ({"capabilities": None}, "capabilities"),
        ({"capabilities": {"calling": "both", "sms": "none"}}, "capabilities.calling"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": 101}, "quantity"),
        ({"areaCode": "4x5"}, "areaCode"),
    ],
)
def test_bad_searches_are_refused_and_hold_nothing(acs, inventory, change, target) -> None:
    response = acs.call(
        "POST", "/availablePhoneNumbers/countries/US/:search", {**SEARCH, **change}, api_version=API
    )
    assert response.status_code == 400
    assert response.json()["error"]["target"] == target
    assert not NumberSearch.objects.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"areaCode": "4x5"}, "areaCode must be 1 to 8 digits (0-9)."),
        ({"quantity": 6}, "Only 5 numbers match this search; 6 were asked for."),
    ],
)
def test_the_api_keeps_its_own_error_messages(acs, inventory, change, message) -> None:
    # (the console says these in its users' words: tests/console/test_numbers_pages.py)
    response = acs.call(
        "POST", "/availablePhoneNumbers/countries/US/:search", {**SEARCH, **change}, api_version=API
    )
    assert response.status_code == 400 and response.json()["error"]["message"] == message


def test_the_api_takes_a_search_for_numbers_with_neither_capability(acs, inventory) -> None:
    # ACS's contract allows it (calling and sms are each none or more); only the console's
    # form asks for one
    found = _search(acs, {**SEARCH, "capabilities": {"calling": "none", "sms": "none"}})
    assert found["capabilities"] == {"calling": "none", "sms": "none"}
    assert len(found["phoneNumbers"]) == 2


def test_purchase_makes_the_numbers_the_resources_own(
    acs, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a search
    found = _search(acs)

    # when it is purchased
    operation = _purchase(acs, found["searchId"], django_capture_on_commit_callbacks)

    # then the operation succeeded and the numbers are listed as owned
    assert operation["status"] == "succeeded" and operation["operationType"] == "purchase"
    owned = acs.call("GET", "/phoneNumbers", query=f"api-version={API}&skip=0&top=100").json()[
        "phoneNumbers"
    ]
    assert sorted(n["phoneNumber"] for n in owned) == found["phoneNumbers"]
    assert owned[0]["capabilities"] == {"calling": "inbound+outbound", "sms": "inbound+outbound"}
    assert (
        owned[0]["assignmentType"] == "application"
        and owned[0]["id"] == owned[0]["phoneNumber"][1:]
    )


def test_a_search_is_purchased_once_and_an_expired_one_not_at_all(
    acs, inventory, django_capture_on_commit_callbacks
) -> None:
    bought = _search(acs)
    _purchase(acs, bought["searchId"], django_capture_on_commit_callbacks)
    again = acs.call(
        "POST",
        "/availablePhoneNumbers/:purchase",
        {"searchId": bought["searchId"]},
        api_version=API,
    )
    assert again.status_code == 409 and "already purchased" in again.json()["error"]["message"]

    stale = _search(acs)
    NumberSearch.objects.filter(pk=stale["searchId"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = acs.call(
        "POST", "/availablePhoneNumbers/:purchase", {"searchId": stale["searchId"]}, api_version=API
    )
    assert expired.status_code == 409 and "expired" in expired.json()["error"]["message"]
    assert PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE).count() == 3  # released again


def test_beat_releases_expired_holds(acs, inventory) -> None:
    found = _search(acs)
    NumberSearch.objects.filter(pk=found["searchId"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert orders.expire_holds() == 1
    assert NumberSearch.objects.get(pk=found["searchId"]).state == SearchState.EXPIRED
    assert PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE).count() == 5


def test_update_capabilities_and_release(
    acs, inventory, settings, django_capture_on_commit_callbacks
) -> None:
    # given an owned number
    settings.NUMBER_QUARANTINE_DAYS = 7
    found = _search(acs, {**SEARCH, "quantity": 1})
    _purchase(acs, found["searchId"], django_capture_on_commit_callbacks)
    number = quote(found["phoneNumbers"][0], safe="")

    # when its capabilities are narrowed
    with django_capture_on_commit_callbacks(execute=True):
        patched = acs.call(
            "PATCH",
            f"/phoneNumbers/{number}/capabilities",
            {"calling": "inbound", "sms": "none"},
            api_version=API,
        )
    assert patched.status_code == 202
    assert acs.call("GET", f"/phoneNumbers/{number}", api_version=API).json()["capabilities"] == {
        "calling": "inbound",
        "sms": "none",
    }

    # when it is released
    with django_capture_on_commit_callbacks(execute=True):
        released = acs.call("DELETE", f"/phoneNumbers/{number}", api_version=API)

    # then it is gone from the resource and rests in quarantine before it is sold again
    assert released.status_code == 202
    assert acs.call("GET", f"/phoneNumbers/{number}", api_version=API).status_code == 404
    quarantined = PhoneNumber.objects.get(number=found["phoneNumbers"][0])
    assert quarantined.status == NumberStatus.QUARANTINED and quarantined.owner is None
    PhoneNumber.objects.filter(pk=quarantined.pk).update(quarantined_until=timezone.now())
    assert orders.end_quarantines() == 1


def test_capabilities_beyond_what_the_carrier_supports_are_refused(
    acs, inventory, django_capture_on_commit_callbacks
) -> None:
    PhoneNumber.objects.update(sms="inbound")
    found = _search(
        acs,
        {**SEARCH, "quantity": 1, "capabilities": {"calling": "inbound+outbound", "sms": "none"}},
    )
    _purchase(acs, found["searchId"], django_capture_on_commit_callbacks)
    number = quote(found["phoneNumbers"][0], safe="")
    response = acs.call(
        "PATCH", f"/phoneNumbers/{number}/capabilities", {"sms": "outbound"}, api_version=API
    )
    assert response.status_code == 400 and response.json()["error"]["target"] == "sms"
    assert not NumberOperation.objects.filter(kind="updatePhoneNumberCapabilities").exists()


def test_resources_never_see_each_others_numbers_searches_or_operations(
    acs, other_acs, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a number bought by the other resource
    found = _search(other_acs, {**SEARCH, "quantity": 1})
    operation = _purchase(other_acs, found["searchId"], django_capture_on_commit_callbacks)
    number = quote(found["phoneNumbers"][0], safe="")

    # then this resource cannot see or touch any of it
    assert acs.call("GET", f"/phoneNumbers/{number}", api_version=API).status_code == 404
    assert acs.call("DELETE", f"/phoneNumbers/{number}", api_version=API).status_code == 404
    assert (
        acs.call(
            "GET", f"/availablePhoneNumbers/searchResults/{found['searchId']}", api_version=API
        ).status_code
        == 404
    )
    assert (
        acs.call("GET", f"/phoneNumbers/operations/{operation['id']}", api_version=API).status_code
        == 404
    )
    stolen = acs.call(
        "POST", "/availablePhoneNumbers/:purchase", {"searchId": found["searchId"]}, api_version=API
    )
    assert stolen.status_code == 404
    assert acs.call("GET", "/phoneNumbers", api_version=API).json()["phoneNumbers"] == []


def test_unknown_ids_are_404(acs, inventory) -> None:
    for path in (
        "/phoneNumbers/%2B19995550100",
        "/availablePhoneNumbers/searchResults/nope",
        "/phoneNumbers/operations/00000000-0000-0000-0000-000000000000",
    ):
        response = acs.call("GET", path, api_version=API)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"]


def test_a_stalled_purchase_is_requeued_and_finishes_once(
    acs, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a purchase whose job message was lost
    found = _search(acs)
    with django_capture_on_commit_callbacks(execute=False):
        acs.call(
            "POST",
            "/availablePhoneNumbers/:purchase",
            {"searchId": found["searchId"]},
            api_version=API,
        )
    operation = NumberOperation.objects.get(kind="purchase")
    NumberOperation.objects.filter(pk=operation.pk).update(
        last_action_at=timezone.now() - timedelta(minutes=5)
    )

    # when beat's sweeper runs (twice, as a redelivery would)
    with django_capture_on_commit_callbacks(execute=True):
        assert orders.requeue_stalled_operations() == 1
    orders.run_operation(operation.pk)

    # then the numbers are owned once, and the operation succeeded
    operation.refresh_from_db()
    assert operation.status == "succeeded" and operation.progress_done == 2
    assert PhoneNumber.objects.filter(owner=acs.resource, status=NumberStatus.OWNED).count() == 2


def test_browse_lists_available_numbers_without_holding_them(acs, inventory) -> None:
    body = {
        "phoneNumberType": "geographic",
        "capabilities": {"calling": "inbound+outbound"},
        "assignmentType": "person",
        "phoneNumberPrefixes": ["42"],
    }
    response = acs.call(
        "POST", "/availablePhoneNumbers/countries/US/:browse", body, api_version=API
    )
    assert response.status_code == 200
    numbers = response.json()["phoneNumbers"]
    assert (
        len(numbers) == 5
        and numbers[0]["status"] == "available"
        and numbers[0]["assignmentType"] == "person"
    )
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()
    none = acs.call(
        "POST",
        "/availablePhoneNumbers/countries/US/:browse",
        {**body, "phoneNumberPrefixes": ["999"]},
        api_version=API,
    )
    assert none.json()["phoneNumbers"] == []
    bad = acs.call(
        "POST",
        "/availablePhoneNumbers/countries/US/:browse",
        {**body, "phoneNumberPrefixes": "42"},
        api_version=API,
    )
    assert bad.status_code == 400


def _reserve(client: AcsClient, reservation_id: str, numbers: dict) -> object:
    return client.call(
        "PATCH",
        f"/availablePhoneNumbers/reservations/{reservation_id}",
        {"phoneNumbers": numbers},
        api_version=API,
        headers={"Content-Type": "application/merge-patch+json"},
    )


WANTED = {
    "countryCode": "US",
    "phoneNumberType": "geographic",
    "assignmentType": "person",
    "capabilities": {"calling": "inbound+outbound", "sms": "inbound+outbound"},
}


def test_a_reservation_holds_what_it_can_and_reports_the_rest(acs, other_acs, inventory) -> None:
    # given a number already held by another resource's search
    taken = _search(other_acs, {**SEARCH, "quantity": 1})["phoneNumbers"][0]
    free = next(n.number for n in inventory if n.number != taken)

    # when this resource reserves both
    response = _reserve(
        acs, "6f0f3c2e-1a2b-4c3d-8e9f-000000000001", {free[1:]: WANTED, taken[1:]: WANTED}
    )

    # then the free one is reserved and the taken one reported, in a 207
    assert response.status_code == 207
    numbers = response.json()["phoneNumbers"]
    assert numbers[free[1:]]["status"] == "reserved"
    assert numbers[taken[1:]]["status"] == "error" and numbers[taken[1:]]["error"]["message"]
    assert PhoneNumber.objects.get(number=taken).held_by.resource == other_acs.resource


def test_reservations_are_the_owners_alone_and_bad_requests_change_nothing(
    acs, other_acs, inventory
) -> None:
    rid = "6f0f3c2e-1a2b-4c3d-8e9f-000000000002"
    assert _reserve(acs, rid, {inventory[0].number[1:]: WANTED}).status_code == 201
    assert _reserve(acs, rid, {}).status_code == 200
    # another resource can neither read, change, delete nor buy it
    assert (
        other_acs.call(
            "GET", f"/availablePhoneNumbers/reservations/{rid}", api_version=API
        ).status_code
        == 404
    )
    assert _reserve(other_acs, rid, {inventory[1].number[1:]: WANTED}).status_code == 404
    assert (
        other_acs.call(
            "DELETE", f"/availablePhoneNumbers/reservations/{rid}", api_version=API
        ).status_code
        == 404
    )
    bought = other_acs.call(
        "POST", f"/availablePhoneNumbers/reservations/{rid}/:purchase", {}, api_version=API
    )
    assert bought.status_code == 404
    # a malformed entry fails the whole request
    bad = _reserve(acs, rid, {inventory[1].number[1:]: WANTED, "12x": WANTED})
    assert bad.status_code == 400
    assert PhoneNumber.objects.filter(status=NumberStatus.HELD).count() == 1
    # deleting releases its numbers
    assert (
        acs.call(
            "DELETE", f"/availablePhoneNumbers/reservations/{rid}", api_version=API
        ).status_code
        == 204
    )
    assert not PhoneNumber.objects.filter(status=NumberStatus.HELD).exists()


def test_unknown_countries_and_malformed_numbers_are_400(acs, inventory) -> None:
    for country in ("ZZ", "XX"):
        response = acs.call(
            "POST", f"/availablePhoneNumbers/countries/{country}/:search", SEARCH, api_version=API
        )
        assert response.status_code == 400 and response.json()["error"]["target"] == "countryCode"
    for number in ("abc", "%2B1-425", "123"):
        response = acs.call("GET", f"/phoneNumbers/{number}", api_version=API)
        assert (
            response.status_code == 400 and response.json()["error"]["code"] == "InvalidPhoneNumber"
        )
    assert not NumberSearch.objects.exists()
