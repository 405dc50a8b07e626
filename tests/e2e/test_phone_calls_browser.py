"""Browser: a console user calls a phone from Try calling, on the embedded defaults (a live
`manage.py serve`), through a SIP trunk pointed at sipp. The far end plays ringback as early
media (183 with SDP) for 4.5 s, then answers and echoes: the page shows EarlyMedia and hears the
ringback, then Connected, and the call ends normally when the page hangs up.

Screenshots land in /tmp/calls-phone-1to1-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.automation.tones import require_tool
from tests.conftest import LiveSpool
from tests.e2e.test_calls_browser import (  # noqa: F401 (fixtures)
    connect_try_calling,
    shot,
    stats,
    wait_for_media,
    windows,
)
from tests.e2e.test_group_call_phones_browser import carrier
from tests.janus import require_janus
from tests.pstn.rtp_pcap import write_tone
from tests.pstn.test_sip_phone_leg import RINGBACK, far_end  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE = "+15550003333"


def bridge_energy(figures: dict[str, object]) -> float:
    peers = figures["peers"]
    assert isinstance(peers, list)
    return float(sum(peer["audioEnergyReceived"] for peer in peers if peer["peer"] == "media"))


@pytest.mark.timeout(150)
def test_a_window_calls_a_phone_hears_its_early_media_then_talks(
    live_spool: LiveSpool,
    windows: Callable[[int], tuple[list[Page], str]],  # noqa: F811
    far_end: Callable[..., int],  # noqa: F811
    tmp_path: Path,
) -> None:
    require_janus()
    require_tool("sipp")
    # given a resource with a number to call from, and a route to a far end that plays
    # ringback before it answers
    write_tone(tmp_path / "ringback.pcap", RINGBACK, 4.0)
    port = far_end("uas_early_media.xml")
    (page,), slug = windows(1)
    caller_id = carrier(live_spool, slug, port)
    connect_try_calling(page, slug)

    # when the user calls the phone from Try calling, as that number
    form = page.locator("#place-call")
    form.locator("input[name=callee]").fill(PHONE)
    form.locator("#caller-id").select_option(caller_id)
    form.get_by_role("button", name="Audio call").click()

    # then the call shows early media, and the ringback is heard through the bridge
    expect(page.locator("#call-state")).to_have_text("EarlyMedia", timeout=15_000)
    wait_for_media(page, lambda figures: bridge_energy(figures) > 0)
    shot(page, "phone-1to1-early-media")

    # and when the phone answers, the call connects on the same connection
    expect(page.locator("#call-state")).to_have_text("Connected", timeout=15_000)
    before = stats(page)
    page.wait_for_timeout(1000)
    after = stats(page)
    assert after["bytesSent"] > before["bytesSent"] > 0
    assert len(after["peers"]) == 1  # the connection early media opened carries the call
    shot(page, "phone-1to1-connected")

    # when the user hangs up, the call ends normally
    page.locator("#hangup").click()
    expect(page.locator("#call-state")).to_have_text(re.compile(r"^Disconnected · code 0\b"))
