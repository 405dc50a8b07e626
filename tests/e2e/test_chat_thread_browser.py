"""Browser: the console's chat thread page for a thread made through the ACS Chat SDK, in a wide
window and a phone's. It fits (long unbroken text wraps; no sideways page scroll), a message's
markup is shown as text and never runs, and the page logs no error.

Screenshots: /tmp/chat-thread-1400.png and /tmp/chat-thread-390.png.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    CommunicationTokenCredential,
    CommunicationUserIdentifier,
)
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from playwright.sync_api import BrowserContext

from tests.conftest import LiveSpool, endpoint_of
from tests.e2e.test_console_browser import create_resource, sign_up, unique
from tests.e2e.test_console_layout_browser import NARROW, WIDE, connection_string_of, fit

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LONG_WORD = "x" * 400
ATTACK = '<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'


def seed_thread(live: LiveSpool, connection: str) -> str:
    """A thread through the SDK: plain, long, html and edited messages, a deleted one,
    metadata, a participant added and a new topic. Returns its id."""
    identities = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    alice, token = identities.create_user_and_token([CommunicationTokenScope.CHAT])
    bob, _ = identities.create_user_and_token([CommunicationTokenScope.CHAT])
    chat = ChatClient(
        endpoint_of(connection),
        CommunicationTokenCredential(token.token),
        connection_verify=live.cert,
    )
    created = chat.create_chat_thread(
        "Browser check: a topic long enough to need a second line on a phone screen",
        thread_participants=[
            ChatParticipant(
                identifier=CommunicationUserIdentifier(alice.properties["id"]),
                display_name="Alice Operator-Tester",
            ),
            ChatParticipant(
                identifier=CommunicationUserIdentifier(bob.properties["id"]), display_name="Bob"
            ),
        ],
    )
    # (The SDK passes only get_chat_thread_client's own keyword arguments on.)
    thread = chat.get_chat_thread_client(created.chat_thread.id, connection_verify=live.cert)
    thread.send_message("Hello Bob, this is a short plain text message.")
    thread.send_message(f"A long unbroken word: {LONG_WORD}", metadata={"ticket": LONG_WORD})
    thread.send_message(f"<p>Formatted</p>{ATTACK}", chat_message_type=ChatMessageType.HTML)
    edited = thread.send_message("Frist line\nsecond line")
    thread.update_message(edited.id, content="First line\nsecond line")
    gone = thread.send_message("This one is deleted")
    thread.delete_message(gone.id)
    carol, _ = identities.create_user_and_token([CommunicationTokenScope.CHAT])
    thread.add_participants(
        [ChatParticipant(identifier=CommunicationUserIdentifier(carol.properties["id"]))]
    )
    thread.update_topic("Browser check: a topic long enough to need a second line on a phone")
    return str(created.chat_thread.id)


def test_a_thread_page_fits_and_runs_no_markup(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given a signed-in owner of a resource with a thread
    page = new_context().new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_up(page, unique("thread"))
    slug = create_resource(page, unique("Thread check "))
    thread_id = seed_thread(live_spool, connection_string_of(page, slug))

    # when they open it from the thread list
    page.goto(f"/resources/{slug}/chat/")
    page.get_by_role("link", name="Browser check").click()
    page.wait_for_selector("#messages")

    # then it fits both widths, and the html message is its source text
    assert thread_id in page.locator("#thread").inner_text()
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        measured = fit(page)
        assert measured["page"] <= 0 and measured["window"] <= 0, (width, measured)
        assert not measured["cards"], (width, measured)
        page.screenshot(path=f"/tmp/chat-thread-{width}.png", full_page=True)
    html_body = page.locator("li.chat-entry.html .chat-body")
    assert html_body.inner_text() == f"<p>Formatted</p>{ATTACK}"
    assert page.locator("li.chat-entry img, li.chat-entry script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator("li.chat-entry.deleted").inner_text().count("This one is deleted") == 0
    assert not dialogs and not errors, (dialogs, errors)
