"""The console's SMS pages (Send, Messages, Virtual handsets, Opt-outs) through Django's client:
what a person sees after each action, and that bad input changes nothing."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.numbers.models import Capability
from apps.sms import handsets, optouts, services
from apps.sms.models import HandsetMessage, OptOut, SmsMessage

PERSON = "+447700900123"
OTHER_PERSON = "+447700900124"
OPTED_OUT = "+447700900999"


def console_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(markup: str) -> str:
    """What a person reads: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def section(page: str, element_id: str) -> str:
    """The markup of the `<section id=...>` (empty when the page has none)."""
    found = re.search(rf'<section[^>]*id="{element_id}".*?</section>', page, re.S)
    return found.group(0) if found else ""


def send(browser: Client, resource: Any, capture: Any, **fields: str) -> str:
    with capture(execute=True):
        response = browser.post(f"/resources/{resource.slug}/sms/", fields, follow=True)
    assert response.status_code == 200
    return str(response.content.decode())


# --- Send -----------------------------------------------------------------------------------
def test_a_send_to_good_opted_out_and_malformed_recipients_shows_each_outcome(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given a person who opted out of the sender
    optouts.add_opt_out(resource, sender=sender, recipient=OPTED_OUT, source="console")
    typed_to = f"{PERSON}, {OPTED_OUT}, 555-CALL-NOW"

    # when the owner sends to them, a good number and something that is no number
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": sender, "to": typed_to, "message": "Your code is 1234", "tag": "otp"},
    )

    # then the heading counts what was sent, not "Sent"
    results = section(page, "send-results")
    assert "<h2>Sent to 1 of 3 recipients</h2>" in results
    assert 'class="card success"' not in results
    # and the accepted recipient links to its message
    accepted = SmsMessage.objects.get(recipient=PERSON)
    assert f'href="/resources/{resource.slug}/sms/messages/{accepted.pk}/"' in results
    rows = re.findall(r'<tr class="(accepted|refused)">(.*?)</tr>', results, re.S)
    assert [(kind, text_of(row)) for kind, row in rows] == [
        ("accepted", f"{PERSON} Accepted message {accepted.pk}"),
        (
            "refused",
            f"{OPTED_OUT} Refused {OPTED_OUT} has opted out of messages from {sender} (replied "
            "STOP); they can opt in again by replying START.",
        ),
        (
            "refused",
            "555-CALL-NOW Refused “555-CALL-NOW” is not a phone number in E.164 format (+ and 7 "
            "to 15 digits, e.g. +14255550123).",
        ),
    ]
    assert results.count('class="errors"') == 2  # the reasons, in red
    # and the form still holds what was typed, so it can be fixed and sent again
    form = section_form(page)
    assert f'value="{html.escape(typed_to)}"' in form
    assert ">Your code is 1234</textarea>" in form and 'value="otp"' in form
    assert f'<option value="{sender}" selected>' in form
    assert "would get the message again" in text_of(results)


def section_form(page: str) -> str:
    found = re.search(r'<form method="post" id="send-form".*?</form>', page, re.S)
    assert found, "no send form"
    return found.group(0)


def test_a_send_everyone_accepts_says_so_and_clears_the_form(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # when the owner sends to two numbers outside the deployment
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": sender, "to": f"{PERSON}; {OTHER_PERSON}", "message": "Hi"},
    )

    # then both are accepted under a heading that says so, and the form is empty again
    results = section(page, "send-results")
    assert 'class="card success"' in results and "<h2>Sent to all 2 recipients</h2>" in results
    assert results.count("Accepted") == 2 and "Refused" not in results
    assert 'name="to" value=""' in section_form(page) and "></textarea>" in section_form(page)
    assert HandsetMessage.objects.filter(to_handset=True).count() == 2


def test_a_send_nobody_accepts_says_nothing_was_sent(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given the only recipient opted out
    optouts.add_opt_out(resource, sender=sender, recipient=OPTED_OUT, source="console")

    # when the owner sends to them
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": sender, "to": OPTED_OUT, "message": "Hi"},
    )

    # then the page says nothing was sent, why, and keeps the form
    results = section(page, "send-results")
    assert 'class="card danger"' in results and "<h2>Nothing was sent</h2>" in results
    assert f"{OPTED_OUT} has opted out" in text_of(results)
    assert "Accepted" not in results and "would get the message again" not in results
    assert f'value="{OPTED_OUT}"' in section_form(page)
    assert not HandsetMessage.objects.exists()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"from": "+14255550199", "to": PERSON, "message": "Hi"},
            "+14255550199 is not one of this resource's numbers with outbound SMS.",
        ),
        (
            {"from": "not a number", "to": PERSON, "message": "Hi"},
            "The sender is not one of this resource's numbers with outbound SMS.",
        ),
        ({"to": PERSON, "message": ""}, "Type a message."),
        ({"to": " , ; ", "message": "Hi"}, "Type at least one recipient in To."),
        (
            {"to": ",".join(f"+4477009{n:05d}" for n in range(101)), "message": "Hi"},
            "To lists 101 numbers; one send reaches at most 100.",
        ),
        (
            {"to": PERSON, "message": "x" * 2049},
            "The message is 2,049 characters long; the limit is 2,048.",
        ),
        (
            {"to": PERSON, "message": "ring \x07"},
            "The message holds a control character (only line breaks and tabs may be in it).",
        ),
        (
            {"to": PERSON, "message": "Hi", "tag": "t" * 257},
            "The tag must be one line of at most 256 characters.",
        ),
    ],
    ids=[
        "unknown sender",
        "sender no number",
        "empty",
        "no recipient",
        "101",
        "too long",
        "control",
        "tag",
    ],
)
def test_a_send_refused_as_a_whole_says_why_keeps_the_form_and_changes_nothing(
    owner: Any,
    resource: Any,
    sender: str,
    django_capture_on_commit_callbacks: Any,
    fields: dict[str, str],
    reason: str,
) -> None:
    # when the form is sent with something wrong for the whole send
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": sender} | fields,
    )

    # then nothing was sent, the page says why in the form's words, and keeps what was typed
    results = section(page, "send-results")
    assert "<h2>Nothing was sent</h2>" in results
    assert text_of(section_problem(results)) == reason
    assert f'value="{html.escape(fields["to"])}"' in section_form(page)
    assert not SmsMessage.objects.exists() and not HandsetMessage.objects.exists()


def section_problem(results: str) -> str:
    found = re.search(r'<p class="errors" id="send-problem">.*?</p>', results, re.S)
    assert found, "no problem shown"
    return found.group(0)


def test_a_number_without_outbound_sms_cannot_send(
    owner: Any, resource: Any, own: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a number of the resource that only receives SMS (a stale form still offers it)
    inbound_only = own(resource, sms=Capability.INBOUND).number

    # when the owner sends from it
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": inbound_only, "to": PERSON, "message": "Hi"},
    )

    # then nothing was sent, and the page says why
    assert f"{inbound_only} is not one of this resource's numbers with outbound SMS." in text_of(
        section(page, "send-results")
    )
    assert not SmsMessage.objects.exists()


def test_the_outcome_shows_once_and_only_on_its_own_resource(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given the owner also owns a second resource
    second = accounts.create_resource("Second", owner=owner)
    browser = console_for(owner)

    # when they send from the first resource without following the redirect
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(
            f"/resources/{resource.slug}/sms/", {"from": sender, "to": PERSON, "message": "Hi"}
        )

    # then the second resource's send page shows no outcome (its links would not resolve there)
    assert not section(
        browser.get(f"/resources/{second.slug}/sms/").content.decode(), "send-results"
    )
    # and the first shows it once
    first = browser.get(f"/resources/{resource.slug}/sms/").content.decode()
    assert "Sent to 1 recipient" in section(first, "send-results")
    assert not section(
        browser.get(f"/resources/{resource.slug}/sms/").content.decode(), "send-results"
    )


def test_readers_read_every_page_but_cannot_send(
    resource: Any, sender: str, make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a reader
    reader = make_user("reader")
    accounts.add_member(resource, "reader", Role.READER)
    browser = console_for(reader)

    # when they open the pages, then they read them without any form that changes something
    for path in ("", "messages/", "handsets/", "handsets/?handset=%2B447700900123", "opt-outs/"):
        response = browser.get(f"/resources/{resource.slug}/sms/{path}")
        assert response.status_code == 200, path
        page = response.content.decode()
        for form in ('id="send-form"', 'id="reply-form"', 'id="opt-out-form"'):
            assert form not in page, (path, form)

    # when they send, reply or opt someone out anyway
    base = f"/resources/{resource.slug}/sms/"
    with django_capture_on_commit_callbacks(execute=True):
        sent = browser.post(base, {"from": sender, "to": PERSON, "message": "x"}, follow=True)
        browser.post(f"{base}handsets/?handset=%2B447700900123", {"to": sender, "message": "x"})
        browser.post(f"{base}opt-outs/", {"action": "add", "from": sender, "to": PERSON})

    # then they are told so, and nothing changed
    assert "Your role cannot send SMS." in sent.content.decode()
    assert not section(sent.content.decode(), "send-results")
    assert not SmsMessage.objects.exists() and not HandsetMessage.objects.exists()
    assert not OptOut.objects.exists()


def test_strangers_reach_no_sms_page(resource: Any, sender: str, make_user: Any) -> None:
    browser = console_for(make_user("stranger"))
    for path in ("", "messages/", "handsets/", "opt-outs/"):
        assert browser.get(f"/resources/{resource.slug}/sms/{path}").status_code == 404, path
    assert (
        browser.post(
            f"/resources/{resource.slug}/sms/", {"from": sender, "to": PERSON, "message": "x"}
        ).status_code
        == 404
    )
    assert not SmsMessage.objects.exists()


# --- Messages --------------------------------------------------------------------------------
def facts(page: str) -> dict[str, str]:
    """The message page's facts, label to text."""
    listing = re.search(r'<dl class="facts">(.*?)</dl>', page, re.S)
    assert listing
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", listing.group(1), re.S)
    return {text_of(label): text_of(value) for label, value in pairs}


def test_an_outbound_message_shows_when_it_was_queued_sent_and_finished(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given a message the loopback carrier delivered
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.send(
            resource, services.SendRequest(sender, [services.Recipient(PERSON)], "Hi")
        )

    # when the owner opens it
    page = console_for(owner).get(f"/resources/{resource.slug}/sms/messages/{result['messageId']}/")

    # then its times are labelled by what happened, and nothing says it was received
    shown = facts(page.content.decode())
    assert "Received" not in shown
    assert shown["Queued"] and shown["Sent"].endswith("(the carrier took it)")
    assert shown["Finished"].endswith("(delivered)")
    assert shown["Status"].startswith("Delivered")


def test_an_outbound_message_refused_for_an_opt_out_says_refused(
    owner: Any, resource: Any, sender: str
) -> None:
    # given a message refused because the recipient opted out
    optouts.add_opt_out(resource, sender=sender, recipient=OPTED_OUT, source="console")
    [result] = services.send(
        resource, services.SendRequest(sender, [services.Recipient(OPTED_OUT)], "Hi")
    )

    # when the owner opens it
    page = console_for(owner).get(f"/resources/{resource.slug}/sms/messages/{result['messageId']}/")

    # then it was refused, never sent, and finished as failed
    shown = facts(page.content.decode())
    assert "Queued" not in shown and "Received" not in shown and shown["Refused"]
    assert shown["Sent"] == "—" and shown["Finished"].endswith("(failed)")


def test_an_inbound_message_shows_when_it_was_received(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given a message a handset sent to the resource's number
    with django_capture_on_commit_callbacks(execute=True):
        handsets.reply(resource, handset=PERSON, counterpart=sender, text="Hello")
    message = SmsMessage.objects.get(direction="inbound")

    # when the owner opens it
    page = console_for(owner).get(f"/resources/{resource.slug}/sms/messages/{message.pk}/")

    # then it shows when it was received, and nothing about sending
    shown = facts(page.content.decode())
    assert shown["Received"]
    assert not {"Queued", "Sent", "Finished", "Refused"} & shown.keys()


def test_another_resources_message_is_not_found(
    owner: Any,
    resource: Any,
    other_resource: Any,
    own: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a message of a resource the owner is no member of
    theirs = own(other_resource).number
    with django_capture_on_commit_callbacks(execute=True):
        [result] = services.send(
            other_resource, services.SendRequest(theirs, [services.Recipient(PERSON)], "Secret")
        )

    # when the owner asks for it under their own resource
    response = console_for(owner).get(
        f"/resources/{resource.slug}/sms/messages/{result['messageId']}/"
    )

    # then it is not found, and nothing of it shows
    assert response.status_code == 404
    assert "Secret" not in response.content.decode()
    log = console_for(owner).get(f"/resources/{resource.slug}/sms/messages/").content.decode()
    assert "Secret" not in log and "No messages" in log


# --- Virtual handsets ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("hello", "“hello” is not a phone number."),
        ("+44 7700 900123", "“+44 7700 900123” is not a phone number."),
        ("x" * 300, f"“{'x' * 40}…” is not a phone number."),
    ],
    ids=["word", "spaces", "long"],
)
def test_text_that_is_no_phone_number_opens_no_handset(
    owner: Any,
    resource: Any,
    sender: str,
    django_capture_on_commit_callbacks: Any,
    typed: str,
    reason: str,
) -> None:
    browser = console_for(owner)
    url = f"/resources/{resource.slug}/sms/handsets/"

    # when the owner opens a handset for something that is no phone number
    response = browser.get(url, {"handset": typed})

    # then the page says so, next to the typed text, and shows no handset
    page = response.content.decode()
    assert response.status_code == 404
    assert text_of(re.search(r'<p class="errors" id="handset-problem">.*?</p>', page).group(0))  # type: ignore[union-attr]
    assert reason in text_of(page)
    assert f'value="{html.escape(typed)}"' in page
    assert "Handset <code>" not in page and 'id="reply-form"' not in page
    assert "data-poll" not in page

    # and replying from it anyway stores nothing
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(f"{url}?{urlencode({'handset': typed})}", {"to": sender, "message": "hi"})
    assert not HandsetMessage.objects.exists() and not SmsMessage.objects.exists()


def test_a_number_of_this_deployment_is_no_handset(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    browser = console_for(owner)
    url = f"/resources/{resource.slug}/sms/handsets/"

    # when the owner opens their own number as a handset
    response = browser.get(url, {"handset": sender})

    # then the page says it is no virtual handset, and offers no reply
    page = response.content.decode()
    assert response.status_code == 404
    assert f"{sender} is a phone number of this deployment, not a virtual handset" in page
    assert 'id="reply-form"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(f"{url}?{urlencode({'handset': sender})}", {"to": sender, "message": "hi"})
    assert not HandsetMessage.objects.exists() and not SmsMessage.objects.exists()


def test_a_handset_receives_replies_and_the_opt_out_page_acts(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    browser = console_for(owner)
    base = f"/resources/{resource.slug}/sms/"

    # when a handset nobody wrote to yet is opened, then it shows, empty, with a reply form
    opened = browser.get(f"{base}handsets/", {"handset": PERSON}).content.decode()
    assert f"Handset <code>{PERSON}</code>" in opened and 'id="reply-form"' in opened
    assert "No messages with this handset yet." in opened

    # when the handset texts STOP to the resource's number
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(f"{base}handsets/?handset=%2B447700900123", {"to": sender, "message": "STOP"})

    # then the person is opted out, and the handset got the confirmation
    assert OptOut.objects.filter(recipient=PERSON).exists()
    fragment = browser.get(f"{base}handsets/?handset=%2B447700900123&fragment=1").content.decode()
    assert "unsubscribed" in fragment and "<html" not in fragment

    # when the opt-out is removed and added again on the Opt-outs page
    opt_out = OptOut.objects.get()
    browser.post(f"{base}opt-outs/", {"action": "remove", "id": opt_out.pk})
    assert not OptOut.objects.exists()
    browser.post(f"{base}opt-outs/", {"action": "add", "from": sender, "to": PERSON})

    # then the list holds it, added through the console; the log shows the STOP
    assert OptOut.objects.get().source == "console"
    log = browser.get(f"{base}messages/?direction=inbound").content.decode()
    assert "STOP" in log
    message = SmsMessage.objects.filter(direction="outbound").first()
    assert "Delivered" in browser.get(f"{base}messages/{message.pk}/").content.decode()  # type: ignore[union-attr]


def test_bad_opt_out_input_changes_nothing(
    owner: Any, resource: Any, sender: str, other_resource: Any, own: Any
) -> None:
    browser = console_for(owner)
    url = f"/resources/{resource.slug}/sms/opt-outs/"
    theirs = own(other_resource).number
    their_opt_out = optouts.add_opt_out(
        other_resource, sender=theirs, recipient=PERSON, source="api"
    )

    # when the owner adds a recipient that is no number, opts out of another resource's
    # number, or removes another resource's opt-out
    bad = browser.post(url, {"action": "add", "from": sender, "to": "nope"}, follow=True)
    browser.post(url, {"action": "add", "from": theirs, "to": OTHER_PERSON})
    browser.post(url, {"action": "remove", "id": their_opt_out.pk})
    browser.post(url, {"action": "remove", "id": "x"})

    # then they are told, and only the other resource's opt-out exists, untouched
    assert "Invalid" in bad.content.decode()
    assert list(OptOut.objects.values_list("pk", flat=True)) == [their_opt_out.pk]


def test_a_long_refused_recipient_is_shortened_on_the_page(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # when a very long word is typed among the recipients
    page = send(
        console_for(owner),
        resource,
        django_capture_on_commit_callbacks,
        **{"from": sender, "to": f"{PERSON}, {'9' * 300}", "message": "Hi"},
    )

    # then its row shows the first 40 characters, and the form keeps it all
    [refused] = re.findall(r'<tr class="refused">(.*?)</tr>', section(page, "send-results"), re.S)
    assert text_of(refused).startswith(f"{'9' * 40}… Refused “{'9' * 40}…” is not a phone number")
    assert "9" * 41 not in refused
    assert f"{PERSON}, {'9' * 300}" in section_form(page)
