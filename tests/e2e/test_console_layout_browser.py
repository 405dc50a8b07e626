"""The console's layout in a real browser: every page a resource owner reaches, the API docs,
the sign-in page and the staff pages, in a wide window and a phone's. Each fits its window
(no sideways page scroll), names itself in its title, logs no error, and loads nothing from
outside this machine.

Screenshots of a few pages at both widths, and in dark mode, land in /tmp/layout-shots/ for a
human to look at.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.communication.chat import ChatClient, ChatThreadClient, CommunicationTokenCredential
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.rooms import RoomsClient
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, WebSocket

from tests.conftest import LiveSpool, endpoint_of, wait_until_listening
from tests.e2e.test_console_browser import create_resource, sign_up, submit, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SHOTS = Path(tempfile.gettempdir()) / "layout-shots"
WIDE, NARROW = 1400, 390
# The pages worth a look, by the name their screenshots take.
SHOT_PAGES = {
    "overview",
    "metrics",
    "error-log",
    "staff-metrics",
    "numbers",
    "events",
    "request-log",
    "sms-messages",
    "room",
    "chat-thread",
}
HANDSET = "+447700900123"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# ReDoc's sidebar always shows Redocly's logo from their CDN; the page's Content-Security-Policy
# refuses it (templates/drf_spectacular/redoc.html), and Chromium says so.
REFUSED_REDOCLY_LOGO = "Loading the image 'https://cdn.redoc.ly/"


class Watch:
    """What a page did that it should not: errors it logged, and requests to other hosts."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("request", self._request)
        page.on("requestfailed", self._refused)
        page.on("websocket", self._websocket)

    def _console(self, message: ConsoleMessage) -> None:
        refused_logo = message.text.startswith(REFUSED_REDOCLY_LOGO)
        if message.type == "error" and not refused_logo:
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def _request(self, request: Request) -> None:
        self._check(request.url)

    def _refused(self, request: Request) -> None:
        # Refused by the page's Content-Security-Policy: it never left the browser.
        if request.failure == "csp" and request.url in self.foreign:
            self.foreign.remove(request.url)

    def _websocket(self, socket: WebSocket) -> None:
        self._check(socket.url)

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("data", "blob") and parts.hostname not in LOCAL_HOSTS:
            self.foreign.append(url)

    def take(self) -> tuple[list[str], list[str]]:
        taken = self.errors, self.foreign
        self.errors, self.foreign = [], []
        return taken


def fit(page: Page) -> dict[str, Any]:
    """How far the page, and each card, is wider than what shows it."""
    return dict(
        page.evaluate(
            """() => ({
                page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
                window: document.documentElement.scrollWidth - window.innerWidth,
                cards: [...document.querySelectorAll('.card')]
                    .filter((card) => card.scrollWidth > card.clientWidth + 1)
                    .map((card) => (card.id || card.querySelector('h2')?.textContent || card.className)
                        + ': ' + (card.scrollWidth - card.clientWidth) + ' px'),
            })"""
        )
    )


# --- Seeding: something on each page, so tables have rows --------------------------------
def connection_string_of(page: Page, slug: str) -> str:
    page.goto(f"/resources/{slug}/keys/")
    connection = page.locator("#primary-connection-string").input_value()
    wait_until_listening(endpoint_of(connection))
    return connection


def seed_sdk_traffic(live: LiveSpool, connection: str) -> tuple[str, str]:
    """Identities, a chat thread and a room, through the ACS SDKs: rows on those pages and
    in the request log. Returns the thread's id and the room's."""
    identity = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    _, token = identity.create_user_and_token([CommunicationTokenScope.CHAT])
    identity.create_user_and_token([CommunicationTokenScope.VOIP])
    chat = ChatClient(
        endpoint_of(connection),
        CommunicationTokenCredential(token.token),
        connection_verify=live.cert,
    )
    thread = chat.create_chat_thread(
        "Layout check: a topic long enough to need a second line on a phone"
    ).chat_thread
    assert thread is not None
    ChatThreadClient(
        endpoint_of(connection),
        CommunicationTokenCredential(token.token),
        thread.id,
        connection_verify=live.cert,
    ).send_message("Layout check: " + "long " * 60)
    rooms = RoomsClient.from_connection_string(connection, connection_verify=live.cert)
    return thread.id, rooms.create_room().id


def buy_a_number(page: Page, slug: str) -> tuple[str, str]:
    """Searches for a number and buys it: (the search's page, the number)."""
    page.goto(f"/resources/{slug}/numbers/")
    form = page.locator("#search-form")
    form.locator("select[name=type]").select_option("geographic")
    submit(page, form.get_by_role("button", name="Search"))
    search = urlsplit(page.url).path
    number = page.locator("#search-result tbody td code").first.inner_text()
    submit(page, page.get_by_role("button", name="Buy 1 number"))
    submit(page, page.get_by_role("button", name="Confirm purchase"))
    page.wait_for_selector('#operation[data-status="succeeded"]', timeout=20_000)
    return search, number


def send_sms(page: Page, slug: str, number: str) -> None:
    page.goto(f"/resources/{slug}/sms/")
    form = page.locator("#send-form")
    form.locator("select[name=from]").select_option(number)
    form.locator("input[name=to]").fill(HANDSET)
    form.locator("textarea[name=message]").fill("Layout check: hello from Spool")
    form.locator("input[name=delivery_report]").check()
    submit(page, form.get_by_role("button", name="Send"))
    assert "Accepted" in page.locator("#send-results").inner_text()


def subscribe_to_events(page: Page, slug: str) -> None:
    # An endpoint that refuses connections: the subscription fails validation, as it would.
    page.goto(f"/resources/{slug}/events/")
    form = page.locator("#create-subscription form")
    form.locator("input[name=name]").fill("layout-webhook")
    form.locator("input[name=endpoint_url]").fill(
        "http://127.0.0.1:9/webhooks/spool/communication-events/with-a-long-path"
    )
    submit(page, form.get_by_role("button", name="Create"))
    assert page.locator('tr[data-subscription="layout-webhook"]').count() == 1


def make_staff(live: LiveSpool, username: str) -> None:
    live.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        f"User.objects.filter(username='{username}').update(is_staff=True, is_superuser=True)",
    )


# --- The pages ----------------------------------------------------------------------------
def owner_pages(
    slug: str, resource: str, search: str, thread: str, room: str
) -> list[tuple[str, str, str]]:
    """(screenshot name, path, title) of every page a resource's owner reaches."""
    base = f"/resources/{slug}"
    sections = [
        ("overview", "/", "Overview"),
        ("metrics", "/metrics/", "Metrics"),
        ("error-log", "/errors/", "Error log"),
        ("keys", "/keys/", "Keys"),
        ("access", "/access/", "Access control"),
        ("identities", "/identities/", "Identities & user access tokens"),
        ("numbers", "/numbers/", "Phone numbers"),
        ("sip", "/sip/", "SIP trunks"),
        ("sms", "/sms/", "SMS · Send"),
        ("sms-messages", "/sms/messages/", "SMS · Messages"),
        (
            "sms-handsets",
            f"/sms/handsets/?handset={HANDSET.replace('+', '%2B')}",
            "SMS · Virtual handsets",
        ),
        ("sms-opt-outs", "/sms/opt-outs/", "SMS · Opt-outs"),
        ("chat", "/chat/", "Chat · Threads"),
        ("chat-thread", f"/chat/threads/{thread}/", "Chat · Thread"),
        ("chat-try", "/chat/try/", "Chat · Try chat"),
        ("calls", "/calls/", "Calls · Call log"),
        ("rooms", "/calls/rooms/", "Calls · Rooms"),
        ("room", f"/calls/rooms/{room}/", "Calls · Room"),
        ("room-delete", f"/calls/rooms/{room}/delete/", "Calls · Delete room"),
        ("calls-try", "/calls/try/", "Calls · Try calling"),
        ("calls-group", "/calls/group/", "Calls · Group call"),
        ("calls-phones", "/calls/phones/", "Calls · Virtual phones"),
        ("automation", "/calls/automation/", "Calls · Automation"),
        ("recordings", "/calls/recordings/", "Calls · Recordings"),
        ("calls-ivr", "/calls/ivr/", "Calls · Try IVR"),
        ("events", "/events/", "Events"),
        ("request-log", "/logs/", "Request log"),
    ]
    return [
        ("resources", "/resources/", "Resources · Spool"),
        *[(name, base + path, f"{title} · {resource} · Spool") for name, path, title in sections],
        ("number-search", search, f"Phone numbers · search · {resource} · Spool"),
        ("api-docs", "/api/docs/", "API docs · Spool"),
        ("api-redoc", "/api/redoc/", "API reference · Spool"),
    ]


STAFF_PAGES = [
    ("staff-sip-trunks", "/staff/sip-trunks/", "SIP trunks · Spool"),
    ("staff-metrics", "/staff/metrics/", "Platform metrics · Spool"),
    ("staff-numbers", "/staff/numbers/import/", "Number inventory · Spool"),
]
SIGNED_OUT_PAGES = [("sign-in", "/login/", "Sign in · Spool")]


def visit(page: Page, path: str) -> None:
    page.goto(path)
    if page.locator("section.charts").count():
        # Charts fetch their data and draw after the page has loaded.
        page.wait_for_selector("figure.chart .uplot", timeout=10_000)
    if path.startswith("/api/"):
        # The docs draw themselves from the schema after the page has loaded.
        page.wait_for_selector(".swagger-ui .opblock, .redoc-wrap", timeout=20_000)
        page.wait_for_load_state("networkidle")


def check_pages(
    page: Page, watch: Watch, pages: list[tuple[str, str, str]], problems: list[str]
) -> None:
    """Visits each page at both widths; adds what is wrong to `problems`."""
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path, title in pages:
            visit(page, path)
            where = f"{path} at {width} px"
            if page.title() != title:
                problems.append(f"{where}: title {page.title()!r}, not {title!r}")
            measured = fit(page)
            if measured["page"] > 0 or measured["window"] > 0:
                problems.append(f"{where}: the page scrolls sideways by {measured['page']} px")
            if width == WIDE and measured["cards"]:
                problems.append(f"{where}: cards wider than themselves: {measured['cards']}")
            errors, foreign = watch.take()
            problems.extend(f"{where}: console error {error}" for error in errors)
            problems.extend(f"{where}: request to another host {url}" for url in foreign)
            if name in SHOT_PAGES:
                page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


# --- Test ---------------------------------------------------------------------------------
def test_every_console_page_fits_wide_and_narrow_windows(
    live_spool: LiveSpool, browser: Browser
) -> None:
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(
        viewport={"width": WIDE, "height": 900}, base_url=live_spool.http_url
    )
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        watch = Watch(page)

        # given a signed-in owner of a resource with something on each page
        live_spool.manage("seed_numbers", "--country", "US", "--count", "5")
        username = unique("layout")
        sign_up(page, username)
        resource = unique("Layout check ")
        slug = create_resource(page, resource)
        thread, room = seed_sdk_traffic(live_spool, connection_string_of(page, slug))
        search, number = buy_a_number(page, slug)
        send_sms(page, slug, number)
        subscribe_to_events(page, slug)
        watch.take()

        # when they visit every page, wide and narrow
        problems: list[str] = []
        check_pages(page, watch, owner_pages(slug, resource, search, thread, room), problems)

        # then each fits, names itself, logs no error and stays on this machine
        assert not problems, "\n".join(problems)

        # when a phone-sized window opens a resource page, its menu folds behind a button
        page.set_viewport_size({"width": NARROW, "height": 900})
        page.goto(f"/resources/{slug}/events/")
        toggle = page.get_by_role("button", name="Menu")
        menu = page.locator("#resource-nav")
        assert toggle.get_attribute("aria-expanded") == "false" and not menu.is_visible()
        page.screenshot(path=str(SHOTS / "menu-closed-390.png"))
        # that opens it in place, and its links lead on
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true" and menu.is_visible()
        page.screenshot(path=str(SHOTS / "menu-open-390.png"))
        menu.get_by_role("link", name="Phone numbers").click()
        page.wait_for_url(re.compile(rf"/resources/{slug}/numbers/$"))
        assert not page.get_by_role("link", name="Keys").is_visible()

        # and in dark mode the same pages read light on dark
        page.emulate_media(color_scheme="dark")
        for width in (WIDE, NARROW):
            page.set_viewport_size({"width": width, "height": 900})
            for name, path in [("overview", "/"), ("events", "/events/"), ("numbers", "/numbers/")]:
                page.goto(f"/resources/{slug}{path}")
                page.screenshot(path=str(SHOTS / f"{name}-{width}-dark.png"), full_page=True)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(14, 17, 22)", background
        page.emulate_media(color_scheme="light")

        # when the owner, not staff, opens a staff page, the console says no
        page.set_viewport_size({"width": WIDE, "height": 900})
        refused = page.goto("/staff/sip-trunks/")
        assert refused is not None and refused.status == 403
        assert page.locator("h1").inner_text() == "Not allowed"
        watch.take()  # the 403 is logged as a failed load

        # when they are made staff, the staff pages fit too
        make_staff(live_spool, username)
        check_pages(page, watch, STAFF_PAGES, problems)
        assert not problems, "\n".join(problems)

        # and signed out, so does the sign-in page
        context.clear_cookies()
        check_pages(page, watch, SIGNED_OUT_PAGES, problems)
        assert not problems, "\n".join(problems)
    finally:
        context.close()
