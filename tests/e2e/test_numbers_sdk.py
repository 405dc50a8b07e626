"""The official azure-communication-phonenumbers SDK browsing a live `manage.py serve`."""

from __future__ import annotations

import uuid

import pytest
from azure.communication.phonenumbers import (
    PhoneNumberAssignmentType,
    PhoneNumberCapabilities,
    PhoneNumberCapabilityType,
    PhoneNumbersClient,
    PhoneNumberType,
)
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(live_spool: LiveSpool) -> PhoneNumbersClient:
    live_spool.manage("seed_numbers", "--country", "US", "--count", "30")
    live_spool.manage("seed_numbers", "--country", "GB", "--count", "10")
    return PhoneNumbersClient.from_connection_string(
        live_spool.create_resource(), connection_verify=live_spool.cert
    )


def test_browse_countries_area_codes_and_offerings(client: PhoneNumbersClient) -> None:
    # when
    countries = {c.country_code for c in client.list_available_countries()}
    area_codes = [
        a.area_code for a in client.list_available_area_codes("US", PhoneNumberType.GEOGRAPHIC)
    ]
    toll_free = [
        a.area_code for a in client.list_available_area_codes("US", PhoneNumberType.TOLL_FREE)
    ]
    localities = [loc.localized_name for loc in client.list_available_localities("US")]
    offerings = list(client.list_available_offerings("US"))

    # then
    assert {"US", "GB"} <= countries
    assert area_codes and all(len(code) == 3 for code in area_codes)
    assert toll_free and set(toll_free) <= {"800", "833", "844", "855", "866", "877", "888"}
    assert localities
    assert {o.phone_number_type for o in offerings} == {"geographic", "tollFree"}
    assert all(o.cost.billing_frequency == "monthly" for o in offerings)


def test_a_bad_country_is_a_clear_error(client: PhoneNumbersClient) -> None:
    with pytest.raises(HttpResponseError) as error:
        list(client.list_available_localities("USA"))
    assert error.value.status_code == 400


def test_search_purchase_update_release_with_pollers(
    live_spool: LiveSpool, client: PhoneNumbersClient
) -> None:
    # given a search for two numbers, polled to completion
    capabilities = PhoneNumberCapabilities(
        calling=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
        sms=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
    )
    search = client.begin_search_available_phone_numbers(
        "US",
        PhoneNumberType.GEOGRAPHIC,
        PhoneNumberAssignmentType.APPLICATION,
        capabilities,
        quantity=2,
        polling_interval=0.2,
    ).result()
    assert len(search.phone_numbers) == 2 and search.search_expires_by

    # and a second search is never offered the held numbers
    other = client.begin_search_available_phone_numbers(
        "US",
        PhoneNumberType.GEOGRAPHIC,
        PhoneNumberAssignmentType.APPLICATION,
        capabilities,
        quantity=2,
        polling_interval=0.2,
    ).result()
    assert not set(other.phone_numbers) & set(search.phone_numbers)

    # when it is purchased
    client.begin_purchase_phone_numbers(search.search_id, polling_interval=0.2).result()

    # then the numbers are listed and can be read
    owned = {n.phone_number for n in client.list_purchased_phone_numbers()}
    assert set(search.phone_numbers) <= owned
    number = search.phone_numbers[0]
    assert client.get_purchased_phone_number(number).assignment_type == "application"

    # and buying the same search again is refused
    with pytest.raises(HttpResponseError):
        client.begin_purchase_phone_numbers(search.search_id, polling_interval=0.2).result()

    # when its capabilities change, then the number reflects it
    updated = client.begin_update_phone_number_capabilities(
        number,
        calling=PhoneNumberCapabilityType.INBOUND,
        sms=PhoneNumberCapabilityType.NONE,
        polling_interval=0.2,
    ).result()
    assert updated.capabilities.calling == "inbound" and updated.capabilities.sms == "none"

    # when it is released, then it is gone, and an unknown number is 404
    client.begin_release_phone_number(number, polling_interval=0.2).result()
    with pytest.raises(ResourceNotFoundError):
        client.get_purchased_phone_number(number)
    with pytest.raises(ResourceNotFoundError):
        client.get_purchased_phone_number("+19995550100")


def test_browse_and_reserve_then_purchase_the_reservation(client: PhoneNumbersClient) -> None:
    # given numbers found by browsing
    found = client.browse_available_phone_numbers(
        country_code="GB",
        phone_number_type=PhoneNumberType.GEOGRAPHIC,
        calling_capability=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
        sms_capability=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
        assignment_type=PhoneNumberAssignmentType.APPLICATION,
    )
    found = found.phone_numbers
    assert len(found) >= 2

    # when two are reserved, then one removed
    reservation_id = str(uuid.uuid4())
    reservation = client.create_or_update_reservation(
        reservation_id=reservation_id, numbers_to_add=found[:2]
    )
    assert reservation.status == "active" and len(reservation.phone_numbers) == 2
    kept, dropped = found[0], found[1]
    reservation = client.create_or_update_reservation(
        reservation_id=reservation_id, numbers_to_remove=[dropped.id]
    )
    assert set(reservation.phone_numbers) == {kept.id}
    assert reservation_id in {r.id for r in client.list_reservations()}

    # when it is purchased, then the number is owned and the reservation completed
    client.begin_purchase_reservation(reservation_id, polling_interval=0.2).result()
    assert client.get_purchased_phone_number(kept.phone_number).phone_number == kept.phone_number
    assert client.get_reservation(reservation_id).status == "completed"
    with pytest.raises(HttpResponseError):
        client.delete_reservation(reservation_id)
