"""Browser: two Chromium windows and a phone in one group call through Janus (a live `manage.py
serve` with SPOOL_JANUS_URL). The first window dials the phone from the Group call page (a SIP
trunk pointed at sipp, which echoes what it hears); both windows see it join, and receive its
feed: audio with energy, which is the echo of what the phone heard from them. Hanging the
phone up from the far end takes it out of both rosters.

Screenshots land in /tmp/calls-phone-*.png.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveSpool
from tests.e2e.test_calls_browser import (  # noqa: F401 (fixtures)
    join_group,
    sfu_spool,
    sfu_windows,
    shot,
)
from tests.pstn.test_sip_phone_leg import far_end  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE = "+15550002222"
MEDIA_TIMEOUT = 30.0


def carrier(live: LiveSpool, slug: str, sip_port: int) -> str:
    """The resource's number with outbound calling, a trunk to sipp and a route to it."""
    live.manage("seed_numbers", "--country", "US", "--count", "1")
    script = (
        "from apps.accounts.models import Resource; from apps.numbers import inventory; "
        "from apps.pstn.models import SipTrunk, SipRoute; "
        f"r = Resource.objects.get(slug='{slug}'); n = inventory.give_demo_number(r); "
        f"t = SipTrunk.objects.create(resource=r, fqdn='sbc.{slug}.test', signaling_port={sip_port}, "
        "enabled=True, address='127.0.0.1'); "
        "SipRoute.objects.create(resource=r, position=0, name='all', number_pattern=r'^\\+1', "
        "trunks=[t.fqdn]); print(n.number)"
    )
    return live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def phones_feed_energy(page: Page) -> float:
    figures = page.evaluate("() => window.spoolCall.getStats()")
    return float(
        sum(
            peer["audioEnergyReceived"] for peer in figures["peers"] if peer["peer"] == "sfu:phones"
        )
    )


@pytest.mark.timeout(180)
def test_two_windows_and_a_phone_in_one_group_call_hear_each_other(
    sfu_spool: LiveSpool,  # noqa: F811
    sfu_windows: Callable[[int], tuple[list[Page], str]],  # noqa: F811
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    pages, slug = sfu_windows(2)
    carrier(sfu_spool, slug, far_end("uas_echo.xml"))
    group_id = str(uuid.uuid4())
    for page in pages:
        join_group(page, slug, group_id)
    for page in pages:
        expect(page.locator("#participant-count")).to_have_text("2 participants")

    # when the first window dials the phone into the call
    pages[0].fill("#dial-number", PHONE)
    pages[0].locator("#dial-out-button").click()

    # then it answers and is in both rosters
    for page in pages:
        expect(page.locator("#participant-count")).to_have_text("3 participants", timeout=20_000)
        expect(page.locator(f'#tiles .call-tile.remote[data-raw-id="4:{PHONE}"]')).to_have_count(1)

    # and both windows receive the phone's feed with sound in it: the phone's echo of them
    for page in pages:
        deadline = time.monotonic() + MEDIA_TIMEOUT
        while phones_feed_energy(page) <= 0.01:
            assert time.monotonic() < deadline, page.evaluate("() => window.spoolCall.getStats()")
            page.wait_for_timeout(250)
    shot(pages[0], "phone-0-in-call")
    shot(pages[1], "phone-1-in-call")

    # when the first window hangs the phone up, it leaves both rosters; the call goes on
    pages[0].evaluate(f"() => window.spoolCall.removeParticipant({{phoneNumber: '{PHONE}'}})")
    for page in pages:
        expect(page.locator("#participant-count")).to_have_text("2 participants", timeout=20_000)
        expect(page.locator("#call-state")).to_have_text("Connected")
    shot(pages[0], "phone-2-hung-up")
