"""The official azure-communication-sms SDK against a live `manage.py serve` (real worker)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from azure.communication.phonenumbers import (
    PhoneNumberAssignmentType,
    PhoneNumberCapabilities,
    PhoneNumberCapabilityType,
    PhoneNumbersClient,
    PhoneNumberType,
)
from azure.communication.sms import SmsClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def account(live_spool: LiveSpool) -> tuple[str, str]:
    """A resource's connection string and a number it bought with SMS both ways."""
    live_spool.manage("seed_numbers", "--country", "US", "--count", "10")
    connection = live_spool.create_resource()
    numbers = PhoneNumbersClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    both = PhoneNumberCapabilityType.INBOUND_OUTBOUND
    search = numbers.begin_search_available_phone_numbers(
        "US",
        PhoneNumberType.GEOGRAPHIC,
        PhoneNumberAssignmentType.APPLICATION,
        PhoneNumberCapabilities(calling=both, sms=both),
        quantity=1,
        polling_interval=0.2,
    ).result()
    numbers.begin_purchase_phone_numbers(search.search_id, polling_interval=0.2).result()
    return connection, search.phone_numbers[0]


def messages(live: LiveSpool, **filters: Any) -> list[dict[str, Any]]:
    script = (
        "import json; from apps.sms.models import SmsMessage; "
        f"print(json.dumps(list(SmsMessage.objects.filter(**{filters!r})"
        ".values('id', 'status', 'recipient', 'direction', 'text', 'tag'))))"
    )
    output = live.manage("shell", "-c", script).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_send_to_handsets_with_delivery_reports(
    live_spool: LiveSpool, account: tuple[str, str]
) -> None:
    connection, number = account
    client = SmsClient.from_connection_string(connection, connection_verify=live_spool.cert)
    # when the SDK sends to two numbers outside the deployment, one of them malformed
    results = client.send(
        from_=number,
        to=["+447700900001", "+447700900002", "07700"],
        message="Hello from the SDK",
        enable_delivery_report=True,
        tag="e2e",
    )
    # then the good ones are accepted with ids, and the bad one fails alone
    good = [r for r in results if r.successful]
    assert [r.to for r in good] == ["+447700900001", "+447700900002"]
    assert all(r.message_id and r.http_status_code == 202 for r in good)
    bad = [r for r in results if not r.successful][0]
    assert bad.http_status_code == 400 and "E.164" in bad.error_message
    # and the worker delivers them
    delivered = wait_for(
        lambda: (
            [m for m in messages(live_spool, tag="e2e") if m["status"] == "delivered"]
            if len(messages(live_spool, tag="e2e", status="delivered")) == 2
            else None
        )
    )
    assert {m["id"] for m in delivered} == {r.message_id for r in good}


def test_bad_requests_are_errors(live_spool: LiveSpool, account: tuple[str, str]) -> None:
    connection, number = account
    client = SmsClient.from_connection_string(connection, connection_verify=live_spool.cert)
    with pytest.raises(HttpResponseError) as error:
        client.send(from_=number, to=[f"+4477009{n:05d}" for n in range(101)], message="x")
    assert error.value.status_code == 400
    with pytest.raises(HttpResponseError) as error:
        client.send(from_="+14255550000", to="+447700900001", message="x")
    assert error.value.status_code == 400 and "not a phone number of this resource" in str(
        error.value
    )
    with pytest.raises(HttpResponseError):
        client.send(from_=number, to="+447700900001", message="")
    wrong = (
        connection.split(";accesskey=")[0] + ";accesskey=" + base64.b64encode(b"k" * 32).decode()
    )
    with pytest.raises(ClientAuthenticationError):
        SmsClient.from_connection_string(wrong, connection_verify=live_spool.cert).send(
            from_=number, to="+447700900001", message="x"
        )


def test_a_message_to_a_number_of_the_deployment_arrives_inbound(
    live_spool: LiveSpool, account: tuple[str, str]
) -> None:
    connection, number = account
    client = SmsClient.from_connection_string(connection, connection_verify=live_spool.cert)
    # when the number texts itself (a number of this deployment)
    [result] = client.send(from_=number, to=number, message="Loop")
    assert result.successful
    # then it arrives as an inbound message
    inbound = wait_for(lambda: messages(live_spool, direction="inbound", text="Loop"))
    assert inbound[0]["recipient"] == number


def test_a_webhook_gets_the_sms_received_and_delivery_report_events_signed(
    live_spool: LiveSpool, account: tuple[str, str]
) -> None:
    from standardwebhooks import Webhook

    from tests.events.conftest import Receiver

    connection, number = account
    slug = live_spool.slug_of(connection)
    receiver = Receiver()
    receiver.start()
    try:
        # given a webhook subscribed to the resource's SMS events (the handshake runs here)
        script = (
            "from apps.accounts.models import Resource; from apps.events import services; "
            f"s = services.create_subscription(Resource.objects.get(slug='{slug}'), "
            f"name='sms-hook', endpoint_url='{receiver.url}', event_types=["
            "'Microsoft.Communication.SMSReceived', "
            "'Microsoft.Communication.SMSDeliveryReportReceived']); "
            # the handshake here and now, rather than in the worker a moment later
            "services.validate_subscription(s.pk); print(s.secret)"
        )
        secret = live_spool.manage("shell", "-c", script).stdout.strip().splitlines()[-1]
        client = SmsClient.from_connection_string(connection, connection_verify=live_spool.cert)

        # when the number texts itself with a delivery report
        [result] = client.send(
            from_=number, to=number, message="Hook me", enable_delivery_report=True
        )

        # then the webhook receives both events, in the Event Grid schema, signed
        def events() -> dict[str, Any]:
            return {n.json[0]["eventType"]: n for n in receiver.notifications if n.body}

        got = wait_for(lambda: events() if len(events()) == 2 else None)
        received = got["Microsoft.Communication.SMSReceived"]
        report = got["Microsoft.Communication.SMSDeliveryReportReceived"]
        assert received.json[0]["data"]["Message"] == "Hook me"
        assert received.json[0]["data"]["To"] == number
        assert report.json[0]["data"]["MessageId"] == result.message_id
        assert report.json[0]["data"]["DeliveryStatus"] == "Delivered"
        for notification in (received, report):
            Webhook(secret).verify(notification.body, notification.headers)
    finally:
        receiver.stop()
