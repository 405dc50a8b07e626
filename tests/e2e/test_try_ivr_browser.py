"""Browser: Try IVR against a live `manage.py serve` with its media plane (Janus AudioBridge and
the media process, espeak-ng for the prompts, ffmpeg for the recording). The page calls the IVR
line through static/calling/spool-calling.js; audio from the bridge is checked by the bytes the
call's peer connection received (`window.spoolCall.getStats()`); key 1 is pressed on the page's
keypad; then the call's steps are on the Automation tab and its audio on Recordings.

Screenshots land in /tmp/ivr-*.png.
"""

from __future__ import annotations

import array
import io
import math
import re
import time
import wave
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, sign_up, unique
from tests.janus import require_janus

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MEDIA_START_SECONDS = 30.0  # for `serve`'s media process to mark itself alive
MEDIA_TIMEOUT = 20.0  # for audio to flow once the call is connected


def shot(page: Page, name: str) -> None:
    page.screenshot(path=f"/tmp/ivr-{name}.png", full_page=True)


def audio_received(page: Page) -> int:
    return int(page.evaluate("async () => (await window.spoolCall.getStats()).audioBytesReceived"))


def loudness(wav: bytes) -> float:
    """The RMS of a 16-bit WAV's samples (0 for silence; speech is in the hundreds or more)."""
    with wave.open(io.BytesIO(wav)) as audio:
        assert audio.getsampwidth() == 2
        samples = array.array("h", audio.readframes(audio.getnframes()))
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def wait_until(what: str, check: Any, timeout: float, page: Page) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(250)


def open_try_ivr(page: Page, slug: str) -> None:
    """Try IVR, once the media process says it is up (`serve` starts it beside the web)."""
    deadline = time.monotonic() + MEDIA_START_SECONDS
    while True:
        page.goto(f"/resources/{slug}/calls/ivr/")
        if page.locator("#media-unavailable").count() == 0:
            return
        assert time.monotonic() < deadline, "the media plane did not come up: see serve.log"
        page.wait_for_timeout(500)


@pytest.mark.timeout(180)
def test_call_the_ivr_press_1_and_find_the_recording(
    live_spool: LiveSpool, new_context: Any
) -> None:
    require_janus()
    # given a console user with a resource, on Try IVR
    context: BrowserContext = new_context()
    page = context.new_page()
    sign_up(page, unique("ivr"))
    slug = create_resource(page, unique("IVR Test"))
    open_try_ivr(page, slug)
    expect(page.locator("#keypad button")).to_have_count(12)
    shot(page, "00-try-ivr")

    # when the user calls the IVR
    page.locator("#ivr-call").click()

    # then the call connects, and audio from the bridge flows (the spoken menu)
    expect(page.locator("#call-state")).to_have_text("Connected", timeout=20_000)
    line = page.locator("#line-id").inner_text()
    assert line.startswith("8:acs:")
    first = [0]
    wait_until("audio from the IVR", lambda: audio_received(page) > 0, MEDIA_TIMEOUT, page)
    first[0] = audio_received(page)
    wait_until(
        "more audio from the IVR",
        lambda: audio_received(page) > first[0] + 1000,
        MEDIA_TIMEOUT,
        page,
    )
    expect(page.locator("#keypad button[data-key='1']")).to_be_enabled()

    # and the menu is running: the Automation tab shows the connection's recognize (in a
    # second window, so the call goes on)
    watcher = context.new_page()
    watcher.goto(f"/resources/{slug}/calls/automation/")
    expect(watcher.locator("tr.connection")).to_have_count(1)
    expect(watcher.locator("tr.connection")).to_contain_text("Built-in IVR")
    shot(watcher, "01b-automation")
    watcher.locator("tr.connection a").first.click()
    timeline = watcher.locator("#timeline")

    def menu_running() -> bool:
        watcher.reload()
        return bool(
            timeline.locator("tr.step-operation", has_text="Recognize")
            .locator(".state.running")
            .count()
        )

    wait_until("the menu's recognize to run", menu_running, MEDIA_TIMEOUT, watcher)
    page.wait_for_timeout(1500)  # part of the prompt, for the screenshot and the recording
    shot(page, "01-connected")

    # when the user presses 1
    page.locator("#keypad button[data-key='1']").click()
    expect(page.locator("#ivr-log")).to_contain_text("You pressed 1")

    # then the IVR speaks the greeting and hangs up: the call ends normally
    expect(page.locator("#call-state")).to_have_text(
        re.compile(r"^Disconnected · code 0\b"), timeout=60_000
    )
    shot(page, "02-ended")

    # and the timeline shows the key collected, the greeting played and the callbacks handled
    watcher.reload()
    expect(
        timeline.locator("tr.step-operation", has_text="Recognize").locator(".tones")
    ).to_have_text("one")
    expect(timeline.locator("tr.step-callback", has_text="RecognizeCompleted")).to_have_count(1)
    expect(timeline.locator("tr.step-callback", has_text="PlayCompleted")).to_have_count(1)
    expect(timeline.locator("tr.step-callback", has_text="CallDisconnected")).to_have_count(1)
    expect(timeline.locator("tr.step-callback .state.failed")).to_have_count(0)
    shot(watcher, "03-timeline")

    # and the recording appears on Recordings, with a player and a download
    watcher.goto(f"/resources/{slug}/calls/recordings/")

    def recording_ready() -> bool:
        watcher.reload()
        return watcher.locator("tr.recording.file-ready audio").count() == 1

    wait_until("the recording's file", recording_ready, 30, watcher)
    row = watcher.locator("tr.recording.file-ready")
    source = row.locator("audio").get_attribute("src")
    assert source
    whole = watcher.request.get(source)
    assert whole.status == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.body()[:4] == b"RIFF" and len(whole.body()) > 16_000  # more than a blip
    assert loudness(whole.body()) > 100, "the recording is silent"  # the IVR's voice is in it
    part = watcher.request.get(source, headers={"Range": "bytes=0-11"})
    assert part.status == 206 and part.body() == whole.body()[:12]
    # the player loads it (Chromium decodes the file and knows its length)
    duration = watcher.evaluate(
        """async () => {
            const audio = document.querySelector("tr.recording.file-ready audio");
            audio.preload = "auto";
            audio.load();
            await new Promise((done, fail) => {
                audio.addEventListener("loadedmetadata", done, { once: true });
                audio.addEventListener("error", () => fail(new Error("cannot play")), { once: true });
            });
            return audio.duration;
        }"""
    )
    assert duration > 1
    shot(watcher, "04-recordings")
