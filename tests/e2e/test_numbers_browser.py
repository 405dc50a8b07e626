"""Browser: the console's get-numbers wizard (search, summary, confirm and buy), the
resource's holds with their live countdowns, and cancelling a hold."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, screenshot, sign_up, submit, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

WIDE, NARROW = 1400, 390


def search(page: Page, slug: str, quantity: int) -> list[str]:
    """Searches for geographic US numbers from the Phone numbers page; returns those held."""
    page.goto(f"/resources/{slug}/numbers/")
    form = page.locator("#search-form")
    form.locator("select[name=type]").select_option("geographic")
    form.locator("input[name=quantity]").fill(str(quantity))
    submit(page, form.get_by_role("button", name="Search"))
    return [code.inner_text() for code in page.locator("#search-result tbody td code").all()]


def seconds(clock: str) -> int:
    minutes, secs = clock.split(":")
    return int(minutes) * 60 + int(secs)


def shoot_wide_and_narrow(page: Page, name: str) -> None:
    """Screenshots at a wide and a phone's width; the page must never scroll sideways."""
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0, f"{name} scrolls sideways by {overflow} px at {width} px"
        screenshot(page, f"{name}-{width}.png")
    page.set_viewport_size({"width": 1280, "height": 800})


def expire_soon(live_spool: LiveSpool, search_id: str, seconds_left: int) -> None:
    """Brings a search's end to `seconds_left` from now (as if the user had waited)."""
    live_spool.manage(
        "shell",
        "-c",
        "from datetime import timedelta; from django.utils import timezone; "
        "from apps.numbers.models import NumberSearch; "
        f"NumberSearch.objects.filter(pk='{search_id}').update("
        f"expires_at=timezone.now() + timedelta(seconds={seconds_left}))",
    )


def test_get_numbers_wizard_from_search_to_summary_to_owned_number(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given an inventory, and a signed-up user with a resource
    live_spool.manage("seed_numbers", "--country", "US", "--count", "20")
    page = new_context().new_page()
    sign_up(page, unique("numbers"))
    slug = create_resource(page, unique("Numbers Test"))

    # when they search for two geographic numbers in the US
    page.goto(f"/resources/{slug}/numbers/")
    screenshot(page, "20-numbers-wizard.png")
    held = search(page, slug, 2)

    # then a summary shows the two held numbers, what they can do, what they cost, and the
    # time left
    result = page.locator("#search-result")
    expect(result.locator("h2")).to_have_text(
        "Summary: 2 numbers held for you", use_inner_text=True
    )
    assert len(held) == 2 and all(number.startswith("+1") for number in held)
    facts = result.locator("dl.summary").inner_text()
    assert re.search(r"Calling\s+Inbound and outbound", facts)
    assert re.search(r"SMS\s+Inbound and outbound", facts)
    assert re.search(r"Monthly cost\s+2\.00 USD a month", facts)
    assert re.search(r"Setup cost\s+0\.00 USD once", facts)
    assert re.fullmatch(r"1[56]:[0-5]\d", result.locator("time[data-countdown]").inner_text())
    shoot_wide_and_narrow(page, "21-numbers-summary")

    # when they choose Buy, then they are asked to confirm what they will pay
    submit(page, result.get_by_role("button", name="Buy 2 numbers"))
    confirm = page.locator("#confirm-purchase")
    expect(confirm).to_contain_text("Buy 2 numbers for 2.00 USD a month, plus 0.00 USD setup?")
    shoot_wide_and_narrow(page, "22-numbers-confirm")

    # when they confirm, then the operation page follows the purchase to the end
    submit(page, confirm.get_by_role("button", name="Confirm purchase"))
    page.wait_for_selector('#operation[data-status="succeeded"]', timeout=20_000)
    screenshot(page, "23-numbers-purchased.png")

    # and both numbers are listed as theirs, with no hold left
    page.goto(f"/resources/{slug}/numbers/")
    owned = page.locator("table.numbers").inner_text()
    assert all(number in owned for number in held)
    assert page.locator("#holds").count() == 0
    screenshot(page, "24-numbers-owned.png")


def test_holds_count_down_and_cancel_offers_the_numbers_again_at_once(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given an inventory, and a user whose resource holds two numbers
    live_spool.manage("seed_numbers", "--country", "US", "--count", "20")
    page = new_context().new_page()
    sign_up(page, unique("holds"))
    slug = create_resource(page, unique("Holds Test"))
    held = search(page, slug, 2)
    assert len(held) == 2

    # when they open the Phone numbers page, then it lists the hold, counting down each second
    page.goto(f"/resources/{slug}/numbers/")
    hold = page.locator("#holds li[data-hold]")
    expect(hold).to_have_count(1)
    assert all(number in hold.inner_text() for number in held)
    clock = hold.locator("time[data-countdown]")
    before = seconds(clock.inner_text())
    page.wait_for_timeout(2_200)
    after = seconds(clock.inner_text())
    assert 1 <= before - after <= 3 and 14 * 60 < after < 16 * 60
    shoot_wide_and_narrow(page, "25-numbers-holds")

    # when they cancel it
    submit(page, hold.get_by_role("button", name="Cancel"))

    # then the page says the numbers are on offer again, and lists no hold
    expect(page.locator(".messages")).to_contain_text("Hold cancelled:")
    assert all(number in page.locator(".messages").inner_text() for number in held)
    assert page.locator("#holds").count() == 0

    # and the same search holds the very same numbers straight away (a search takes the
    # first available numbers in order)
    assert search(page, slug, 2) == held


def test_a_hold_that_runs_out_says_so_and_cannot_be_bought(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a user looking at the summary of a hold with a few seconds left
    live_spool.manage("seed_numbers", "--country", "US", "--count", "20")
    page = new_context().new_page()
    sign_up(page, unique("expiry"))
    slug = create_resource(page, unique("Expiry Test"))
    search(page, slug, 1)
    expire_soon(live_spool, page.url.rstrip("/").rsplit("/", 1)[1], 4)
    page.reload()
    result = page.locator("#search-result")
    buy = result.get_by_role("button", name="Buy 1 number")
    expect(buy).to_be_enabled()

    # when the countdown reaches zero, then the page says the hold expired and Buy is disabled
    expired = result.locator("p [data-hold-expired]")
    expect(expired).to_be_visible(timeout=10_000)
    expect(expired).to_contain_text("The hold expired: this number is on offer to everyone")
    expect(result.locator("h2")).to_have_text("This hold ended", use_inner_text=True)
    expect(result.locator("time[data-countdown]")).to_be_hidden()
    expect(buy).to_be_disabled()
    expect(result.get_by_role("button", name="Cancel hold")).to_be_disabled()
    screenshot(page, "26-numbers-hold-expired.png")

    # and the server agrees when the page is opened again
    page.reload()
    expect(result.locator("h2")).to_have_text("This hold ended")
    assert result.get_by_role("button", name="Buy 1 number").count() == 0
