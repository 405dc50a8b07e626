"""The console's room editor in a real browser: an owner creates a room with a participant,
adds another through the identity picker, is refused a validity too long (the form keeps it),
and deletes the room through its confirm step; each page fits a wide window and a phone's.

Screenshots land in /tmp for a human to look at, at 1400 px and (with -390) a phone's width:
room-create (the list's create form), room-editor (the room's page), room-editor-refused (its
validity form after a refusal) and room-delete (the confirm step); room-picker.png shows the
identity picker's suggestion.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import create_resource, messages, sign_up, submit, unique
from tests.e2e.test_console_layout_browser import Watch, fit

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SHOTS = Path(tempfile.gettempdir())
WIDE, NARROW = 1400, 390


def new_identity(page: Page, slug: str) -> str:
    """Generates an identity on the Identities page; its raw id."""
    page.goto(f"/resources/{slug}/identities/")
    before = page.locator("table.identities code.rawid").all_inner_texts()
    submit(page, page.locator("#create-identity").get_by_role("button", name="Generate"))
    after = page.locator("table.identities code.rawid").all_inner_texts()
    (raw_id,) = set(after) - set(before)
    return raw_id


def shoot(page: Page, name: str) -> None:
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        measured = fit(page)
        assert measured["page"] <= 0, f"{name} at {width} px scrolls sideways: {measured}"
        assert width == NARROW or not measured["cards"], f"{name}: cards overflow: {measured}"
        suffix = "" if width == WIDE else f"-{width}"
        page.screenshot(path=str(SHOTS / f"{name}{suffix}.png"), full_page=True)
    page.set_viewport_size({"width": WIDE, "height": 900})


def test_an_owner_creates_and_edits_a_room(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a signed-in owner of a resource with two identities
    page = new_context().new_page()
    page.set_viewport_size({"width": WIDE, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())
    watch = Watch(page)
    sign_up(page, unique("rooms-"))
    slug = create_resource(page, unique("Rooms check "))
    presenter, attendee = new_identity(page, slug), new_identity(page, slug)

    # when they create a room on the Rooms tab with dial-out and one participant
    page.goto(f"/resources/{slug}/calls/rooms/")
    form = page.locator("#create-room form")
    form.locator("input[name=pstn_dial_out]").check()
    form.locator("input[name=participant]").first.fill(presenter)
    form.locator("select[name=role]").first.select_option("Presenter")
    shoot(page, "room-create")
    submit(page, form.get_by_role("button", name="Create room"))

    # then they are on the room's page, which says so
    page.wait_for_url(re.compile(rf"/resources/{slug}/calls/rooms/[\w-]+/$"))
    room_id = page.url.rstrip("/").rsplit("/", 1)[1]
    assert f"Room {room_id} created." in messages(page)
    assert "Enabled" in page.locator("#room dl.facts").inner_text()
    assert page.locator(f'tr[data-participant="{presenter}"] select').input_value() == "Presenter"

    # when they add the second identity as a Consumer, found by the start of its id
    adding = page.locator("#add-participant")
    field = adding.locator("input[name=identity]")
    field.evaluate("input => input.scrollIntoView({ block: 'center' })")  # room for the list
    field.fill(attendee.rsplit("_", 1)[1][:8])
    suggestion = page.locator(f'.picker-option[title="{attendee}"]')
    suggestion.wait_for()
    page.screenshot(path=str(SHOTS / "room-picker.png"))
    suggestion.click()
    assert field.input_value() == attendee
    adding.locator("select[name=role]").select_option("Consumer")
    submit(page, adding.get_by_role("button", name="Add"))

    # then it is listed with its role
    assert f"{attendee} takes part as Consumer." in messages(page)
    row = page.locator(f'tr[data-participant="{attendee}"]')
    assert row.locator("select").input_value() == "Consumer"
    # and the page, with its forms, fits both windows
    shoot(page, "room-editor")

    # when a validity too long is saved, the form keeps it and says why
    validity = page.locator("#room-validity")
    validity.locator("input[name=valid_until]").fill("2099-01-01T10:00")
    submit(page, validity.get_by_role("button", name="Save"))
    assert "at most 180 days" in messages(page)
    assert validity.locator("input[name=valid_until]").input_value() == "2099-01-01T10:00"

    shoot(page, "room-editor-refused")

    # and no page logged an error or reached another host
    errors, foreign = watch.take()
    assert not errors and not foreign, (errors, foreign)

    # when the room is deleted through its confirm step
    page.get_by_role("link", name="Delete room…").click()
    page.wait_for_url(re.compile(r"/delete/$"))
    shoot(page, "room-delete")
    submit(page, page.get_by_role("button", name="Delete room"))

    # then the list says so, without it
    assert f"Room {room_id} deleted." in messages(page)
    assert page.locator(f'tr[data-room="{room_id}"]').count() == 0
