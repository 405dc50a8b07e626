"""Creating a webhook subscription: a worker makes the endpoint's handshake, whose answer
decides; bad input saves nothing; the handshake cannot be turned inward or held open."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from apps.core import outbound
from apps.core.errors import ApiError
from apps.events import dispatch, schemas, services
from apps.events.models import EventSubscription, SubscriptionState

pytestmark = pytest.mark.django_db

SMS = schemas.SMS_RECEIVED


def _create(resource, **fields) -> EventSubscription:
    """Create as the API does, then make the handshake as the worker does."""
    subscription = services.create_subscription(resource, **fields)
    assert subscription.state == SubscriptionState.VALIDATING
    services.validate_subscription(subscription.pk)
    subscription.refresh_from_db()
    return subscription


def _validation_url(receiver) -> str:
    handshake = next(
        r for r in receiver.received if r.header("aeg-event-type") == "SubscriptionValidation"
    )
    return handshake.json[0]["data"]["validationUrl"]


def test_creating_sends_nothing_the_worker_makes_the_handshake(resource, receiver) -> None:
    # when a subscription is created (in the web request)
    subscription = services.create_subscription(resource, name="hook", endpoint_url=receiver.url)

    # then nothing was sent yet: it is validating, and a worker's task will make the handshake
    assert subscription.state == SubscriptionState.VALIDATING and receiver.received == []
    assert services.validate_subscription(subscription.pk) == SubscriptionState.ACTIVE
    assert len(receiver.received) == 1
    # and once made, there is nothing to make again
    assert services.validate_subscription(subscription.pk) is None
    assert len(receiver.received) == 1


def test_an_endpoint_that_echoes_the_code_is_active_at_once(resource, receiver) -> None:
    # when
    subscription = _create(resource, name="sms-hook", endpoint_url=receiver.url, event_types=[SMS])

    # then the endpoint got one Event Grid validation event, and the subscription is active
    assert subscription.state == SubscriptionState.ACTIVE
    (handshake,) = receiver.received
    assert handshake.header("aeg-event-type") == "SubscriptionValidation"
    assert handshake.header("aeg-subscription-name") == "SMS-HOOK"
    (event,) = handshake.json
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert event["data"]["validationCode"] == subscription.validation_code
    assert event["topic"].endswith(f"/communicationServices/{resource.slug}")
    assert event["dataVersion"] == "2" and event["metadataVersion"] == "1"
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) > 40


def test_an_endpoint_that_only_accepts_awaits_its_validation_link(resource, receiver) -> None:
    # given an endpoint that answers 200 without the code
    receiver.validation = "accept"

    # when it is subscribed
    subscription = _create(resource, name="manual", endpoint_url=receiver.url)

    # then it waits for manual validation, and gets no events meanwhile
    assert subscription.state == SubscriptionState.AWAITING_VALIDATION
    link = _validation_url(receiver)
    assert link.startswith(f"{settings.PUBLIC_URL}/api/v1/events/validate/{subscription.id}?code=")

    # when someone opens the link (no login needed)
    parts = urlsplit(link)
    answer = Client().get(f"{parts.path}?{parts.query}")

    # then it is active
    assert answer.status_code == 200 and answer.json()["validationResult"] == "Validated"
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE


def test_a_wrong_or_expired_validation_code_is_refused(resource, receiver, clock) -> None:
    # given a subscription awaiting manual validation
    receiver.validation = "accept"
    subscription = _create(resource, name="manual", endpoint_url=receiver.url)
    path = f"/api/v1/events/validate/{subscription.id}"

    # when a wrong code is given, then it is refused and nothing changes
    wrong = Client().get(f"{path}?code=guess")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "InvalidValidationCode"
    assert Client().get(f"/api/v1/events/validate/{resource.pk}?code=x").status_code == 404

    # when the right code comes after 10 minutes, then it is refused too
    clock.advance(11 * 60)
    late = Client().get(f"{path}?code={subscription.validation_code}")
    assert late.status_code == 400 and "expired" in late.json()["error"]["message"]
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.AWAITING_VALIDATION


@pytest.mark.parametrize(
    ("validation", "reason"),
    [(500, "HTTP 500"), (404, "HTTP 404"), ("wrong", "different validationResponse")],
)
def test_an_endpoint_that_refuses_the_handshake_fails_validation(
    resource, receiver, validation, reason
) -> None:
    # given
    receiver.validation = validation

    # when
    subscription = _create(resource, name="hook", endpoint_url=receiver.url)

    # then it is kept, failed, with the reason, and gets no events
    assert subscription.state == SubscriptionState.VALIDATION_FAILED
    assert reason in subscription.validation_error
    services.publish_event(resource, SMS, subject="x", data={})
    assert subscription.deliveries.count() == 0

    # when the endpoint is fixed and it is validated again, then it is active
    receiver.validation = "echo"
    assert services.revalidate(subscription).state == SubscriptionState.VALIDATING
    assert services.validate_subscription(subscription.pk) == SubscriptionState.ACTIVE


def test_an_unreachable_endpoint_fails_validation(resource, receiver) -> None:
    # given an endpoint nobody listens on
    receiver.stop()

    # when
    subscription = _create(resource, name="hook", endpoint_url=receiver.url)

    # then the reason is named, in words that do not tell a closed port from a silent one
    assert subscription.state == SubscriptionState.VALIDATION_FAILED
    assert outbound.NO_ANSWER in subscription.validation_error


def test_an_internal_endpoint_is_never_sent_the_handshake(resource, receiver, settings) -> None:
    # given a deployment that allows no private network (production), and an endpoint on
    # loopback given by a name
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    url = receiver.url.replace("127.0.0.1", "localhost")

    # when
    subscription = _create(resource, name="hook", endpoint_url=url)

    # then nothing was sent, and it failed saying why
    assert receiver.received == []
    assert subscription.state == SubscriptionState.VALIDATION_FAILED
    assert outbound.NOT_ALLOWED in subscription.validation_error


def test_a_slow_endpoint_cannot_hold_the_handshake(resource, receiver, monkeypatch) -> None:
    # given an endpoint that takes 30 s to answer (tests/core/test_outbound.py drips bytes)
    monkeypatch.setattr(services, "HANDSHAKE_TIMEOUT_SECONDS", 1)
    receiver.validation_delay = 30

    # when
    started = time.monotonic()
    subscription = _create(resource, name="hook", endpoint_url=receiver.url)

    # then the worker is free again within the deadline
    assert time.monotonic() - started < 3
    assert subscription.state == SubscriptionState.VALIDATION_FAILED


def test_a_lost_handshake_message_is_queued_again_by_the_sweep(resource, receiver, clock) -> None:
    # given a subscription whose handshake task never ran (a lost broker message)
    subscription = services.create_subscription(resource, name="hook", endpoint_url=receiver.url)

    # when the sweep runs after the queue lease (eager Celery runs what it queues)
    clock.advance(dispatch.QUEUE_LEASE_SECONDS + 1)
    dispatch.sweep()

    # then the handshake was made
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE and len(receiver.received) == 1


def test_cloud_events_handshake_is_an_options_request(resource, receiver) -> None:
    # when a CloudEvents subscription is created for an endpoint that allows our origin
    receiver.allowed_origin = settings.PUBLIC_HOST
    subscription = _create(
        resource, name="cloud-hook", endpoint_url=receiver.url, schema="CloudEventSchemaV1_0"
    )

    # then the endpoint was asked with the abuse-protection OPTIONS request, and it is active
    (options,) = receiver.received
    assert options.method == "OPTIONS"
    assert options.header("WebHook-Request-Origin") == settings.PUBLIC_HOST
    assert subscription.state == SubscriptionState.ACTIVE


def test_cloud_events_endpoint_that_does_not_allow_us_fails_validation(resource, receiver) -> None:
    # given an endpoint that answers OPTIONS without WebHook-Allowed-Origin
    receiver.allowed_origin = None

    # when / then
    subscription = _create(
        resource, name="cloud-hook", endpoint_url=receiver.url, schema="CloudEventSchemaV1_0"
    )
    assert subscription.state == SubscriptionState.VALIDATION_FAILED
    assert "WebHook-Allowed-Origin" in subscription.validation_error


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"event_types": ["Microsoft.Communication.SmsReceived"]}, "event_types"),
        ({"event_types": "Microsoft.Communication.SMSReceived"}, "event_types"),
        ({"endpoint_url": "ftp://example.com/hook"}, "endpoint_url"),
        ({"endpoint_url": "not a url"}, "endpoint_url"),
        ({"endpoint_url": "http://x@127.0.0.1/hook"}, "endpoint_url"),
        ({"endpoint_url": "http://[::1]/hook"}, "endpoint_url"),
        ({"name": "a b"}, "name"),
        ({"name": "x"}, "name"),
        ({"schema": "CustomInputSchema"}, "schema"),
    ],
)
def test_bad_input_is_refused_before_any_request(resource, receiver, fields, target) -> None:
    # given
    request = {"name": "hook", "endpoint_url": receiver.url, **fields}

    # when / then
    with pytest.raises(ApiError) as refused:
        services.create_subscription(resource, **request)
    assert refused.value.status == 400 and refused.value.target == target
    assert not EventSubscription.objects.exists() and not receiver.received


def test_names_are_unique_per_resource(resource, other_resource, subscribe) -> None:
    # given
    subscribe("hook")

    # when the same name is used again on the same resource, then it is refused
    with pytest.raises(ApiError) as refused:
        subscribe("hook")
    assert refused.value.status == 409

    # and another resource may use it
    subscribe("hook", on=other_resource)
    assert EventSubscription.objects.count() == 2


def test_disable_and_enable(subscribe) -> None:
    # given
    subscription = subscribe()

    # when / then
    services.set_subscription_enabled(subscription, False)
    assert subscription.state == SubscriptionState.DISABLED
    services.set_subscription_enabled(subscription, True)
    assert subscription.state == SubscriptionState.ACTIVE
