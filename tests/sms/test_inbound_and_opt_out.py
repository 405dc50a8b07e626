"""Inbound SMS, STOP / START / HELP, the opt-out API and virtual handsets."""

from __future__ import annotations

from typing import Any

import pytest

from apps.events.models import Event
from apps.sms import handsets, optouts, services
from apps.sms.models import HandsetMessage, MessageStatus, OptOut, SmsMessage
from tests.conftest import AcsClient

PERSON = "+447700900123"
OPT_OUT_VERSION = "2024-12-10-preview"


@pytest.fixture
def reply_from(resource: Any, django_capture_on_commit_callbacks: Any) -> Any:
    def reply(handset: str, to: str, text: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            handsets.reply(resource, handset=handset, counterpart=to, text=text)

    return reply


@pytest.fixture
def send(acs: AcsClient, django_capture_on_commit_callbacks: Any) -> Any:
    def send(sender: str, to: str, text: str = "Offer") -> dict[str, Any]:
        body = {"from": sender, "smsRecipients": [{"to": to}], "message": text}
        with django_capture_on_commit_callbacks(execute=True):
            return acs.call("POST", "/sms", body, api_version="2021-03-07").json()["value"][0]  # type: ignore[no-any-return]

    return send


def test_a_handset_reply_arrives_as_inbound_sms_with_an_event(
    resource: Any, sender: str, reply_from: Any
) -> None:
    # when the person at a virtual handset texts the resource's number
    reply_from(PERSON, sender, "Yes please")
    # then the resource has an inbound message and an SMSReceived event
    inbound = SmsMessage.objects.get(direction="inbound")
    assert (inbound.sender, inbound.recipient, inbound.text) == (PERSON, sender, "Yes please")
    assert inbound.status == MessageStatus.RECEIVED
    event = Event.objects.get(event_type="Microsoft.Communication.SMSReceived")
    assert event.data["MessageId"] == inbound.pk and event.data["To"] == sender
    assert HandsetMessage.objects.get().to_handset is False


@pytest.mark.parametrize("word", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "Stop all"])
def test_stop_keywords_opt_the_sender_out_until_start(
    resource: Any, sender: str, reply_from: Any, send: Any, word: str
) -> None:
    # given the person texts a stop keyword
    reply_from(PERSON, sender, word)
    # then they are opted out and told so
    assert OptOut.objects.filter(sender=sender, recipient=PERSON).exists()
    confirmation = HandsetMessage.objects.filter(to_handset=True).get()
    assert "unsubscribed" in confirmation.text
    # and a send to them fails for that recipient alone, with a clear error
    result = send(sender, PERSON)
    assert result["successful"] is False and result["httpStatusCode"] == 400
    assert "opted out" in result["errorMessage"]
    # when they text START, sends work again
    reply_from(PERSON, sender, "START")
    assert not OptOut.objects.exists()
    assert send(sender, PERSON)["successful"] is True


def test_an_opt_out_is_per_sender_number(
    resource: Any, own: Any, sender: str, reply_from: Any, send: Any
) -> None:
    other_number = own(resource).number
    reply_from(PERSON, sender, "STOP")
    assert send(other_number, PERSON)["successful"] is True


def test_help_gets_the_configured_answer(
    resource: Any, sender: str, reply_from: Any, settings: Any
) -> None:
    settings.SMS_HELP_TEXT = "Contoso alerts. Reply STOP to stop."
    reply_from(PERSON, sender, "help")
    assert HandsetMessage.objects.get(to_handset=True).text == "Contoso alerts. Reply STOP to stop."
    assert not OptOut.objects.exists()


def test_ordinary_words_are_not_keywords() -> None:
    assert optouts.keyword_of("Please stop by tomorrow") is None
    assert optouts.keyword_of("STOP") == "stop"
    assert optouts.keyword_of("opt-out") == "stop"


def test_a_message_to_a_number_nobody_owns_is_dropped(db: None) -> None:
    assert services.receive_sms(sender=PERSON, recipient="+14255550999", text="hi") is None
    assert not SmsMessage.objects.exists()


def test_an_inbound_only_number_receives_but_does_not_auto_reply(
    resource: Any, own: Any, reply_from: Any
) -> None:
    inbound_only = own(resource, sms="inbound").number
    reply_from(PERSON, inbound_only, "STOP")
    assert OptOut.objects.filter(sender=inbound_only).exists()
    assert not SmsMessage.objects.filter(direction="outbound").exists()


def test_handset_replies_are_checked(
    resource: Any, other_resource: Any, own: Any, sender: str
) -> None:
    theirs = own(other_resource).number
    with pytest.raises(Exception, match="not a phone number of this resource"):
        handsets.reply(resource, handset=PERSON, counterpart=theirs, text="hi")
    with pytest.raises(Exception, match="not a virtual handset"):
        handsets.reply(resource, handset=theirs, counterpart=sender, text="hi")
    with pytest.raises(Exception, match="1 to 2048"):
        handsets.reply(resource, handset=PERSON, counterpart=sender, text="")
    assert not SmsMessage.objects.exists()


# --- The ACS opt-out API -----------------------------------------------------------------
def test_opt_out_api_adds_checks_and_removes(acs: AcsClient, sender: str) -> None:
    body = {"from": sender, "recipients": [{"to": PERSON}, {"to": "bogus"}]}
    added = acs.call("POST", "/sms/optouts:add", body, api_version=OPT_OUT_VERSION)
    assert added.status_code == 200
    assert added.json()["value"][0] == {"to": PERSON, "httpStatusCode": 200}
    assert added.json()["value"][1]["httpStatusCode"] == 400
    checked = acs.call("POST", "/sms/optouts:check", body, api_version=OPT_OUT_VERSION)
    assert checked.json()["value"][0]["isOptedOut"] is True
    acs.call("POST", "/sms/optouts:remove", body, api_version=OPT_OUT_VERSION)
    checked = acs.call("POST", "/sms/optouts:check", body, api_version=OPT_OUT_VERSION)
    assert checked.json()["value"][0]["isOptedOut"] is False


def test_opt_out_api_refuses_another_resources_number(other_acs: AcsClient, sender: str) -> None:
    body = {"from": sender, "recipients": [{"to": PERSON}]}
    response = other_acs.call("POST", "/sms/optouts:add", body, api_version=OPT_OUT_VERSION)
    assert response.status_code == 400
    assert response.json()["error"]["target"] == "from"
    assert not OptOut.objects.exists()


@pytest.mark.parametrize("recipients", [[], "x", [1], [{"to": PERSON}] * 101])
def test_opt_out_api_refuses_bad_lists(acs: AcsClient, sender: str, recipients: Any) -> None:
    body = {"from": sender, "recipients": recipients}
    response = acs.call("POST", "/sms/optouts:add", body, api_version=OPT_OUT_VERSION)
    assert response.status_code == 400
    assert not OptOut.objects.exists()
