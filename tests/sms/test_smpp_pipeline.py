"""The SMPP carrier with the real services: a message out and its receipt, and a message in,
stored in the database from the carrier's reader thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.events.models import Event
from apps.sms import carriers, services
from apps.sms.models import MessageStatus, OptOut, SmsMessage
from tests.sms.smpp_peer import SmppPeer
from tests.sms.test_smpp_carrier import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PERSON = "+447700900123"


@pytest.fixture
def smsc(settings: Any) -> Iterator[SmppPeer]:
    peer = SmppPeer(receipt_retry_delay=0.05).start()
    settings.SMS_CARRIER = "smpp"
    settings.SMPP_PORT = peer.port
    settings.SMPP_TIMEOUT_SECONDS = 2
    settings.SMPP_RECONNECT_MAX_SECONDS = 0.1
    carriers.reset()
    carrier = carriers.get()
    carrier.start()
    assert wait_until(lambda: getattr(carrier, "bound", False))
    yield peer
    carriers.reset()
    peer.stop()


def test_a_message_goes_out_and_its_receipt_marks_it_delivered(
    resource: Any, sender: str, smsc: SmppPeer
) -> None:
    # given a long message with a delivery report (sent by the eager job on commit)
    request = services.SendRequest(
        sender, [services.Recipient(PERSON)], "a" * 200, delivery_report=True
    )
    [result] = services.send(resource, request)
    # then the SMSC got two concatenated parts
    assert wait_until(lambda: len(smsc.submits) == 2)
    assert smsc.messages[0].text == "a" * 200
    # and its receipt, handled on the carrier's thread, marks the message delivered
    assert wait_until(
        lambda: SmsMessage.objects.get(pk=result["messageId"]).status == MessageStatus.DELIVERED
    )
    report = Event.objects.get(event_type__endswith="SMSDeliveryReportReceived")
    assert report.data["MessageId"] == result["messageId"]
    assert report.data["DeliveryStatus"] == "Delivered"


def test_a_message_in_is_stored_with_an_event_and_keywords_apply(
    resource: Any, sender: str, smsc: SmppPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[str] = []
    monkeypatch.setattr("apps.sms.tasks.drain.delay", lambda: queued.append("drain"))
    # when a person's phone texts the resource's number through the SMSC
    assert smsc.send_mo(PERSON.lstrip("+"), sender.lstrip("+"), "Hello there") == [0]
    # then it is stored, with an SMSReceived event (the SMSC got a success answer after that)
    inbound = SmsMessage.objects.get(direction="inbound")
    assert (inbound.sender, inbound.recipient, inbound.text) == (PERSON, sender, "Hello there")
    assert Event.objects.filter(event_type__endswith="SMSReceived").count() == 1
    # when they text STOP, they are opted out and the confirmation is queued
    assert smsc.send_mo(PERSON.lstrip("+"), sender.lstrip("+"), "STOP") == [0]
    assert OptOut.objects.filter(sender=sender, recipient=PERSON).exists()
    assert len(queued) == 1
