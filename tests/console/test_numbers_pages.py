"""The console's phone number pages and the staff inventory import."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.accounts import services
from apps.accounts.models import Role
from apps.numbers.models import NumberStatus, PhoneNumber

pytestmark = pytest.mark.django_db


@pytest.fixture
def inventory(make_numbers) -> list[PhoneNumber]:
    return make_numbers(3)


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


SEARCH = {
    "action": "search",
    "country": "US",
    "type": "geographic",
    "assignment": "application",
    "calling": "inbound+outbound",
    "sms": "inbound+outbound",
    "area_code": "425",
    "quantity": "2",
}


def test_get_numbers_wizard_from_search_to_owned_number(
    browser, resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # when the owner searches
    page = browser.post(f"/resources/{resource.slug}/numbers/", SEARCH, follow=True)

    # then two numbers are held and priced
    assert b"2 numbers held for you" in page.content and b"Monthly total: 2.00 USD" in page.content
    search_url = page.redirect_chain[-1][0]

    # when they buy
    with django_capture_on_commit_callbacks(execute=True):
        bought = browser.post(search_url)

    # then the operation page (which refreshes itself meanwhile) shows it done, and the numbers are theirs
    assert b'data-status="succeeded"' in browser.get(bought["Location"]).content
    listing = browser.get(f"/resources/{resource.slug}/numbers/")
    assert listing.content.count(b"+1425555010") >= 2
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 2

    # when one is released, then it leaves the list
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(
            f"/resources/{resource.slug}/numbers/", {"action": "release", "number": "+14255550100"}
        )
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 1


def test_a_search_that_cannot_be_filled_says_so(browser, resource, inventory) -> None:
    page = browser.post(
        f"/resources/{resource.slug}/numbers/", {**SEARCH, "quantity": "9"}, follow=True
    )
    assert b"Only 3 numbers match" in page.content
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()


def test_readers_cannot_search_or_buy(resource, inventory, make_user) -> None:
    reader = make_user("reader")
    services.add_member(resource, "reader", Role.READER)
    client = Client()
    client.force_login(reader)
    assert b'id="get-numbers"' not in client.get(f"/resources/{resource.slug}/numbers/").content
    client.post(f"/resources/{resource.slug}/numbers/", SEARCH)
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()


def test_staff_import_reports_bad_rows_by_line_and_adds_nothing(make_user) -> None:
    staff = make_user("operator", is_staff=True)
    client = Client()
    client.force_login(staff)
    header = "number,country,type,calling,sms,monthly_cost,currency\n"
    bad = (
        header
        + "+14255550111,US,geographic,inbound+outbound,inbound+outbound,1.00,USD\nnot-a-number,US,geographic,none,none,1,USD\n"
    )
    page = client.post(
        "/staff/numbers/import/", {"file": SimpleUploadedFile("n.csv", bad.encode())}
    )
    assert b'id="import-errors"' in page.content and b"<td>3</td>" in page.content
    assert not PhoneNumber.objects.exists()
    good = header + "+14255550111,US,geographic,inbound+outbound,inbound+outbound,1.00,USD\n"
    page = client.post(
        "/staff/numbers/import/", {"file": SimpleUploadedFile("n.csv", good.encode())}, follow=True
    )
    assert b"Imported 1 number" in page.content and PhoneNumber.objects.count() == 1


def test_only_staff_reach_the_import_page(browser) -> None:
    # when a signed-in owner who is not staff opens it
    page = browser.get("/staff/numbers/import/")

    # then the console says no (not the admin's login)
    assert page.status_code == 403 and b"Not allowed" in page.content


def test_an_owned_number_points_its_inbound_traffic_somewhere(
    browser, resource, other_resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # given an owned number and an identity of this resource and of another one
    from apps.accounts import services as accounts

    page = browser.post(
        f"/resources/{resource.slug}/numbers/", {**SEARCH, "quantity": "1"}, follow=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(page.redirect_chain[-1][0])
    number = PhoneNumber.objects.get(owner=resource).number
    mine, _ = accounts.create_identity(resource)
    theirs, _ = accounts.create_identity(other_resource)

    def point(destination: str) -> bytes:
        return browser.post(
            f"/resources/{resource.slug}/numbers/",
            {"action": "destination", "number": number, "destination": destination},
            follow=True,
        ).content

    # then its own identity and a URL are accepted; another resource's identity and junk are not
    point(mine.raw_id)
    assert PhoneNumber.objects.get(number=number).inbound_destination == mine.raw_id
    point("https://hooks.example.com/sms")
    assert (
        PhoneNumber.objects.get(number=number).inbound_destination
        == "https://hooks.example.com/sms"
    )
    assert b"was not found" in point(theirs.raw_id)
    assert b"http(s) URL" in point("ftp://nope")
    assert (
        PhoneNumber.objects.get(number=number).inbound_destination
        == "https://hooks.example.com/sms"
    )
