"""The console's Events page in a real browser against a live `manage.py serve` (its worker
makes the handshakes and deliveries): event types ticked by service, the busy Create button, a
handshake the page shows without a reload, a test event of a chosen type that the endpoint
refuses, and its redelivery from the dead letters.

Screenshots of each tab at 1400 and 390 px land in tests/screenshots/events-*.png.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, screenshot, sign_up, submit, unique
from tests.e2e.test_console_layout_browser import fit
from tests.events.conftest import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

P = "Microsoft.Communication."
WIDE, NARROW = 1400, 390


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


def wait_for(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def test_subscribe_by_service_test_fire_a_type_and_redeliver_the_dead_letter(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext], receiver: Receiver
) -> None:
    context = new_context()
    page = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_up(page, unique("events-"))
    slug = create_resource(page, unique("Events check "))
    events = f"/resources/{slug}/events/"

    # given the Events page's form
    page.goto(events)
    form = page.locator("#create-subscription form")
    name = form.locator("input[name=name]")
    # (its pattern is one the browser compiles: a name with a space is refused as typed)
    assert name.evaluate("input => { input.value = 'a b'; return input.validity.patternMismatch }")
    name.fill("hook")
    form.locator("input[name=endpoint_url]").fill(receiver.url)

    # when the owner ticks "all" SMS, and one calling type
    sms = form.locator('fieldset[data-service="sms"]')
    sms.get_by_label("All SMS events").check()
    calling = form.locator('fieldset[data-service="calling"]')
    calling.get_by_label("CallEnded").check()

    # then the SMS types are ticked, and calling's "all" box shows a part of its group
    for name in ("SMSReceived", "SMSDeliveryReportReceived"):
        expect(sms.get_by_label(name, exact=True)).to_be_checked()
    assert calling.locator("[data-all]").evaluate("box => box.indeterminate") is True
    screenshot(page, "events-form-ticked.png")

    # when Create is pressed twice in a hurry
    create = form.get_by_role("button", name="Create")
    create.evaluate(
        """button => new MutationObserver(() => sessionStorage.setItem(
            "busy", `${button.getAttribute("aria-busy")} ${button.textContent}`
        )).observe(button, {attributes: true, childList: true})"""
    )
    with page.expect_navigation():
        create.dblclick()

    # then the button said it was busy while the request ran, and one request was sent
    assert page.evaluate("sessionStorage.getItem('busy')") == "true Creating…"
    expect(page.locator(".messages")).to_contain_text("hook is being validated")
    expect(page.locator(".messages")).not_to_contain_text("already has a subscription")

    # and the list shows the handshake's outcome without a reload: active
    row = page.locator('tr[data-subscription="hook"]')
    expect(row).to_have_attribute("data-state", "active", timeout=20_000)
    expect(row.locator("td.types")).to_contain_text("all SMS")
    expect(row.locator("td.types")).to_contain_text("CallEnded")

    # when its event types are edited: every calling type instead of CallEnded alone
    page.get_by_role("link", name="Edit event types").click()
    edit = page.locator("#subscription-form form")
    expect(
        edit.locator('fieldset[data-service="calling"]').get_by_label("CallEnded")
    ).to_be_checked()
    edit.get_by_label("All Calling events").check()
    screenshot(page, "events-edit-types.png")
    submit(page, edit.get_by_role("button", name="Save event types"))

    # then the list says so, and the test picker offers each of them
    row = page.locator('tr[data-subscription="hook"]')
    expect(row.locator("td.types small")).to_have_text(["all SMS", "all Calling"])
    picker = row.locator("select[name=event_type] option")
    expect(picker).to_have_count(7)

    # when a CallEnded test event is sent, and the endpoint refuses it (HTTP 400)
    receiver.statuses = [400]
    row.locator("select[name=event_type]").select_option(P + "CallEnded")
    submit(page, row.get_by_role("button", name="Send test event"))

    # then the endpoint got a CallEnded with a call's data, and the delivery is dead-lettered
    expect(page.locator("#delivery")).to_have_attribute(
        "data-state", "deadLettered", timeout=20_000
    )
    (body,) = receiver.notifications[0].json
    assert body["eventType"] == P + "CallEnded" and body["subject"] == "/spool/test"
    assert {"correlationId", "startedBy", "endedBy", "reason"} <= set(body["data"])

    # when the owner opens the dead letters
    page.goto(f"{events}?tab=dead-letters")
    expect(page.locator(".tabs a.active")).to_contain_text("Dead letters")
    dead = page.locator("table.dead-letters tbody tr")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("The endpoint answered HTTP 400, which is not retried.")
    expect(dead).to_contain_text("HTTP 400")
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        screenshot(page, f"events-dead-letter-{width}.png")
        assert fit(page)["page"] <= 0, f"the page scrolls sideways at {width} px"
    page.set_viewport_size({"width": 1280, "height": 800})

    # and redelivers it (the endpoint answers 200 now)
    submit(page, dead.get_by_role("button", name="Redeliver"))

    # then it is sent again, counted as the event's second delivery, and the list is empty
    wait_for(lambda: len(receiver.notifications) == 2)
    assert receiver.notifications[1].header("aeg-delivery-count") == "1"
    expect(page.locator(".messages")).to_contain_text("is being sent to hook again")
    expect(page.locator("#dead-letters")).to_contain_text("No dead letters")

    # and every tab reads at both widths, without sideways scrolling or console errors
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        for tab in ("subscriptions", "events", "deliveries", "dead-letters"):
            page.goto(f"{events}?tab={tab}")
            measured = fit(page)
            assert measured["page"] <= 0 and measured["window"] <= 0, (tab, width, measured)
            screenshot(page, f"events-{tab}-{width}.png")
    assert errors == []
