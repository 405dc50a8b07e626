"""Browser: Try SMS to a virtual handset, a reply from the handset, and the message log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, screenshot, sign_up, submit, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HANDSET = "+447700900555"


def buy_a_number(page: Page, slug: str) -> str:
    page.goto(f"/resources/{slug}/numbers/")
    form = page.locator("#search-form")
    form.locator("select[name=type]").select_option("geographic")
    submit(page, form.get_by_role("button", name="Search"))
    result = page.locator("#search-result")
    number = result.locator("tbody tr td:first-child").first.inner_text().strip()
    submit(page, result.get_by_role("button", name="Buy 1 number"))
    page.wait_for_selector('#operation[data-status="succeeded"]', timeout=20_000)
    return number


def test_send_to_a_handset_reply_and_read_the_log(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a user with a resource that owns a number
    live_spool.manage("seed_numbers", "--country", "US", "--count", "5")
    page = new_context().new_page()
    sign_up(page, unique("sms"))
    slug = create_resource(page, unique("SMS Test"))
    number = buy_a_number(page, slug)

    # when they send from the Try SMS page to a number outside the deployment
    page.goto(f"/resources/{slug}/sms/")
    form = page.locator("#send-form")
    form.locator("select[name=from]").select_option(number)
    form.locator("input[name=to]").fill(HANDSET)
    form.locator("textarea[name=message]").fill("Your code is 1234 — reply to confirm")
    assert "UCS-2 · 1 segment" in page.locator("#segment-count").inner_text()
    form.locator("input[name=delivery_report]").check()
    screenshot(page, "30-sms-send.png")
    submit(page, form.get_by_role("button", name="Send"))

    # then the recipient is accepted
    results = page.locator("#send-results")
    assert "Accepted" in results.inner_text() and HANDSET in results.inner_text()
    screenshot(page, "31-sms-sent.png")

    # when they open the virtual handset, the message is in its inbox
    page.goto(f"/resources/{slug}/sms/handsets/?handset=%2B447700900555")
    page.wait_for_selector("ol.bubbles li.incoming", timeout=20_000)
    assert "Your code is 1234" in page.locator("ol.bubbles").inner_text()
    # and a reply typed there reaches the number
    reply = page.locator("#reply-form")
    reply.locator("input[name=message]").fill("Confirmed!")
    submit(page, reply.get_by_role("button", name="Send"))
    page.wait_for_selector("ol.bubbles li.outgoing")
    screenshot(page, "32-sms-handset.png")

    # then the log shows the inbound reply and the outbound message delivered
    page.goto(f"/resources/{slug}/sms/messages/")
    log = page.locator("table.sms-log")
    inbound = log.locator("tr.message.inbound")
    assert "Confirmed!" in inbound.inner_text() and HANDSET in inbound.inner_text()
    outbound = log.locator("tr.message.outbound")
    assert "Delivered" in outbound.inner_text()
    screenshot(page, "33-sms-log.png")
    outbound.locator("a").first.click()
    details = page.locator("dl.facts").inner_text()
    assert "Delivered" in details and "requested" in details
    screenshot(page, "34-sms-message.png")
