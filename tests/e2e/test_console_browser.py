"""The console in a real browser: headless Debian Chromium driven by Playwright against a live `manage.py serve`.

Screenshots of each major step land in tests/screenshots/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import base64
import email
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.conftest import LiveSpool

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "purple monkey dishwasher 42"


# --- Helpers ----------------------------------------------------------------------------
def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def messages(page: Page) -> str:
    return str(page.locator(".messages").inner_text()) if page.locator(".messages").count() else ""


def sign_up(page: Page, username: str, password: str = PASSWORD, shot: str | None = None) -> None:
    """Signs up as `username` <username@example.com>, then follows the mailed link: signed in."""
    page.goto("/signup/")
    assert page.locator("h1").inner_text() == "Create your Spool account"
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/signup/sent/")
    assert page.locator("h1").inner_text() == "Check your email"
    assert page.locator(".sent-to").inner_text() == f"{username}@example.com"
    if shot:
        screenshot(page, shot.replace(".png", "-sent.png"))
    page.goto(mailed_link(f"{username}@example.com", "/signup/confirm/"))
    assert page.locator("h1").inner_text() == "Confirm your Spool account"
    assert page.locator(".username").inner_text() == username
    if shot:
        screenshot(page, shot.replace(".png", "-confirm.png"))
    page.get_by_role("button", name="Confirm and sign in").click()
    page.wait_for_url("**/resources/")
    assert f"Welcome, {username}." in messages(page)
    assert page.locator(".topbar .who").inner_text() == username


def mailed_link(address: str, path: str, timeout: float = 20) -> str:
    """The link under `path` in the newest mail to `address` that a live server wrote.

    Live servers write mail as files in their data dir's mail/ (no EMAIL_HOST), and their
    worker sends sign-up mail, so it may take a moment. Every test's addresses are unique, so
    the mail folders of all live servers (data dirs `spool-e2e-*` in the temp dir, made by
    tests/conftest.py start_spool) hold one answer, whichever server the page is on.
    """
    deadline = time.monotonic() + timeout
    while True:
        links = [
            link
            for message in _mails_to(address)
            for link in re.findall(rf"https?://[^/\s]+{re.escape(path)}\S+/", message)
        ]
        if links:
            return links[-1]
        assert time.monotonic() < deadline, f"no mail to {address} with a {path} link"
        time.sleep(0.2)


def _mails_to(address: str) -> list[str]:
    """Bodies of the mails to `address` in the live servers' mail folders, oldest first."""
    files = sorted(
        Path(tempfile.gettempdir()).glob("spool-e2e-*/mail/*"), key=lambda f: f.stat().st_mtime
    )
    bodies = []
    for file in files:
        # The file backend appends each message to its connection's file, then a line of dashes.
        for raw in file.read_text(errors="replace").split("\n" + "-" * 79 + "\n"):
            message = email.message_from_string(raw.strip())
            if message["To"] == address and not message.is_multipart():
                payload = message.get_payload(decode=True)
                if isinstance(payload, bytes):
                    bodies.append(payload.decode(errors="replace"))
    return bodies


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/resources/")
    assert page.locator(".topbar .who").inner_text() == username


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    assert page.locator(".topbar .who").count() == 0


def create_resource(page: Page, name: str) -> str:
    """Creates a resource from the resource list; returns its slug (from the overview page's URL)."""
    page.goto("/resources/")
    page.fill("input[name=name]", name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/resources/[\w-]+/$"))
    assert f"Resource {name} is ready." in messages(page)
    match = re.search(r"/resources/([\w-]+)/$", page.url)
    assert match
    return match.group(1)


def jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    assert len(parts) == 3, token
    payload = parts[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def newest_reset_link(mail_dir: Path) -> str:
    mails = sorted(mail_dir.glob("*"), key=lambda path: path.stat().st_mtime)
    assert mails, f"no mail in {mail_dir}"
    links = re.findall(r"https?://\S+/reset/\S+/", mails[-1].read_text())
    assert links, mails[-1].read_text()
    return str(links[-1])


def submit(page: Page, button: Locator) -> None:
    """Clicks a form's button and waits for the page it leads to (it may have the same URL)."""
    with page.expect_navigation():
        button.click()


def identity_row(page: Page, raw_id: str) -> Locator:
    return page.locator("table.identities tbody tr", has_text=raw_id)


# --- Tests ------------------------------------------------------------------------------
def test_sign_up_create_resource_keys_identities_and_password_reset(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a new visitor
    context = new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_spool.http_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    username = unique("browser-")

    # when they sign up
    sign_up(page, username, shot="01-signup.png")

    # then they land on an empty resource list
    assert page.locator("h1").inner_text() == "Communication resources"
    assert "No resources yet" in page.locator(".card", has_text="Your resources").inner_text()

    # when they create a resource
    name = unique("Browser Test ")
    slug = create_resource(page, name)

    # then the overview shows its own origin as the endpoint (a port of its own), the path
    # form beside it, and their role
    endpoint = page.locator("#endpoint").input_value()
    assert endpoint.startswith("https://127.0.0.1:") and endpoint.endswith("/")
    assert urlsplit(endpoint).port != live_spool.https_port and urlsplit(endpoint).path == "/"
    assert f"{live_spool.https_url}/r/{slug}/" in page.locator(".essentials").inner_text()
    assert "Owner" in page.locator(".essentials").inner_text()
    assert page.locator(".sidebar .resource-name").inner_text() == name
    screenshot(page, "03-overview.png")

    # and the resource list links to it
    page.goto("/resources/")
    assert page.locator("table a", has_text=name).count() == 1
    assert endpoint in page.locator("table").inner_text()
    screenshot(page, "02-resources.png")

    # when they open the Keys page
    page.goto(f"/resources/{slug}/")
    page.locator(".sidebar").get_by_role("link", name="Keys").click()
    page.wait_for_url(f"**/resources/{slug}/keys/")

    # then the primary connection string points at the endpoint with a key
    connection_string = page.locator("#primary-connection-string").input_value()
    assert connection_string.startswith(f"endpoint={endpoint};")
    assert connection_string.startswith("endpoint=https://")
    assert "accesskey=" in connection_string
    assert page.locator("#primary-connection-string").get_attribute("type") == "password"

    # when they copy it
    copy = page.locator(".copyfield", has=page.locator("#primary-connection-string")).locator(
        "button[data-copy]"
    )
    assert copy.inner_text() == "Copy"
    copy.click()

    # then the button confirms and the clipboard holds the connection string
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == connection_string
    screenshot(page, "04-keys.png")

    # when they generate an identity with chat+voip for 1 hour
    page.locator(".sidebar").get_by_role("link", name="Identities & user access tokens").click()
    page.wait_for_url(f"**/resources/{slug}/identities/")
    assert "No identities yet." in page.locator(".card", has_text="Identities").last.inner_text()
    form = page.locator("#create-identity")
    for scope in ("chat", "voip"):
        form.locator(f"input[name=scopes][value={scope}]").check()
    for extra in form.locator("input[name=scopes]").all():
        if extra.get_attribute("value") not in ("chat", "voip"):
            extra.uncheck()
    form.locator("select[name=expires]").select_option(label="1 hour")
    submit(page, form.get_by_role("button", name="Generate"))

    # then the token is shown once, as a JWT for that identity lasting an hour
    card = page.locator("#issued")
    assert card.locator("h2").inner_text() == "User access token issued"
    raw_id = page.locator("#issued-identity").input_value()
    token = page.locator("#issued-token").input_value()
    claims = jwt_claims(token)
    assert raw_id.startswith("8:acs:")
    assert claims["sub"] == raw_id
    assert claims["sub"].startswith("8:acs:")
    assert claims["exp"] - claims["iat"] == 3600
    assert "chat, voip" in card.inner_text()

    # and the identities table lists it with a last-token time
    row = identity_row(page, raw_id)
    assert row.count() == 1
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row.locator("td").nth(2).inner_text())
    screenshot(page, "05-identities-token.png")

    # when they revoke its tokens (accepting the confirmation)
    submit(page, row.get_by_role("button", name="Revoke tokens"))

    # then the page says so and the row shows the revocation
    assert f"Every token of {raw_id} issued so far is now refused." in messages(page)
    assert "revoked" in identity_row(page, raw_id).inner_text()
    assert page.locator("#issued").count() == 0  # the token is never shown again
    screenshot(page, "05b-identities-revoked.png")

    # when they delete it
    submit(page, identity_row(page, raw_id).get_by_role("button", name="Delete"))

    # then it is gone
    assert f"Identity {raw_id} deleted." in messages(page)
    assert identity_row(page, raw_id).count() == 0
    assert "No identities yet." in page.content()

    # when they sign out and back in
    sign_out(page)
    sign_in(page, username, PASSWORD)

    # then their resource is still there
    assert page.locator("table a", has_text=name).count() == 1

    # when they sign out and ask for a password reset
    sign_out(page)
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url("**/password_reset/")
    page.fill("input[name=email]", f"{username}@example.com")
    page.get_by_role("button", name="Send reset link").click()

    # then they are told to check their email, and a mail with a reset link was written
    page.wait_for_url("**/password_reset/done/")
    assert page.locator("h1").inner_text() == "Check your email"
    screenshot(page, "09-password-reset-sent.png")
    link = newest_reset_link(live_spool.data_dir / "mail")
    assert link.startswith(f"{live_spool.http_url}/reset/")

    # when they follow the link and choose a new password
    page.goto(link)
    assert page.locator("h1").inner_text() == "Choose a new password"
    screenshot(page, "10-password-reset-confirm.png")
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()

    # then the password is changed and only the new one signs in
    page.wait_for_url("**/reset/done/")
    assert page.locator("h1").inner_text() == "Password changed"
    screenshot(page, "11-password-changed.png")
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    submit(page, page.get_by_role("button", name="Sign in"))
    assert "/login/" in page.url
    assert (
        "Please enter a correct username and password"
        in page.locator(".errorlist.nonfield").inner_text()
    )
    screenshot(page, "12-login-wrong-password.png")
    sign_in(page, username, NEW_PASSWORD)


def test_reader_cannot_see_keys(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given an owner with a resource, and a second user who signed up separately
    owner = new_context().new_page()
    owner.on("dialog", lambda dialog: dialog.accept())
    owner_name, reader_name = unique("owner-"), unique("reader-")
    sign_up(owner, owner_name)
    name = unique("Shared ")
    slug = create_resource(owner, name)
    reader = new_context().new_page()
    sign_up(reader, reader_name)

    # and the second user cannot open the resource yet
    response = reader.goto(f"/resources/{slug}/")
    assert response is not None and response.status in (403, 404)

    # when the owner adds them as Reader on the Access control page
    owner.locator(".sidebar").get_by_role("link", name="Access control").click()
    owner.wait_for_url(f"**/resources/{slug}/access/")
    add = owner.locator("form", has=owner.locator("input[name=action][value=add]"))
    add.locator("input[name=user]").fill(reader_name)
    add.locator("select[name=role]").select_option("reader")
    submit(owner, add.get_by_role("button", name="Add"))

    # then the page confirms it and lists both members
    assert f"{reader_name} is now Reader." in messages(owner)
    members = owner.locator("table tbody tr")
    assert members.count() == 2
    reader_row = owner.locator("table tbody tr", has_text=reader_name)
    assert reader_row.locator("select[name=role]").input_value() == "reader"
    screenshot(owner, "06-access.png")

    # when the reader opens the resource
    response = reader.goto(f"/resources/{slug}/")

    # then they see it, as Reader, without a Keys link or owner-only actions
    assert response is not None and response.status == 200
    assert reader.locator(".sidebar .resource-kind").inner_text().endswith("Reader")
    sidebar = reader.locator(".sidebar nav")
    assert sidebar.get_by_role("link", name="Overview").count() == 1
    assert sidebar.get_by_role("link", name="Keys").count() == 0
    assert reader.get_by_role("button", name="Rename").count() == 0
    assert reader.get_by_role("link", name="Delete…").count() == 0
    screenshot(reader, "07-reader.png")

    # and the keys page refuses them
    response = reader.goto(f"/resources/{slug}/keys/")
    assert response is not None and response.status == 403
    assert reader.locator("h1").inner_text() == "Not allowed"
    assert "accesskey=" not in reader.content()
    screenshot(reader, "08-reader-keys-forbidden.png")

    # and the identities page shows no generate form
    reader.goto(f"/resources/{slug}/identities/")
    assert reader.locator("#create-identity").count() == 0
