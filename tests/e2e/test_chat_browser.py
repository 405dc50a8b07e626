"""Browser: Try chat between two windows (two identities), and the JavaScript client's
reconnection and token renewal, against a live `manage.py serve`.

Screenshots land in /tmp/chat-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.conftest import LiveSpool
from tests.e2e.test_console_browser import PASSWORD, create_resource, sign_in, sign_up, unique

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def shot(page: Page, name: str) -> None:
    page.screenshot(path=f"/tmp/chat-{name}.png", full_page=True)


def start_chatting(
    page: Page, slug: str, name: str, identity: str = "new", screenshot: str = ""
) -> str:
    """Open Try chat, sign in as `identity` (a new one by default); returns its raw id."""
    page.goto(f"/resources/{slug}/chat/try/")
    form = page.locator("#chat-connect")
    form.locator("input[name=identity]").fill("" if identity == "new" else identity)
    form.locator("input[name=display_name]").fill(name)
    if screenshot:
        shot(page, screenshot)
    form.get_by_role("button", name="Start chatting").click()
    expect(page.locator("#chat-status")).to_have_text("Live")
    return str(page.locator("#my-id").input_value())


def bubble(page: Page, text: str) -> Any:
    return page.locator("#messages li", has_text=text)


@pytest.fixture
def two_windows(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> tuple[Page, Page, str]:
    """One console user with a resource, signed in in two windows (separate contexts)."""
    username = unique("chat")
    alice = new_context().new_page()
    sign_up(alice, username)
    slug = create_resource(alice, unique("Chat Test"))
    bob = new_context().new_page()
    sign_in(bob, username, PASSWORD)
    for page in (alice, bob):
        page.on("dialog", lambda dialog: dialog.accept())
    return alice, bob, slug


def test_two_identities_chat_live(two_windows: tuple[Page, Page, str]) -> None:
    # given two windows on Try chat, each as a new identity
    alice, bob, slug = two_windows
    alice_id = start_chatting(alice, slug, "Alice", screenshot="00-sign-in")
    bob_id = start_chatting(bob, slug, "Bob")
    assert alice_id != bob_id and bob_id.startswith("8:acs:")
    shot(alice, "01-signed-in")

    # when Alice creates a thread with Bob
    new_thread = alice.locator("#new-thread")
    new_thread.locator("input[name=topic]").fill("Launch plan")
    new_thread.locator("input[name=participant]").fill(bob_id)
    new_thread.get_by_role("button", name="Create thread").click()
    expect(alice.locator("#thread-topic")).to_have_text("Launch plan")
    expect(alice.locator("#thread-participants")).to_contain_text("2 participants")

    # then it appears in Bob's list at once, and he opens it
    bob_thread = bob.locator("#thread-list li", has_text="Launch plan")
    expect(bob_thread).to_be_visible()
    bob_thread.get_by_role("button").click()
    expect(bob.locator("#thread-topic")).to_have_text("Launch plan")
    expect(bob.locator("#thread-participants")).to_contain_text("Alice")

    # when Alice types, Bob sees that she is typing
    composer = alice.locator("#composer input[name=message]")
    composer.press_sequentially("Hello Bob", delay=20)
    expect(bob.locator("#typing")).to_have_text("Alice is typing…")
    shot(bob, "02-typing")

    # and when she sends, Bob gets the message (and the typing line goes)
    alice.locator("#composer").get_by_role("button", name="Send").click()
    expect(bubble(bob, "Hello Bob")).to_have_class(re.compile(r"\bincoming\b"))
    expect(bubble(bob, "Hello Bob")).to_contain_text("Alice")
    expect(bob.locator("#typing")).to_have_text("")

    # then Bob's open thread sent a read receipt: Alice sees "Seen"
    expect(bubble(alice, "Hello Bob").locator(".seen")).to_have_text("Seen")

    # when Bob replies, Alice gets it
    bob.locator("#composer input[name=message]").fill("Hi Alice, ready when you are")
    bob.locator("#composer input[name=message]").press("Enter")
    expect(bubble(alice, "Hi Alice, ready when you are")).to_have_class(re.compile(r"\bincoming\b"))
    expect(bubble(bob, "Hi Alice, ready when you are").locator(".seen")).to_have_text("Seen")
    shot(alice, "03-conversation")

    # when Alice edits her message
    message_id = bubble(alice, "Hello Bob").get_attribute("data-message-id")
    mine = alice.locator(f'#messages li[data-message-id="{message_id}"]')  # text changes below
    mine.get_by_role("button", name="Edit").click()
    mine.locator("input[name=content]").fill("Hello Bob, welcome aboard")
    mine.get_by_role("button", name="Save").click()

    # then Bob sees the new text, marked as edited
    edited = bubble(bob, "Hello Bob, welcome aboard")
    expect(edited).to_contain_text("Edited")
    shot(bob, "04-edited")

    # when Alice sends another message and deletes it
    composer.fill("Oops, wrong thread")
    composer.press("Enter")
    expect(bubble(bob, "Oops, wrong thread")).to_be_visible()
    bubble(alice, "Oops, wrong thread").get_by_role("button", name="Delete").click()

    # then both see it deleted
    for page in (alice, bob):
        expect(page.locator("#messages li.deleted")).to_have_text(
            re.compile("This message was deleted")
        )
    expect(bubble(bob, "Oops, wrong thread")).to_have_count(0)
    shot(alice, "05-alice")
    shot(bob, "06-bob")

    # and the operator's thread list counts the thread's participants and messages
    alice.goto(f"/resources/{slug}/chat/")
    row = alice.locator("table.chat-threads tr.thread", has_text="Launch plan")
    expect(row.locator("td.participants")).to_have_text("2")
    expect(row.locator("td.messages")).to_have_text("3")
    shot(alice, "07-threads")


def test_the_client_reconnects_and_resumes_what_it_missed(
    two_windows: tuple[Page, Page, str],
) -> None:
    # given Alice in Try chat, and Bob driving the JS client from the other window (REST only)
    alice, bob, slug = two_windows
    alice_id = start_chatting(alice, slug, "Alice")
    bob.goto(f"/resources/{slug}/chat/try/")
    bob.evaluate(
        """async (aliceId) => {
            const root = document.getElementById("try-chat");
            const response = await fetch(root.dataset.tokenUrl, {
                method: "POST", headers: {"X-CSRFToken": root.dataset.csrf},
                body: JSON.stringify({create: true}),
            });
            const {token} = await response.json();
            window.bob = new SpoolChat.ChatClient(root.dataset.endpoint, token);
            const {chatThread} = await window.bob.createChatThread(
                {topic: "While you were away"},
                {participants: [{id: {communicationUserId: aliceId}, displayName: "Alice"}]});
            window.bobThread = window.bob.getChatThreadClient(chatThread.id);
            await window.bobThread.sendMessage({content: "first"}, {senderDisplayName: "Bob"});
        }""",
        alice_id,
    )
    alice.locator("#thread-list li", has_text="While you were away").get_by_role("button").click()
    expect(bubble(alice, "first")).to_be_visible()
    alice.evaluate(
        """() => {
            window.resumed = [];
            tryChat.client.on("realtimeNotificationResumed", (e) => window.resumed.push(e));
        }"""
    )

    # when Alice's socket drops and cannot come back for a while (every new socket fails)
    alice.evaluate(
        """() => {
            window.RealWebSocket = window.WebSocket;
            window.WebSocket = function () { throw new Error("offline"); };
            tryChat.client.realtimeSocket.close();
        }"""
    )
    expect(alice.locator("#chat-status")).to_have_text("Reconnecting…")
    shot(alice, "08-reconnecting")
    # and Bob sends meanwhile
    bob.evaluate(
        """() => window.bobThread.sendMessage({content: "sent while you were away"},
                                               {senderDisplayName: "Bob"})"""
    )
    alice.wait_for_timeout(1500)
    expect(bubble(alice, "sent while you were away")).to_have_count(0)

    # then once sockets work again the client reconnects and the missed message is replayed
    alice.evaluate("() => { window.WebSocket = window.RealWebSocket; }")
    expect(alice.locator("#chat-status")).to_have_text("Live", timeout=40_000)
    expect(bubble(alice, "sent while you were away")).to_be_visible()
    resumed = alice.evaluate("() => window.resumed")
    assert resumed and resumed[0]["complete"] is True and resumed[0]["count"] >= 1
    # and live delivery carries on, without duplicates of what was replayed
    bob.evaluate(
        """() => window.bobThread.sendMessage({content: "and now live"},
                                               {senderDisplayName: "Bob"})"""
    )
    expect(bubble(alice, "and now live")).to_be_visible()
    expect(alice.locator("#messages li.incoming")).to_have_count(3)
    shot(alice, "09-resumed")


def test_the_client_renews_refused_tokens(
    two_windows: tuple[Page, Page, str],
) -> None:
    # given Alice in Try chat with a thread of her own
    alice, console, slug = two_windows
    alice_id = start_chatting(alice, slug, "Alice")
    alice.evaluate(
        """() => {
            window.renewals = 0;
            tryChat.client.on("tokenRefreshed", () => window.renewals++);
        }"""
    )
    new_thread = alice.locator("#new-thread")
    new_thread.locator("input[name=topic]").fill("Renewals")
    new_thread.get_by_role("button", name="Create thread").click()
    expect(alice.locator("#thread-topic")).to_have_text("Renewals")

    # when her tokens are revoked from the Identities page
    console.goto(f"/resources/{slug}/identities/")
    row = console.locator("tr", has_text=alice_id)
    row.get_by_role("button", name="Revoke tokens").click()
    expect(console.locator(".messages")).to_contain_text("is now refused")

    # then the socket (closed with 4001) comes back with a renewed token, and chat still works
    alice.wait_for_function("() => window.renewals >= 1")
    expect(alice.locator("#chat-status")).to_have_text("Live")
    composer = alice.locator("#composer input[name=message]")
    composer.fill("still here")
    composer.press("Enter")
    expect(bubble(alice, "still here")).to_be_visible()
    assert alice.evaluate("() => window.renewals") == 1

    # and a client whose first token is refused renews it on the 401 and on the socket's 4001
    result = alice.evaluate(
        """async () => {
            const root = document.getElementById("try-chat");
            let calls = 0;
            const refresh = async () => {
                calls++;
                const response = await fetch(root.dataset.tokenUrl, {
                    method: "POST", headers: {"X-CSRFToken": root.dataset.csrf},
                    body: JSON.stringify({identity: tryChat.me.id}),
                });
                return (await response.json()).token;
            };
            const client = new SpoolChat.ChatClient(
                root.dataset.endpoint, {token: "not-a-token", refresh});
            const topics = [];
            for await (const thread of client.listChatThreads()) topics.push(thread.topic);
            const afterRest = calls;
            const socketClient = new SpoolChat.ChatClient(
                root.dataset.endpoint, {token: "not-a-token", refresh});
            const connected = new Promise((resolve) =>
                socketClient.on("realtimeNotificationConnected", resolve));
            await socketClient.startRealtimeNotifications();
            const hello = await connected;
            await socketClient.stopRealtimeNotifications();
            return {topics, afterRest, calls, identity: hello.identity};
        }"""
    )
    assert result["topics"] == ["Renewals"] and result["afterRest"] == 1
    assert result["calls"] == 2 and result["identity"] == alice_id


FAKE_SOCKET_SCENARIO = """async () => {
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const sockets = [];
    class FakeSocket {
        constructor(url) { this.url = url; this.readyState = 1; this.sent = []; sockets.push(this); }
        send(data) { this.sent.push(JSON.parse(data)); }
        close() { this.readyState = 3; }
        frame(frame) { this.onmessage({data: JSON.stringify(frame)}); }
    }
    const client = new SpoolChat.ChatClient("/r/any/", "token", {webSocket: FakeSocket});
    const seen = [];
    const resyncs = [];
    client.on("chatMessageReceived", (e) => seen.push([e.id, e.createdOn instanceof Date]));
    client.on("resyncRequired", (e) => resyncs.push(e));
    await client.startRealtimeNotifications();
    const socket = sockets[0];
    socket.frame({type: "hello", identity: "8:acs:me", serverTime: "2026-01-01T00:00:00Z"});
    const message = (sequence, extra = {}) => socket.frame({
        type: "chat", event: "chatMessageReceived", threadId: "T", sequence,
        time: "2026-01-01T00:00:01Z", ...extra,
        data: {threadId: "T", id: String(sequence), createdOn: "2026-01-01T00:00:01Z"}});
    message(1); message(2); message(2, {replay: true});  // a duplicate
    message(4); message(3);                               // out of order: no gap left
    await sleep(1200);
    const afterReorder = socket.sent.filter((f) => f.type === "chat.resume").length;
    message(6);                                           // 5 is missing
    await sleep(1200);
    const gapResume = socket.sent.filter((f) => f.type === "chat.resume");
    message(5, {replay: true}); message(6, {replay: true});
    socket.frame({type: "chat.resumed", count: 2, complete: false});
    await client.stopRealtimeNotifications();
    return {url: socket.url, seen, afterReorder, gapResume, resyncs};
}"""


def test_the_client_drops_duplicates_and_asks_for_gaps(
    live_spool: LiveSpool, new_context: Callable[[], BrowserContext]
) -> None:
    # given the client on a page, with a socket the test plays the server of
    page = new_context().new_page()
    page.goto("/login/")
    page.add_script_tag(url="/static/chat/spool-chat.js")

    # when frames arrive duplicated, out of order, and with a gap
    result = page.evaluate(FAKE_SOCKET_SCENARIO)

    # then every event reaches listeners once, dates as Date objects
    assert result["url"] == f"ws://127.0.0.1:{live_spool.http_port}/ws/?access_token=token"
    assert result["seen"] == [[str(n), True] for n in (1, 2, 4, 3, 6, 5)]
    # and only a real gap is asked for, for its thread from the last sequence before it
    assert result["afterReorder"] == 0
    assert result["gapResume"] == [{"type": "chat.resume", "threads": {"T": 4}}]
    # and an incomplete resume asks the application to re-read
    assert result["resyncs"] == [{"count": 2}]
