"""The console's phone number pages and the staff inventory import."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import Role
from apps.numbers.models import NumberSearch, NumberStatus, PhoneNumber

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


def _numbers_url(resource) -> str:
    return f"/resources/{resource.slug}/numbers/"


def _search(browser, resource, **change) -> tuple[str, object]:
    """Posts the search form; returns the summary's URL and page."""
    page = browser.post(_numbers_url(resource), {**SEARCH, **change}, follow=True)
    assert page.redirect_chain, page.content.decode()[:2000]
    return page.redirect_chain[-1][0], page


def _held() -> list[str]:
    return list(
        PhoneNumber.objects.filter(status=NumberStatus.HELD)
        .order_by("number")
        .values_list("number", flat=True)
    )


def test_get_numbers_wizard_from_search_to_summary_to_confirmed_purchase(
    browser, resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a number with a setup cost
    PhoneNumber.objects.filter(number="+14255550100").update(setup_cost=Decimal("4.50"))

    # when the owner searches
    summary_url, page = _search(browser, resource)

    # then a summary lists the held numbers, their capabilities and costs, and the time left
    summary = page.content.decode()
    assert "Summary: 2 numbers held for you" in summary
    assert "+14255550100" in summary and "+14255550101" in summary
    assert "<dt>Calling</dt><dd>Inbound and outbound</dd>" in summary
    assert "<dt>SMS</dt><dd>Inbound and outbound</dd>" in summary
    assert '<dd id="monthly-cost"><strong>2.00 USD</strong> a month</dd>' in summary
    assert '<dd id="setup-cost">4.50 USD once</dd>' in summary
    assert re.search(r'<time data-countdown="9[0-9]{2}">1[56]:[0-5][0-9]</time>', summary)
    assert 'id="confirm-purchase"' not in summary

    # when they choose Buy, then they are asked to confirm first, and nothing is bought yet
    confirm = browser.get(summary_url, {"step": "confirm"}).content.decode()
    assert 'id="confirm-purchase"' in confirm
    assert "Buy 2 numbers for <strong>2.00 USD a month</strong>, plus 4.50 USD setup?" in confirm
    assert not PhoneNumber.objects.filter(status=NumberStatus.OWNED).exists()

    # when they confirm
    with django_capture_on_commit_callbacks(execute=True):
        bought = browser.post(summary_url, {"action": "buy"})

    # then the operation page (which refreshes itself meanwhile) shows it done, and the numbers are theirs
    assert b'data-status="succeeded"' in browser.get(bought["Location"]).content
    listing = browser.get(_numbers_url(resource))
    assert listing.content.count(b"+1425555010") >= 2 and b'id="holds"' not in listing.content
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 2
    assert b"2 numbers bought" in browser.get(summary_url).content

    # when one is released, then it leaves the list
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(_numbers_url(resource), {"action": "release", "number": "+14255550100"})
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 1


def test_the_numbers_page_lists_active_holds_with_buy_and_cancel(
    browser, resource, other_resource, make_numbers
) -> None:
    # given two searches of this resource, one that ran out, and one of another resource
    make_numbers(5)
    first_url, _ = _search(browser, resource, quantity="2")
    second_url, _ = _search(browser, resource, quantity="1")
    ran_out_url, _ = _search(browser, resource, quantity="1")
    NumberSearch.objects.filter(pk=ran_out_url.rstrip("/").rsplit("/", 1)[1]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    other = Client()
    other.force_login(other_resource.memberships.get().user)
    _search(other, other_resource, quantity="1")

    # when the owner opens the Phone numbers page
    page = browser.get(_numbers_url(resource)).content.decode()

    # then it lists the two active holds, with their numbers, time left, Buy and Cancel
    holds_list = page[page.index('id="holds"') : page.index('id="get-numbers"')]
    assert holds_list.count("<li data-hold") == 2
    assert "<code>+14255550100</code> <code>+14255550101</code>" in holds_list
    assert "<code>+14255550102</code>" in holds_list
    assert "+14255550103" not in holds_list and "+14255550104" not in holds_list
    assert (
        len(
            re.findall(r'<time data-countdown="9[0-9]{2}">1[56]:[0-5][0-9]</time> left', holds_list)
        )
        == 2
    )
    assert holds_list.count(">Buy</button>") == 2 and holds_list.count(">Cancel</button>") == 2
    assert f'action="{first_url}"' in holds_list and f'action="{second_url}"' in holds_list


def test_cancel_releases_the_hold_at_once(browser, resource, inventory) -> None:
    # given a search holding every number there is
    summary_url, _ = _search(browser, resource, quantity="3")
    assert len(_held()) == 3

    # when the owner cancels it
    page = browser.post(summary_url, {"action": "cancel"}, follow=True)

    # then the numbers are on offer again at once: the page says so and lists no hold
    content = page.content.decode()
    assert page.redirect_chain[-1][0] == _numbers_url(resource)
    assert "Hold cancelled: +14255550100, +14255550101, +14255550102 are on offer again." in content
    assert 'id="holds"' not in content and _held() == []
    assert "This hold ended" in browser.get(summary_url).content.decode()

    # and the same search holds them again straight away
    again_url, again = _search(browser, resource, quantity="3")
    assert again_url != summary_url and b"Summary: 3 numbers held for you" in again.content


def test_a_hold_that_ran_out_shows_ended_and_cannot_be_bought(browser, resource, inventory) -> None:
    # given a search whose hold ran out
    summary_url, _ = _search(browser, resource, quantity="1")
    NumberSearch.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    # then its summary says so and offers no Buy, not even as a confirmation step
    page = browser.get(summary_url, {"step": "confirm"}).content.decode()
    assert "This hold ended" in page and "Confirm purchase" not in page and ">Buy " not in page

    # and buying it anyway is refused in the user's words
    refused = browser.post(summary_url, {"action": "buy"}, follow=True).content.decode()
    assert "These numbers can no longer be bought: their hold ended" in refused
    assert not PhoneNumber.objects.filter(status=NumberStatus.OWNED).exists()


def test_a_bought_search_cannot_be_cancelled(
    browser, resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a bought search
    summary_url, _ = _search(browser, resource, quantity="1")
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(summary_url, {"action": "buy"})

    # when it is cancelled, then the console says there is no hold, and the number stays owned
    page = browser.post(summary_url, {"action": "cancel"}, follow=True).content.decode()
    assert "These numbers are bought, or being bought: there is no hold left to cancel." in page
    assert PhoneNumber.objects.filter(owner=resource, status=NumberStatus.OWNED).count() == 1


@pytest.mark.parametrize(
    ("change", "said", "not_said"),
    [
        (
            {"area_code": "4x5"},
            "The area code is digits only, e.g. 425.",
            "areaCode must be",
        ),
        (
            {"quantity": "9"},
            "No numbers match this search: try another area code or fewer numbers.",
            "Only 3 numbers match",
        ),
        ({"quantity": "0"}, "Ask for 1 to 100 numbers.", "quantity must be"),
        ({"quantity": "two"}, "Ask for 1 to 100 numbers.", "quantity must be"),
        ({"type": "landline"}, "Choose a number type from the list.", "phoneNumberType"),
        ({"calling": "both"}, "Choose the calling the numbers need from the list.", "must be one"),
        ({"country": "ZZ"}, "Choose a country from the list.", "ISO 3166"),
        (
            {"calling": "none", "sms": "none"},
            "Choose calling, SMS or both: a number with neither can do nothing.",
            "calling or sms",
        ),
    ],
)
def test_a_bad_search_says_what_to_change_in_the_users_words_and_holds_nothing(
    browser, resource, inventory, change, said, not_said
) -> None:
    # when the owner searches with a mistake
    page = browser.post(_numbers_url(resource), {**SEARCH, **change})

    # then the form shows again with what they typed and what to change, and nothing is held
    content = page.content.decode()
    assert page.status_code == 200
    assert f'<p class="errors" id="search-error" role="alert">{said}</p>' in content
    assert not_said not in content
    if "area_code" in change:
        assert 'name="area_code" value="4x5"' in content
    assert not PhoneNumber.objects.exclude(status=NumberStatus.AVAILABLE).exists()
    assert not NumberSearch.objects.exists()


def test_a_search_for_some_capability_is_enough(browser, resource, inventory) -> None:
    # when the owner asks for SMS only
    _, page = _search(browser, resource, calling="none", quantity="1")

    # then it is held, with no calling
    assert b"<dt>Calling</dt><dd>None</dd>" in page.content and len(_held()) == 1


def test_too_many_held_numbers_point_to_the_holds(browser, resource, inventory, settings) -> None:
    # given a resource at its allowance of held numbers
    settings.MAX_HELD_NUMBERS = 2
    _search(browser, resource, quantity="2")

    # when it searches for more, then the console says what to do, and nothing more is held
    page = browser.post(_numbers_url(resource), {**SEARCH, "quantity": "1"}).content.decode()
    assert "This resource holds as many numbers as it may at once: buy or cancel a hold" in page
    assert len(_held()) == 2


def test_another_resources_search_is_not_found(
    browser, resource, other_resource, inventory, django_capture_on_commit_callbacks
) -> None:
    # given a search of another resource
    other = Client()
    other.force_login(other_resource.memberships.get().user)
    theirs, _ = _search(other, other_resource, quantity="1")
    mine = theirs.replace(other_resource.slug, resource.slug)

    # then this resource's owner can neither see, buy nor cancel it through their resource
    with django_capture_on_commit_callbacks(execute=True):
        for response in (
            browser.get(mine),
            browser.get(mine, {"step": "confirm"}),
            browser.post(mine, {"action": "buy"}),
            browser.post(mine, {"action": "cancel"}),
        ):
            assert response.status_code == 404
            assert b"This search was not found." in response.content
    # nor through the other resource, which they are no member of
    assert browser.get(theirs).status_code == 404
    assert len(_held()) == 1 and not PhoneNumber.objects.filter(status=NumberStatus.OWNED).exists()


def test_junk_search_ids_and_actions_change_nothing(browser, resource, inventory) -> None:
    # given a held search
    summary_url, _ = _search(browser, resource, quantity="1")

    # then junk ids are not found, and an unknown action does nothing
    for junk in ("nope", "00000000-0000-0000-0000-000000000000"):
        assert browser.get(f"{_numbers_url(resource)}searches/{junk}/").status_code == 404
    assert browser.post(summary_url, {"action": "steal"}).status_code == 302
    assert browser.post(summary_url, {}).status_code == 302
    assert len(_held()) == 1 and NumberSearch.objects.get().state == "held"


def test_readers_see_holds_but_cannot_search_buy_or_cancel(
    browser, resource, inventory, make_user
) -> None:
    # given a held search, and a Reader
    summary_url, _ = _search(browser, resource, quantity="1")
    reader = make_user("reader")
    services.add_member(resource, "reader", Role.READER)
    client = Client()
    client.force_login(reader)

    # then they see the hold and its summary, without the search form, Buy or Cancel
    listing = client.get(_numbers_url(resource)).content.decode()
    assert 'id="holds"' in listing and "+14255550100" in listing
    assert 'id="get-numbers"' not in listing and ">Buy</button>" not in listing
    assert ">Cancel</button>" not in listing
    summary = client.get(summary_url, {"step": "confirm"}).content.decode()
    assert "Summary: 1 number held for you" in summary
    assert "Buy 1 number" not in summary and "Cancel hold" not in summary
    assert "Confirm purchase" not in summary

    # when they post a search, a purchase and a cancel anyway, then nothing changes
    client.post(_numbers_url(resource), {**SEARCH, "quantity": "1"})
    refused = client.post(summary_url, {"action": "buy"}, follow=True).content.decode()
    assert "Your role cannot buy numbers or cancel holds." in refused
    client.post(summary_url, {"action": "cancel"})
    assert _held() == ["+14255550100"] and NumberSearch.objects.count() == 1
    assert not PhoneNumber.objects.filter(status=NumberStatus.OWNED).exists()


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

    summary_url, _ = _search(browser, resource, quantity="1")
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(summary_url, {"action": "buy"})
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
