"""The console's error log: a resource's failures from every part of Spool in one list, newest
first, each linked to its page with the fix when known, filtered by source and time; another
resource's failures never show, and choices (a declined call) are not failures."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.automation.models import Callback, CallConnection, MediaOperation
from apps.calls.models import Call
from apps.core.models import RequestLog
from apps.events.models import Event, EventDelivery, EventSubscription
from apps.sms.models import SmsMessage

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def failures(resource: Any, when: Any) -> None:
    RequestLog.objects.create(
        at=when,
        kind=RequestLog.Kind.ACS,
        resource_slug=resource.slug,
        method="POST",
        route="sms",
        path="/sms",
        status=401,
        duration_ms=1,
        error_code="Unauthorized",
        error_message="The signature does not match.",
        request_id=str(uuid.uuid4()),
    )
    message = SmsMessage.objects.create(
        id=f"m-{uuid.uuid4()}",
        resource=resource,
        direction="outbound",
        sender="+14255550100",
        recipient="+14255550199",
        text="hi",
        encoding="GSM",
        status="failed",
        status_detail="+14255550199 has opted out of messages from +14255550100.",
        finished_at=when,
    )
    SmsMessage.objects.filter(pk=message.pk).update(created_at=when)
    event = Event.objects.create(
        resource=resource, event_type="Microsoft.Communication.SMSReceived", event_time=when
    )
    subscription = EventSubscription.objects.create(
        resource=resource,
        name=f"hooks-{uuid.uuid4().hex[:6]}",
        endpoint_url="https://example.com/h",
        secret="x",
        validation_code="x",
        validation_expires_at=when,
    )
    delivery = EventDelivery.objects.create(
        resource=resource,
        event=event,
        subscription=subscription,
        expires_at=when,
        state="deadLettered",
        attempt_count=5,
        dead_letter_reason="Gave up after 5 attempts.",
    )
    EventDelivery.objects.filter(pk=delivery.pk).update(created_at=when)
    failed = Call.objects.create(
        resource=resource,
        caller_raw_id="8:acs:x",
        created_at=when,
        ended_at=when,
        end_code=503,
        end_subcode=510503,
        end_reason="The media server went away.",
    )
    Call.objects.create(  # declined: a choice, not a failure
        resource=resource,
        caller_raw_id="8:acs:x",
        created_at=when,
        ended_at=when,
        end_code=603,
    )
    connection = CallConnection.objects.create(
        resource=resource,
        call=failed,
        callback_uri="https://example.com/cb",
        source_raw_id="8:acs:x",
        created_at=when,
    )
    MediaOperation.objects.create(
        connection=connection,
        kind="play",
        state="failed",
        created_at=when,
        ended_at=when,
        result_code=400,
        result_subcode=8535,
        result_message="The file could not be played.",
    )
    Callback.objects.create(
        connection=connection,
        seq=1,
        event_type="CallConnected",
        url="https://example.com/cb",
        state="failed",
        created_at=when,
        next_attempt_at=when,
        last_status_code=500,
    )


def test_every_failure_of_the_resource_is_listed_with_its_link_and_fix(
    resource: Any, other_resource: Any, owner: Any, django_assert_max_num_queries: Any
) -> None:
    now = timezone.now()
    failures(resource, now - timedelta(hours=1))
    failures(other_resource, now - timedelta(hours=1))

    client = signed_in(owner)
    # A fixed number: the page, its membership checks, and one query per source.
    with django_assert_max_num_queries(20):
        page = client.get(f"/resources/{resource.slug}/errors/")

    assert page.status_code == 200
    text = page.content.decode()
    assert text.count('<tr class="problem') == 6  # the declined call is not one; nor the other's
    assert "POST sms → 401 Unauthorized" in text and "Sign with one of the resource" in text
    assert "has opted out" in text and "texted STOP" in text
    assert "dead-lettered" in text and "/events/deliveries/" in text
    assert "Call ended 503/510503" in text and "The media server went away." in text
    assert "play failed (400/8535)" in text and "could not be delivered" in text
    assert f"/resources/{resource.slug}/sms/messages/" in text
    assert other_resource.slug not in text


def test_filters_by_source_and_time(resource: Any, owner: Any) -> None:
    now = timezone.now()
    failures(resource, now - timedelta(hours=1))
    failures(resource, now - timedelta(days=3))
    client = signed_in(owner)

    sms = client.get(f"/resources/{resource.slug}/errors/?source=sms&range=7d").content.decode()
    assert sms.count('<tr class="problem') == 2 and 'class="problem sms"' in sms
    today = client.get(f"/resources/{resource.slug}/errors/?range=24h").content.decode()
    assert today.count('<tr class="problem') == 6
    everything = client.get(f"/resources/{resource.slug}/errors/?range=all&source=nonsense")
    assert everything.content.decode().count('<tr class="problem') == 12
    quiet = client.get(f"/resources/{resource.slug}/errors/?source=calls&range=24h")
    assert quiet.content.decode().count('<tr class="problem') == 1


def sent_awaiting_receipt(resource: Any, submitted_at: Any, *, report: bool = True) -> str:
    message = SmsMessage.objects.create(
        id=f"m-{uuid.uuid4()}",
        resource=resource,
        direction="outbound",
        sender="+14255550100",
        recipient="+14255550177",
        text="hi",
        encoding="GSM",
        status="sent",
        delivery_report_requested=report,
        submitted_at=submitted_at,
    )
    return message.id


def test_a_message_whose_delivery_receipt_is_overdue_is_listed(
    resource: Any, other_resource: Any, owner: Any, settings: Any
) -> None:
    # given messages the carrier took, with a delivery report asked for: one two hours ago,
    # one a minute ago; one without a report asked for; another resource's overdue one
    settings.SMS_RECEIPT_OVERDUE_MINUTES = 60
    now = timezone.now()
    overdue = sent_awaiting_receipt(resource, now - timedelta(hours=2))
    recent = sent_awaiting_receipt(resource, now - timedelta(minutes=1))
    unasked = sent_awaiting_receipt(resource, now - timedelta(hours=2), report=False)
    others = sent_awaiting_receipt(other_resource, now - timedelta(hours=2))

    text = signed_in(owner).get(f"/resources/{resource.slug}/errors/?source=sms").content.decode()

    # then only the overdue one shows, linked to its page, with what to do
    assert text.count('<tr class="problem') == 1
    assert "to +14255550177: no delivery receipt" in text and "handset may be off" in text
    assert f"/sms/messages/{overdue}/" in text
    for quiet in (recent, unasked, others):
        assert quiet not in text
