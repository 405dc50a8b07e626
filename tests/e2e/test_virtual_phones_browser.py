"""Browser: the console's virtual phones against a live `manage.py serve` (Kamailio as the SIP
edge with the loopback carrier, Janus, the media process). A newcomer's path: the resource's
number answers with the built-in IVR (as `make run`'s demo number does); the virtual phone
page switches on, dials the number, hears the menu (audio bytes at the page's peer
connection), presses 1 on the keypad, and the IVR says goodbye and hangs up. The call log
shows the phone's leg through the loopback carrier.

Screenshots land in /tmp/virtual-phone-*.png.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, sign_up, unique
from tests.janus import require_janus
from tests.pstn.edge import require_kamailio

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

START_SECONDS = 30.0  # for `serve`'s media process and SIP edge to come up
MEDIA_TIMEOUT = 20.0


def shot(page: Page, name: str) -> None:
    page.screenshot(path=f"/tmp/virtual-phone-{name}.png", full_page=True)


def audio_received(page: Page) -> int:
    return int(
        page.evaluate(
            """async () => {
                if (!window.spoolPhone.pc) return 0;
                let bytes = 0;
                (await window.spoolPhone.pc.getStats()).forEach((s) => {
                    if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived;
                });
                return bytes;
            }"""
        )
    )


def wait_until(what: str, check: Any, timeout: float, page: Page) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(250)


def give_ivr_number(live: LiveSpool, slug: str) -> str:
    """A number of the resource whose calls the built-in IVR answers (as the demo's)."""
    live.manage("seed_numbers", "--country", "US", "--count", "1")
    script = (
        "from apps.accounts.models import Resource; "
        "from apps.numbers import inventory; "
        "from apps.numbers.management.commands.seed_demo_numbers import answer_with_the_ivr; "
        f"resource = Resource.objects.get(slug='{slug}'); "
        "number = inventory.give_demo_number(resource); answer_with_the_ivr(resource, number); "
        "print(number.number)"
    )
    return live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


@pytest.mark.timeout(180)
def test_a_virtual_phone_calls_a_number_hears_the_ivr_and_presses_a_key(
    live_spool: LiveSpool, new_context: Any
) -> None:
    require_janus()
    require_kamailio()
    context: BrowserContext = new_context()
    page = context.new_page()
    sign_up(page, unique("phone"))
    slug = create_resource(page, unique("Phones"))
    number = give_ivr_number(live_spool, slug)

    # given the Virtual phones page, once Spool's SIP edge and media plane are up
    deadline = time.monotonic() + START_SECONDS
    while True:
        page.goto(f"/resources/{slug}/calls/phones/")
        if page.locator("#phones-unavailable").count() == 0:
            break
        assert time.monotonic() < deadline, "virtual phones did not come up: see serve.log"
        page.wait_for_timeout(500)
    expect(page.locator("table")).to_contain_text(number)
    page.locator("#phone-on").click()
    expect(page.locator("#phone-state")).to_have_text(re.compile(r"^Ready: \+1555"), timeout=10_000)
    shot(page, "00-ready")

    # when it dials the resource's number (the page's test tone is its voice)
    page.fill("#phone-dial", number)
    page.locator("#phone-call").click()

    # then the IVR answers and its menu reaches the page
    expect(page.locator("#phone-state")).to_have_text("In a call", timeout=20_000)
    wait_until("audio from the IVR", lambda: audio_received(page) > 4000, MEDIA_TIMEOUT, page)
    page.wait_for_timeout(3000)  # into the menu's prompt, for the key to be heard
    shot(page, "01-in-call")

    # when the caller presses 1, the IVR greets and hangs up: the call ends normally
    page.locator("#keypad button[data-key='1']").click()
    expect(page.locator("#phone-log")).to_contain_text("Key 1")
    expect(page.locator("#phone-log")).to_contain_text("The call ended", timeout=60_000)
    expect(page.locator("#phone-state")).to_have_text(re.compile(r"^Ready"))
    shot(page, "02-ended")

    # and the call log shows the phone's call, which the IVR answered with the key it heard
    page.goto(f"/resources/{slug}/calls/automation/")
    expect(page.locator("tr.connection")).to_have_count(1)
    page.locator("tr.connection a").first.click()
    timeline = page.locator("#timeline")
    expect(
        timeline.locator("tr.step-operation", has_text="Recognize").locator(".tones")
    ).to_have_text("one")
    shot(page, "03-timeline")

    # and the call log has the phone's leg: inbound through the loopback carrier
    page.goto(f"/resources/{slug}/calls/")
    page.locator("td.nowrap a").first.click()
    expect(page.locator("#participants .phone-leg")).to_contain_text("Phone, inbound via loopback")
    expect(page.locator(".end-reason")).to_be_visible()
    shot(page, "04-call-log")
