"""Browser: Try SMS to a virtual handset, a reply from the handset, and the message log; a send
with a refused recipient shows each outcome and keeps the form."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import screenshot, sign_up, submit, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

HANDSET = "+447700900555"
OTHER_HANDSET = "+447700900556"
OPTED_OUT = "+447700900666"


def resource_with_a_number(live: LiveSpool, owner: str) -> tuple[str, str]:
    """A resource `owner` owns, with a number that sends and receives SMS: (slug, number).
    Made by management commands: buying numbers has browser tests of its own
    (test_numbers_browser.py), and these tests are about what comes after."""
    lines = live.manage("create_resource", unique("SMS Test"), "--owner", owner).stdout
    *_, created, connection = lines.strip().splitlines()
    live.slugs[connection] = slug = created.split("(slug ", 1)[1].split(",", 1)[0]
    return slug, live.give_number(connection)


def test_send_to_a_handset_reply_and_read_the_log(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a user with a resource that owns a number
    page = new_context().new_page()
    username = unique("sms")
    sign_up(page, username)
    slug, number = resource_with_a_number(live_spool, username)

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


def sideways_scroll(page: Page) -> dict[str, int]:
    """How far the page, and the send result's card, is wider than what shows it."""
    return dict(
        page.evaluate(
            """() => ({
                page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                card: (c => c.scrollWidth - c.clientWidth)(document.querySelector('#send-results')),
            })"""
        )
    )


def test_a_send_with_an_opted_out_recipient_shows_both_outcomes_and_keeps_the_form(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a resource's number, and a person who opted out of it on the Opt-outs page
    page = new_context().new_page()
    username = unique("smsout")
    sign_up(page, username)
    slug, number = resource_with_a_number(live_spool, username)
    page.goto(f"/resources/{slug}/sms/opt-outs/")
    opt_out = page.locator("#opt-out-form")
    opt_out.locator("select[name=from]").select_option(number)
    opt_out.locator("input[name=to]").fill(OPTED_OUT)
    submit(page, opt_out.get_by_role("button", name="Opt out"))
    assert OPTED_OUT in page.locator("table").inner_text()

    # when they send to a handset and to the person who opted out
    page.goto(f"/resources/{slug}/sms/")
    form = page.locator("#send-form")
    form.locator("select[name=from]").select_option(number)
    typed_to = f"{HANDSET}, {OPTED_OUT}"
    form.locator("input[name=to]").fill(typed_to)
    form.locator("textarea[name=message]").fill("Your table is ready")
    submit(page, form.get_by_role("button", name="Send"))

    # then the heading tells how many got it, not "Sent"
    results = page.locator("#send-results")
    assert results.locator("h2").inner_text() == "Sent to 1 of 2 recipients"
    # and the handset's row is accepted, with its message id linking to the message
    accepted = results.locator("tr.accepted")
    assert HANDSET in accepted.inner_text() and "Accepted" in accepted.inner_text()
    message_link = accepted.locator("a")
    assert message_link.inner_text().startswith("Outgoing_")
    message_href = str(message_link.get_attribute("href"))
    # and the opted-out person's row is refused, in red, saying why
    refused = results.locator("tr.refused")
    assert "Refused" in refused.inner_text()
    reason = refused.locator(".errors")
    assert reason.inner_text().startswith(f"{OPTED_OUT} has opted out of messages from {number}")
    assert reason.evaluate("e => getComputedStyle(e).color") == "rgb(196, 49, 75)"
    # and the form still holds what was typed
    assert form.locator("input[name=to]").input_value() == typed_to
    assert form.locator("textarea[name=message]").input_value() == "Your table is ready"
    assert form.locator("select[name=from]").input_value() == number

    # and the result reads whole in a wide window and a phone's, without sideways scroll
    for width, name in (
        (1400, "35-sms-send-partial-1400.png"),
        (390, "36-sms-send-partial-390.png"),
    ):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, name)
        assert sideways_scroll(page) == {"page": 0, "card": 0}, width
    page.set_viewport_size({"width": 1280, "height": 800})

    # when they fix To and send again
    form.locator("input[name=to]").fill(OTHER_HANDSET)
    submit(page, form.get_by_role("button", name="Send"))

    # then everyone got it, and the form is empty for the next message
    assert page.locator("#send-results h2").inner_text() == "Sent to 1 recipient"
    assert form.locator("input[name=to]").input_value() == ""

    # when they open the first send's message, its times read as an outbound message's
    page.goto(message_href)
    labels = page.locator("dl.facts dt").all_inner_texts()
    assert "Queued" in labels and "Finished" in labels and "Received" not in labels
    screenshot(page, "37-sms-message-outbound.png")

    # when they open a handset for text that is no phone number, then none opens
    page.goto(f"/resources/{slug}/sms/handsets/?handset=hello")
    assert "is not a phone number" in page.locator("#handset-problem").inner_text()
    assert page.locator("section.phone").count() == 0
    screenshot(page, "38-sms-handset-not-a-number.png")
