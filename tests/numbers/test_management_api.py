"""Phone numbers through the management API (/api/v1/), as the console uses them."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import Role
from apps.numbers.models import NumberStatus, PhoneNumber

pytestmark = pytest.mark.django_db

SEARCH = {
    "country": "US",
    "phoneNumberType": "geographic",
    "assignmentType": "application",
    "capabilities": {"calling": "inbound+outbound", "sms": "inbound+outbound"},
    "quantity": 2,
}


@pytest.fixture
def inventory(make_numbers) -> list[PhoneNumber]:
    return make_numbers(3)


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_search_buy_point_and_release(
    owner, resource, inventory, django_capture_on_commit_callbacks
) -> None:
    api = _client(owner)
    base = f"/api/v1/resources/{resource.slug}/numbers/"

    # when a search is made and bought
    search = api.post(f"{base}searches/", SEARCH, format="json")
    assert search.status_code == 201 and len(search.json()["numbers"]) == 2
    with django_capture_on_commit_callbacks(execute=True):
        bought = api.post(f"{base}searches/{search.json()['id']}/purchase/")
    assert bought.status_code == 202
    operation = api.get(f"{base}operations/{bought.json()['id']}/").json()

    # then the operation is done and the numbers are listed
    assert operation["status"] == "succeeded" and operation["progress_done"] == 2
    listed = api.get(base).json()
    assert listed["count"] == 2
    number = listed["results"][0]["number"]

    # and a number can be pointed somewhere and released
    pointed = api.patch(
        f"{base}{number}/", {"inboundDestination": "https://hooks.example.com/in"}, format="json"
    )
    assert pointed.json()["inbound_destination"] == "https://hooks.example.com/in"
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"{base}{number}/").status_code == 202
    assert api.get(f"{base}{number}/").status_code == 404


def test_readers_see_but_cannot_buy(resource, inventory, make_user) -> None:
    reader = make_user("reader")
    services.add_member(resource, "reader", Role.READER)
    api = _client(reader)
    assert api.get(f"/api/v1/resources/{resource.slug}/numbers/").status_code == 200
    refused = api.post(
        f"/api/v1/resources/{resource.slug}/numbers/searches/", SEARCH, format="json"
    )
    assert refused.status_code == 403
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()
