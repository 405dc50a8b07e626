"""The ACS send API: per-recipient results, repeatability, bad input, tenancy, delivery."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from apps.events.models import Event
from apps.sms.models import HandsetMessage, MessageStatus, SmsMessage
from tests.conftest import AcsClient

V = "2021-03-07"


def send_body(
    sender: str, *to: str, message: str = "Hello", report: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "from": sender,
        "smsRecipients": [{"to": number} for number in to],
        "message": message,
        "smsSendOptions": {"enableDeliveryReport": report, **extra},
    }


@pytest.fixture
def post(acs: AcsClient, django_capture_on_commit_callbacks: Any) -> Any:
    def post(body: Any, client: AcsClient | None = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return (client or acs).call("POST", "/sms", body, api_version=V)

    return post


def test_send_reaches_a_virtual_handset_and_reports_delivery(post: Any, sender: str) -> None:
    # given a number of the resource that sends SMS
    # when it texts two numbers outside the deployment, asking for a delivery report
    response = post(send_body(sender, "+447700900001", "+447700900002", report=True, tag="t1"))
    # then both are accepted, with ACS per-recipient results
    assert response.status_code == 202
    results = response.json()["value"]
    assert [r["to"] for r in results] == ["+447700900001", "+447700900002"]
    assert all(r["successful"] and r["httpStatusCode"] == 202 for r in results)
    assert all(r["messageId"].startswith("Outgoing_") for r in results)
    # and each lands in its handset's inbox, delivered, with a delivery report event
    assert HandsetMessage.objects.filter(handset="+447700900001", to_handset=True).count() == 1
    statuses = set(SmsMessage.objects.values_list("status", flat=True))
    assert statuses == {MessageStatus.DELIVERED}
    reports = Event.objects.filter(event_type="Microsoft.Communication.SMSDeliveryReportReceived")
    assert reports.count() == 2
    data = reports.first().data  # type: ignore[union-attr]
    assert data["DeliveryStatus"] == "Delivered"
    assert data["From"] == sender and data["Tag"] == "t1"
    assert data["DeliveryAttempts"][0]["SegmentsSucceeded"] == 1


def test_no_delivery_report_event_unless_asked(post: Any, sender: str) -> None:
    post(send_body(sender, "+447700900001"))
    assert SmsMessage.objects.get().status == MessageStatus.DELIVERED
    assert not Event.objects.filter(event_type__endswith="SMSDeliveryReportReceived").exists()


def test_a_repeated_request_answers_the_first_result_and_sends_nothing_again(
    post: Any, sender: str
) -> None:
    # given a send with a repeatability id per recipient
    body = send_body(sender, "+447700900001")
    body["smsRecipients"][0].update(
        repeatabilityRequestId=str(uuid.uuid4()),
        repeatabilityFirstSent="Tue, 24 Nov 2026 08:00:00 GMT",
    )
    first = post(body).json()["value"][0]
    # when the client repeats it
    again = post(body).json()["value"][0]
    # then the answer is the same message, and the handset got one message
    assert again == first
    assert first["repeatabilityResult"] == "accepted"
    assert SmsMessage.objects.count() == 1
    assert HandsetMessage.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"from": "4255550100"}, "from"),
        ({"from": "+14255559999"}, "from"),  # not the resource's number
        ({"message": ""}, "message"),
        ({"message": "x" * 2049}, "message"),
        ({"message": 42}, "message"),
        ({"smsRecipients": []}, "smsRecipients"),
        ({"smsRecipients": [{"to": f"+4477009{n:05d}"} for n in range(101)]}, "smsRecipients"),
        ({"smsRecipients": "+447700900001"}, "smsRecipients"),
        ({"smsRecipients": [{"phone": "+447700900001"}]}, "smsRecipients"),
        ({"smsSendOptions": {"enableDeliveryReport": "yes"}}, "enableDeliveryReport"),
        ({"smsSendOptions": {"enableDeliveryReport": False, "tag": "x" * 257}}, "tag"),
    ],
)
def test_bad_requests_are_refused_whole_and_nothing_is_queued(
    post: Any, sender: str, change: dict[str, Any], target: str
) -> None:
    # given a valid body with one thing wrong
    body = {**send_body(sender, "+447700900001"), **change}
    # when it is sent
    response = post(body)
    # then a 400 in the ACS error shape names the field, and nothing is stored or sent
    assert response.status_code == 400
    assert response.json()["error"]["target"] == target
    assert response.json()["error"]["message"]
    assert not SmsMessage.objects.exists()
    assert not HandsetMessage.objects.exists()


def test_a_number_without_outbound_sms_cannot_send(post: Any, resource: Any, own: Any) -> None:
    inbound_only = own(resource, sms="inbound")
    response = post(send_body(inbound_only.number, "+447700900001"))
    assert response.status_code == 400
    assert "cannot send SMS" in response.json()["error"]["message"]
    assert not SmsMessage.objects.exists()


def test_invalid_recipients_fail_alone(post: Any, sender: str) -> None:
    # given one good and one malformed recipient
    response = post(send_body(sender, "+447700900001", "0770 0900 002"))
    # then the good one is accepted and the bad one gets its own error
    good, bad = response.json()["value"]
    assert response.status_code == 202
    assert good["successful"] is True
    assert bad == {
        "to": "0770 0900 002",
        "httpStatusCode": 400,
        "successful": False,
        "errorMessage": bad["errorMessage"],
    }
    assert "E.164" in bad["errorMessage"]
    assert SmsMessage.objects.count() == 1


def test_another_resources_number_is_refused(post: Any, other_acs: AcsClient, sender: str) -> None:
    # when another resource tries to send from this resource's number
    response = post(send_body(sender, "+447700900001"), client=other_acs)
    # then it is refused and nothing is sent
    assert response.status_code == 400
    assert not SmsMessage.objects.exists()


def test_wrong_key_is_401_and_sends_nothing(acs: AcsClient, sender: str) -> None:
    response = acs.call("POST", "/sms", send_body(sender, "+447700900001"), api_version=V,
                        sign_key="d3Jvbmc=")  # fmt: skip
    assert response.status_code == 401
    assert not SmsMessage.objects.exists()


def test_message_between_two_resources_numbers_arrives_as_inbound_sms(
    post: Any, resource: Any, other_resource: Any, own: Any, sender: str
) -> None:
    # given another resource's number on this deployment
    theirs = own(other_resource).number
    # when this resource texts it
    post(send_body(sender, theirs, message="Ping"))
    # then the other resource receives it, with an SMSReceived event of its own
    inbound = SmsMessage.objects.get(resource=other_resource, direction="inbound")
    assert (inbound.sender, inbound.recipient, inbound.text) == (sender, theirs, "Ping")
    event = Event.objects.get(event_type="Microsoft.Communication.SMSReceived")
    assert event.resource == other_resource
    assert event.data["From"] == sender and event.data["Message"] == "Ping"
    assert event.subject == f"/phonenumber/{theirs.lstrip('+')}"
    assert not Event.objects.filter(resource=resource, event_type__endswith="SMSReceived").exists()


def test_a_number_of_the_deployment_nobody_owns_fails_permanently(post: Any, sender: str) -> None:
    # given an inventory number nobody owns (the `own` fixture made +14255550100-109)
    from apps.numbers.models import PhoneNumber

    assert PhoneNumber.objects.get(number="+14255550105").owner is None
    # when it is texted
    response = post(send_body(sender, "+14255550105", report=True))
    # then the request is accepted but the carrier fails the message, with a report
    assert response.status_code == 202
    message = SmsMessage.objects.get()
    assert message.status == MessageStatus.FAILED
    assert "not in service" in message.status_detail
    report = Event.objects.get(event_type__endswith="SMSDeliveryReportReceived")
    assert report.data["DeliveryStatus"] == "Failed"


def test_long_messages_are_counted_in_segments(post: Any, sender: str) -> None:
    post(send_body(sender, "+447700900001", message="a" * 161))
    post(send_body(sender, "+447700900002", message="é" * 10 + "😀"))
    long_one, unicode_one = SmsMessage.objects.order_by("created_at")
    assert (long_one.encoding, long_one.segments) == ("GSM-7", 2)
    assert unicode_one.encoding == "UCS-2" and unicode_one.segments == 1


def test_unsupported_api_version_is_refused(acs: AcsClient, sender: str) -> None:
    response = acs.call(
        "POST", "/sms", send_body(sender, "+447700900001"), api_version="2020-01-01"
    )
    assert response.status_code == 400
    assert not SmsMessage.objects.exists()


def test_accepting_costs_a_few_queries_whatever_the_batch(
    resource: Any, sender: str, django_assert_max_num_queries: Any
) -> None:
    # The accept path is the API's hot path: a few queries, not one per recipient.
    from apps.sms import services

    def accept(count: int) -> None:
        recipients = [services.Recipient(f"+4477009{n:05d}") for n in range(count)]
        services.send(resource, services.SendRequest(sender, recipients, "Hi"))

    # the number, opt-outs and the insert (no repeatability ids given)
    with django_assert_max_num_queries(3):
        accept(1)
    # SQLite splits a 100-row insert in three (its limit on query parameters)
    with django_assert_max_num_queries(7):
        accept(100)
