"""Browser: Try calling (a 1:1 video call between two windows) and Group call (three windows in
one call: a mesh, then through Janus), through static/calling/spool-calling.js against a live
`manage.py serve`, with Chromium's fake camera and microphone. Media is checked by the bytes
each page's peer connections sent and received (`window.spoolCall.getStats()`).

Screenshots land in /tmp/calls-*.png.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import LiveSpool, start_spool, stop_spool
from tests.e2e.test_console_browser import PASSWORD, create_resource, sign_in, sign_up, unique
from tests.janus import require_janus, run_janus

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MEDIA_TIMEOUT = 20.0  # seconds for media to flow once a call is connected


def shot(page: Page, name: str) -> None:
    page.screenshot(path=f"/tmp/calls-{name}.png", full_page=True)


def stats(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("() => window.spoolCall.getStats()"))


def wait_for_media(page: Page, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the page's call stats until `ok` holds; returns the last figures."""
    deadline = time.monotonic() + MEDIA_TIMEOUT
    figures = stats(page)
    while not ok(figures):
        assert time.monotonic() < deadline, f"no media: {figures}"
        page.wait_for_timeout(250)
        figures = stats(page)
    return figures


def both_ways(figures: dict[str, Any]) -> bool:
    return bool(
        figures["bytesSent"] > 0
        and figures["audioBytesReceived"] > 0
        and figures["videoBytesReceived"] > 0
    )


def open_windows(make_context: Callable[[], BrowserContext], count: int) -> tuple[list[Page], str]:
    """`count` windows of one new console user with a new resource (separate contexts)."""
    username = unique("calls")
    first = make_context().new_page()
    sign_up(first, username)
    slug = create_resource(first, unique("Calls Test"))
    pages = [first]
    for _ in range(count - 1):
        page = make_context().new_page()
        sign_in(page, username, PASSWORD)
        pages.append(page)
    for page in pages:
        page.on("dialog", lambda dialog: dialog.accept())
    return pages, slug


@pytest.fixture
def windows(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> Callable[[int], tuple[list[Page], str]]:
    return lambda count: open_windows(new_context, count)


@pytest.fixture(scope="module")
def sfu_spool() -> Iterator[LiveSpool]:
    """A `manage.py serve` whose group calls go through Janus."""
    require_janus()
    with run_janus() as janus:
        live, cleanups = start_spool({"SPOOL_JANUS_URL": janus.url})
        try:
            yield live
        finally:
            stop_spool(live, cleanups)


@pytest.fixture(scope="module")
def mesh_spool() -> Iterator[LiveSpool]:
    """A `manage.py serve` whose group calls are a mesh, Janus installed or not."""
    live, cleanups = start_spool({"SPOOL_GROUP_CALLS": "mesh"})
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


def windows_of(
    browser: Browser, live: LiveSpool
) -> Iterator[Callable[[int], tuple[list[Page], str]]]:
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800}, base_url=live.http_url
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    try:
        yield lambda count: open_windows(make, count)
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def sfu_windows(
    browser: Browser, sfu_spool: LiveSpool
) -> Iterator[Callable[[int], tuple[list[Page], str]]]:
    yield from windows_of(browser, sfu_spool)


@pytest.fixture
def mesh_windows(
    browser: Browser, mesh_spool: LiveSpool
) -> Iterator[Callable[[int], tuple[list[Page], str]]]:
    yield from windows_of(browser, mesh_spool)


def connect_try_calling(page: Page, slug: str) -> str:
    """Open Try calling as a new identity; returns its raw id."""
    page.goto(f"/resources/{slug}/calls/try/")
    page.locator("#call-connect").get_by_role("button", name="Connect").click()
    expect(page.locator("#agent-status")).to_have_text("Ready for calls")
    expect(page.locator("#camera-select option")).not_to_have_count(0)
    return str(page.locator("#my-id").input_value())


def test_two_windows_make_a_video_call(
    windows: Callable[[int], tuple[list[Page], str]],
) -> None:
    # given Alice and Bob on Try calling, each a new identity
    (alice, bob), slug = windows(2)
    alice_id = connect_try_calling(alice, slug)
    bob_id = connect_try_calling(bob, slug)
    assert alice_id != bob_id
    shot(alice, "00-ready")

    # when Alice makes a video call to Bob
    form = alice.locator("#place-call")
    form.locator("input[name=callee]").fill(bob_id)
    form.get_by_role("button", name="Video call").click()

    # then it rings at Bob's, and Alice sees it ringing
    expect(bob.locator("#incoming")).to_be_visible()
    expect(bob.locator("#incoming-kind")).to_have_text("Incoming video call")
    expect(bob.locator("#incoming-from")).to_contain_text(alice_id)
    expect(alice.locator("#call-state")).to_have_text("Ringing")
    shot(bob, "01-ringing")

    # when Bob accepts with video, both are connected
    bob.locator("#accept-video").click()
    for page in (alice, bob):
        expect(page.locator("#call-state")).to_have_text("Connected")
    expect(bob.locator("#incoming")).to_be_hidden()

    # and audio and video flow both ways
    for page in (alice, bob):
        figures = wait_for_media(page, both_ways)
        assert figures["bytesReceived"] > 0 and len(figures["peers"]) == 1
    for page in (alice, bob):
        expect(page.locator("#remote-video")).to_be_visible()
    alice.wait_for_timeout(500)  # a few frames painted for the screenshots
    shot(alice, "02-alice-connected")
    shot(bob, "03-bob-connected")

    # when Bob mutes, Alice sees it
    bob.locator("#mute").click()
    expect(bob.locator("#mute")).to_have_text("Unmute")
    expect(alice.locator("#remote-muted")).to_be_visible()
    assert alice.evaluate("() => window.spoolCall.remoteParticipants[0].isMuted") is True
    shot(alice, "04-bob-muted")

    # when Bob turns his camera off, Alice's remote video goes
    bob.locator("#camera").click()
    expect(bob.locator("#camera")).to_have_text("Start camera")
    expect(alice.locator("#remote-placeholder")).to_have_text("No video")
    expect(alice.locator("#remote-video")).to_be_hidden()

    # and back on, without a new negotiation: the same peer connection carries it
    bob.locator("#camera").click()
    expect(alice.locator("#remote-video")).to_be_visible()
    before = stats(alice)["videoBytesReceived"]
    wait_for_media(alice, lambda figures: figures["videoBytesReceived"] > before)

    # when Alice hangs up, both calls end normally
    alice.locator("#hangup").click()
    for page in (alice, bob):
        expect(page.locator("#call-state")).to_have_text(re.compile(r"^Disconnected · code 0\b"))
    shot(bob, "05-ended")


def test_a_call_declined_or_cancelled_ends_with_its_code(
    windows: Callable[[int], tuple[list[Page], str]],
) -> None:
    # given two identities on Try calling
    (alice, bob), slug = windows(2)
    connect_try_calling(alice, slug)
    bob_id = connect_try_calling(bob, slug)
    form = alice.locator("#place-call")
    form.locator("input[name=callee]").fill(bob_id)

    # when Bob declines an audio call
    form.get_by_role("button", name="Audio call").click()
    expect(bob.locator("#incoming-kind")).to_have_text("Incoming call")
    bob.locator("#decline").click()

    # then Alice's call ends with 603, and Bob's banner goes
    expect(alice.locator("#call-state")).to_have_text("Disconnected · code 603 (declined)")
    expect(bob.locator("#incoming")).to_be_hidden()

    # when Alice calls again and hangs up while it rings
    form.get_by_role("button", name="Audio call").click()
    expect(bob.locator("#incoming")).to_be_visible()
    expect(alice.locator("#call-state")).to_have_text("Ringing")
    alice.locator("#hangup").click()

    # then it is cancelled (487) and stops ringing at Bob's
    expect(alice.locator("#call-state")).to_have_text("Disconnected · code 487 (cancelled)")
    expect(bob.locator("#incoming")).to_be_hidden()


def join_group(page: Page, slug: str, group_id: str, *, video: bool = True) -> None:
    """Open Group call as a new identity and join `group_id`."""
    page.goto(f"/resources/{slug}/calls/group/?group={group_id}")
    form = page.locator("#join-form")
    expect(form.locator("input[name=group_id]")).to_have_value(group_id)
    form.locator("input[name=video]").set_checked(video)
    form.get_by_role("button", name="Join call").click()
    expect(page.locator("#call-state")).to_have_text("Connected")


def remote_tiles(page: Page) -> Any:
    return page.locator("#tiles .call-tile.remote")


def from_everyone(others: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Stats that show audio and video received from each of `others` (a peer connection each:
    to them in a mesh, from the SFU for them through Janus)."""

    def ok(figures: dict[str, Any]) -> bool:
        receiving = {
            peer["participant"]
            for peer in figures["peers"]
            if peer["audioBytesReceived"] > 0 and peer["videoBytesReceived"] > 0
        }
        return figures["bytesSent"] > 0 and others <= receiving

    return ok


def three_in_a_group_call(pages: list[Page], slug: str, topology: str, shots: str) -> None:
    # given three windows that join the same group id, the third with its camera off
    group_id = str(uuid.uuid4())
    join_group(pages[0], slug, group_id)
    shot(pages[0], f"{shots}0-group-alone")
    join_group(pages[1], slug, group_id)
    join_group(pages[2], slug, group_id, video=False)
    raw_ids = [
        str(page.evaluate("() => window.spoolCallAgent.identifier.communicationUserId"))
        for page in pages
    ]
    third = f'#tiles .call-tile.remote[data-raw-id="{raw_ids[2]}"]'

    # then each sees the two others' tiles, the third's without video
    for page in pages:
        expect(remote_tiles(page)).to_have_count(2)
        expect(page.locator("#participant-count")).to_have_text("3 participants")
        assert page.evaluate("() => window.spoolCall.topology") == topology
    for page in pages[:2]:
        expect(page.locator(f"{third} .video-placeholder")).to_have_text("Camera off")
        expect(page.locator(f"{third} video")).to_have_count(0)

    # when the third turns its camera on (no renegotiation: its video was negotiated at the start)
    pages[2].locator("#camera").click()
    expect(pages[2].locator("#camera")).to_have_text("Stop camera")

    # then everyone receives audio and video from both others
    for page, me in zip(pages, raw_ids, strict=True):
        wait_for_media(page, from_everyone(set(raw_ids) - {me}))
    for page in pages:
        expect(remote_tiles(page).locator("video")).to_have_count(2)
    pages[0].wait_for_timeout(500)
    shot(pages[0], f"{shots}1-group-three")

    # when the third mutes, the others see the badge on its tile
    pages[2].locator("#mute").click()
    for page in pages[:2]:
        tile = page.locator(f'#tiles .call-tile.remote[data-raw-id="{raw_ids[2]}"]')
        expect(tile.locator(".muted-badge")).to_be_visible()

    # when the third leaves, the others are left with one tile each
    pages[2].locator("#leave").click()
    expect(pages[2].locator("#call-state")).to_have_text(re.compile(r"^Disconnected · code 0\b"))
    expect(pages[2].locator("#group-join")).to_be_visible()
    for page, me in zip(pages[:2], raw_ids, strict=False):
        expect(remote_tiles(page)).to_have_count(1)
        expect(page.locator("#participant-count")).to_have_text("2 participants")
        peers = {peer["participant"] for peer in stats(page)["peers"] if peer["participant"]}
        assert peers == set(raw_ids[:2]) - {me}
    shot(pages[0], f"{shots}2-group-two")
    shot(pages[2], f"{shots}3-group-left")


def test_three_windows_in_a_mesh_group_call(
    mesh_windows: Callable[[int], tuple[list[Page], str]],
) -> None:
    pages, slug = mesh_windows(3)
    three_in_a_group_call(pages, slug, "mesh", "1")


def test_three_windows_in_a_group_call_through_janus(
    sfu_windows: Callable[[int], tuple[list[Page], str]],
) -> None:
    pages, slug = sfu_windows(3)
    three_in_a_group_call(pages, slug, "sfu", "2")
    # each sends once (to Janus), whoever is in the call
    assert [peer["peer"] for peer in stats(pages[0])["peers"]].count("sfu") == 1
