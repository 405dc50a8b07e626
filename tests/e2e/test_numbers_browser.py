"""Browser: the console's get-numbers wizard, from search to an owned number."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, screenshot, sign_up, submit, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_get_numbers_wizard_from_search_to_owned_number(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given an inventory, and a signed-up user with a resource
    live_spool.manage("seed_numbers", "--country", "US", "--count", "20")
    page = new_context().new_page()
    sign_up(page, unique("numbers"))
    slug = create_resource(page, unique("Numbers Test"))

    # when they search for two geographic numbers in the US
    page.goto(f"/resources/{slug}/numbers/")
    form = page.locator("#search-form")
    form.locator("select[name=type]").select_option("geographic")
    form.locator("input[name=quantity]").fill("2")
    screenshot(page, "20-numbers-wizard.png")
    submit(page, form.get_by_role("button", name="Search"))

    # then two numbers are held for them with their monthly cost
    result = page.locator("#search-result")
    assert "2 numbers held for you" in result.inner_text()
    held = [cell.inner_text() for cell in result.locator("tbody tr td:first-child").all()]
    assert len(held) == 2 and all(number.startswith("+1") for number in held)
    assert "Monthly total: 2.00 USD" in result.inner_text()
    screenshot(page, "21-numbers-held.png")

    # when they buy, then the operation page follows the purchase to the end
    submit(page, result.get_by_role("button", name="Buy 2 numbers"))
    page.wait_for_selector('#operation[data-status="succeeded"]', timeout=20_000)
    screenshot(page, "22-numbers-purchased.png")

    # and both numbers are listed as theirs
    page.goto(f"/resources/{slug}/numbers/")
    owned = page.locator("table.numbers").inner_text()
    assert all(number in owned for number in held)
    screenshot(page, "23-numbers-owned.png")
