"""Browser: the identity picker on Try chat finds identities by their labels, with the keyboard
and the mouse, against a live `manage.py serve`. Screenshots of the Identities page and of the open
suggestions land in /tmp/identity-labels.png and /tmp/identity-picker.png."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, messages, sign_up, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_typing_part_of_a_label_picks_the_identity(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a resource with two labelled identities, made on the Identities page
    page = new_context().new_page()
    sign_up(page, unique("picker"))
    slug = create_resource(page, unique("Picker Test"))
    raw_ids = {}
    for label in ("Front desk", "Fred's phone"):
        page.goto(f"/resources/{slug}/identities/")
        form = page.locator("#create-identity")
        for scope in form.locator("input[name=scopes]").all():
            scope.uncheck()
        form.locator("input[name=label]").fill(label)
        with page.expect_navigation():  # post/redirect/get: the message is on the next page
            form.get_by_role("button", name="Generate").click()
        created = re.search(r"Identity (8:acs:\S+) \(“(.+)”\) created", messages(page))
        assert created and created.group(2) == label
        raw_ids[label] = created.group(1)
    page.screenshot(path="/tmp/identity-labels.png", full_page=True)

    # when part of a label is typed in Try chat's picker, and its suggestion taken by keyboard
    page.goto(f"/resources/{slug}/chat/try/")
    picker = page.locator("#chat-connect input[name=identity]")
    expect(picker).to_have_attribute("role", "combobox")
    picker.press_sequentially("fre", delay=30)
    options = page.get_by_role("option")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Fred's phone")
    expect(picker).to_have_attribute("aria-expanded", "true")
    expect(picker).to_have_accessible_name("Identity")  # the suggestions are not its name
    page.screenshot(path="/tmp/identity-picker.png")
    picker.press("ArrowDown")
    expect(options.first).to_have_attribute("aria-selected", "true")
    picker.press("Enter")

    # then its raw id lands in the input, and Try chat signs in as that identity
    expect(picker).to_have_value(raw_ids["Fred's phone"])
    expect(picker).to_have_attribute("aria-expanded", "false")
    page.get_by_role("button", name="Start chatting").click()
    expect(page.locator("#my-id")).to_have_value(raw_ids["Fred's phone"])

    # and the mouse picks too, in the new thread's participant field
    participant = page.locator("#new-thread input[name=participant]")
    participant.press_sequentially("desk", delay=30)
    page.get_by_role("option", name="Front desk").click()
    expect(participant).to_have_value(raw_ids["Front desk"])
