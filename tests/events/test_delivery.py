"""Publishing and delivering: every event reaches every matching webhook at least once, signed,
in the schema promised, retried on Event Grid's schedule, and never to another tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from apps.core import outbound
from apps.events import dispatch, schemas, services, tasks
from apps.events.exceptions import DeliveryPending, SubscriptionNotActive
from apps.events.models import DeliveryState, Event, EventDelivery, SubscriptionState

pytestmark = pytest.mark.django_db

SMS = schemas.SMS_RECEIVED
REPORT = schemas.SMS_DELIVERY_REPORT_RECEIVED
SMS_DATA = {"MessageId": "m1", "From": "+15555550100", "To": "+15555550199", "Message": "hi"}


def publish(
    resource,
    event_type: str = SMS,
    *,
    data: dict | None = None,
    subject: str = "/phonenumber/15555550199",
) -> Event:
    return services.publish_event(resource, event_type, subject=subject, data=data or SMS_DATA)


def test_an_event_is_stored_and_delivered_to_matching_subscriptions_only(
    resource, other_resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given subscriptions: all types, SMS only, reports only, and another tenant's (all types)
    everything = subscribe("everything", path="/all")
    sms_only = subscribe("sms-only", event_types=[SMS], path="/sms")
    subscribe("reports-only", event_types=[REPORT], path="/reports")
    subscribe("other-tenant", on=other_resource, path="/other")

    # when an SMSReceived event is published
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(resource)

    # then it is stored, and delivered to the two matching subscriptions of this resource only
    assert Event.objects.filter(pk=event.pk, resource=resource).exists()
    assert sorted(r.path for r in receiver.notifications) == ["/all", "/sms"]
    delivered = EventDelivery.objects.filter(event=event, state=DeliveryState.DELIVERED)
    assert {d.subscription_id for d in delivered} == {everything.pk, sms_only.pk}
    assert EventDelivery.objects.filter(event=event).count() == 2


def test_disabled_and_unvalidated_subscriptions_get_nothing(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a disabled subscription and one awaiting manual validation
    services.set_subscription_enabled(subscribe("disabled", path="/disabled"), False)
    receiver.validation = "accept"
    awaiting = subscribe("awaiting", path="/awaiting")
    assert awaiting.state == SubscriptionState.AWAITING_VALIDATION

    # when an event is published
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then nobody gets it
    assert receiver.notifications == [] and not EventDelivery.objects.exists()


def test_event_grid_envelope_and_headers(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscription = subscribe("grid-hook")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(resource)

    # then the endpoint got an array of one Event Grid event
    (request,) = receiver.notifications
    assert request.header("Content-Type") == "application/json"
    (body,) = request.json
    assert body == {
        "id": str(event.id),
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/spool"
        f"/providers/Microsoft.Communication/communicationServices/{resource.slug}",
        "subject": "/phonenumber/15555550199",
        "data": SMS_DATA,
        "eventType": SMS,
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": schemas.timestamp(event.event_time),
    }
    assert body["eventTime"].endswith("Z")
    assert request.header("aeg-event-type") == "Notification"
    assert request.header("aeg-subscription-name") == "GRID-HOOK"
    assert request.header("aeg-delivery-count") == "0"
    assert request.header("aeg-data-version") == "1.0"
    assert request.header("aeg-metadata-version") == "1"
    assert request.header("webhook-id") == str(event.id)
    assert subscription.state == SubscriptionState.ACTIVE


def test_cloud_events_envelope(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscribe("cloud-hook", schema="CloudEventSchemaV1_0")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(resource)

    # then the endpoint got one structured-mode CloudEvent
    (request,) = receiver.notifications
    assert request.header("Content-Type") == "application/cloudevents+json; charset=utf-8"
    assert request.json == {
        "specversion": "1.0",
        "id": str(event.id),
        "source": schemas.topic(resource),
        "type": SMS,
        "subject": "/phonenumber/15555550199",
        "time": schemas.timestamp(event.event_time),
        "datacontenttype": "application/json",
        "data": SMS_DATA,
    }


def test_the_signature_verifies_with_standard_webhooks_and_a_tampered_body_does_not(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscription = subscribe()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then the receiver's library accepts the request as sent
    (request,) = receiver.notifications
    verifier = Webhook(subscription.secret)
    assert verifier.verify(request.body, request.headers)[0]["data"] == SMS_DATA

    # and refuses a changed body, or another secret
    tampered = request.body.replace(b'"hi"', b'"HI"')
    assert tampered != request.body
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(services.new_secret()).verify(request.body, request.headers)


def _verify_by_hand(secret: str, raw_body: bytes, headers: dict[str, str]) -> bool:
    """The recipe of docs/events.md, for receivers without the library."""
    headers = {k.lower(): v for k, v in headers.items()}
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > 300:
        return False
    signed = f"{msg_id}.{stamp}.".encode() + raw_body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, sig.split(",", 1)[1])
        for sig in headers["webhook-signature"].split()
        if sig.startswith("v1,")
    )


def test_the_documented_recipe_verifies_too(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscription = subscribe()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then
    (request,) = receiver.notifications
    assert _verify_by_hand(subscription.secret, request.body, request.headers)
    assert not _verify_by_hand(subscription.secret, request.body + b" ", request.headers)


def test_failures_are_retried_on_schedule_until_delivered(
    resource, receiver, subscribe, clock, django_capture_on_commit_callbacks
) -> None:
    # given an endpoint that answers 500 twice, then 200
    subscribe()
    receiver.statuses = [500, 503]

    # when an event is published: the first attempt fails
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(resource)
    delivery = EventDelivery.objects.get(event=event)
    first = delivery.attempts.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempt_count == 1
    assert delivery.last_status_code == 500
    assert (
        timedelta(seconds=10) <= delivery.next_attempt_at - first.started_at < timedelta(seconds=11)
    )

    # when the sweep runs before the retry is due, nothing is sent
    clock.advance(5)
    assert tasks.sweep() == 0 and len(receiver.notifications) == 1

    # when it runs after: the second attempt fails, and the next waits the schedule's next step
    clock.advance(6)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    second = delivery.attempts.last()
    assert delivery.attempt_count == 2 and delivery.last_status_code == 503
    assert (
        timedelta(seconds=30)
        <= delivery.next_attempt_at - second.started_at
        < timedelta(seconds=31)
    )

    # when the third comes due, it is delivered
    clock.advance(31)
    tasks.sweep()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED and delivery.attempt_count == 3
    assert [a.status_code for a in delivery.attempts.all()] == [500, 503, 200]
    assert delivery.next_attempt_at is None and delivery.delivered_at is not None

    # and every request carried the same event id, and counted the attempts before it
    assert {r.header("webhook-id") for r in receiver.notifications} == {str(event.id)}
    assert [r.header("aeg-delivery-count") for r in receiver.notifications] == ["0", "1", "2"]


def test_the_last_retry_step_repeats(settings) -> None:
    # given
    settings.EVENT_RETRY_SECONDS = [10, 30, 60]

    # then
    assert [dispatch.retry_delay(n) for n in (1, 2, 3, 4, 9)] == [10, 30, 60, 60, 60]


@pytest.mark.parametrize("status", [400, 413])
def test_bad_request_and_too_large_are_dead_lettered_at_once(
    resource, receiver, subscribe, status, django_capture_on_commit_callbacks
) -> None:
    # given
    subscribe()
    receiver.statuses = [status]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.DEAD_LETTERED and delivery.attempt_count == 1
    assert str(status) in delivery.dead_letter_reason and delivery.next_attempt_at is None


def test_an_event_past_its_time_to_live_is_dead_lettered(
    resource, receiver, subscribe, clock, settings, django_capture_on_commit_callbacks
) -> None:
    # given an endpoint that keeps failing, and a 1-minute time to live
    settings.EVENT_TTL_MINUTES = 1
    settings.EVENT_RETRY_SECONDS = [50]
    subscribe()
    receiver.statuses = [500] * 10
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # when a retry fails within the time to live, it is scheduled again
    clock.advance(51)
    tasks.sweep()
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.PENDING and delivery.attempt_count == 2

    # when the next one comes after it, it is dead-lettered without another request
    clock.advance(51)
    tasks.sweep()
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD_LETTERED and delivery.attempt_count == 2
    assert "time to live" in delivery.dead_letter_reason
    assert len(receiver.notifications) == 2


def test_a_failure_after_the_time_to_live_is_dead_lettered(
    resource, receiver, subscribe, clock, settings, django_capture_on_commit_callbacks
) -> None:
    # given an event whose time to live runs out while its attempt is under way
    settings.EVENT_TTL_MINUTES = 1
    subscribe()
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks():
        publish(resource)
    delivery = EventDelivery.objects.get()
    EventDelivery.objects.filter(pk=delivery.pk).update(
        expires_at=timezone.now() + timedelta(milliseconds=1)
    )

    # when the attempt fails
    state = dispatch.deliver(delivery.pk)

    # then it is not retried
    delivery.refresh_from_db()
    assert state == DeliveryState.DEAD_LETTERED and delivery.attempt_count == 1
    assert (
        "time to live" in delivery.dead_letter_reason and "HTTP 500" in delivery.dead_letter_reason
    )


def test_attempts_stop_at_the_maximum(
    resource, receiver, subscribe, clock, settings, django_capture_on_commit_callbacks
) -> None:
    # given
    settings.EVENT_MAX_ATTEMPTS = 2
    subscribe()
    receiver.statuses = [500, 500, 500]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)
    clock.advance(11)
    tasks.sweep()

    # then
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.DEAD_LETTERED and delivery.attempt_count == 2
    assert "2 attempts" in delivery.dead_letter_reason


def test_timeouts_and_refused_connections_are_recorded_and_retried(
    resource, receiver, subscribe, settings, django_capture_on_commit_callbacks
) -> None:
    # given a slow endpoint
    settings.EVENT_DELIVERY_TIMEOUT_SECONDS = 0.2
    subscribe()
    receiver.delay = 0.5

    # when
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then
    delivery = EventDelivery.objects.get()
    attempt = delivery.attempts.get()
    assert attempt.status_code is None and attempt.error == outbound.NO_ANSWER
    assert delivery.state == DeliveryState.PENDING and delivery.last_error == outbound.NO_ANSWER


def test_redeliver_sends_again(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a dead-lettered delivery
    subscribe()
    receiver.statuses = [400]
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.DEAD_LETTERED

    # when it is redelivered
    with django_capture_on_commit_callbacks(execute=True):
        services.redeliver(delivery)

    # then it is sent again, its attempts (for the retry cap) counted from zero, its history
    # kept, and the receiver told it is the second delivery of the event
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED and delivery.attempt_count == 1
    assert [a.status_code for a in delivery.attempts.all()] == [400, 200]
    assert [r.header("aeg-delivery-count") for r in receiver.notifications] == ["0", "1"]

    # and a delivered one can be sent again too, but a pending one cannot
    with django_capture_on_commit_callbacks(execute=True):
        services.redeliver(delivery)
    assert len(receiver.notifications) == 3
    assert receiver.notifications[-1].header("aeg-delivery-count") == "2"
    EventDelivery.objects.filter(pk=delivery.pk).update(state=DeliveryState.PENDING)
    with pytest.raises(DeliveryPending):
        services.redeliver(delivery)


def test_a_receiver_that_is_down_for_a_while_gets_every_event_once_back(
    resource, receiver, subscribe, clock, django_capture_on_commit_callbacks
) -> None:
    # given an Event Grid and a CloudEvents subscription on a receiver that then goes down
    subscribe("grid", path="/grid")
    subscribe("cloud", path="/cloud", schema="CloudEventSchemaV1_0")
    receiver.stop()

    # when 20 events are published while it is down
    with django_capture_on_commit_callbacks(execute=True):
        events = [publish(resource, data={"n": n}) for n in range(20)]

    # then all 40 deliveries are pending, each with its failed attempt recorded
    pending = EventDelivery.objects.filter(state=DeliveryState.PENDING)
    assert pending.count() == 40 and all(d.attempt_count == 1 for d in pending)
    assert {d.last_error for d in pending} == {outbound.NO_ANSWER}

    # when it is back and the sweep runs after the first retry step
    receiver.start()
    clock.advance(11)
    assert tasks.sweep() == 40

    # then every event arrived at both endpoints, each in its schema, and all are delivered
    posts = [r for r in receiver.received if r.method == "POST"]
    grid = [r.json for r in posts if r.path == "/grid" and isinstance(r.json, list)]
    grid = [body for body in grid if body[0]["eventType"] != schemas.VALIDATION_EVENT_TYPE]
    cloud = [r.json for r in posts if r.path == "/cloud"]
    ids = {str(e.id) for e in events}
    assert len(grid) == len(cloud) == 20
    assert {body[0]["id"] for body in grid} == ids and all(len(body) == 1 for body in grid)
    assert all(body[0]["eventType"] == SMS for body in grid)
    assert {body["id"] for body in cloud} == ids
    assert all(body["specversion"] == "1.0" and body["type"] == SMS for body in cloud)
    assert not EventDelivery.objects.exclude(state=DeliveryState.DELIVERED).exists()


def test_a_lost_task_message_is_sent_by_the_sweep(
    resource, receiver, subscribe, clock, django_capture_on_commit_callbacks
) -> None:
    # given a delivery whose queued task never ran (the on-commit callback is dropped)
    subscribe()
    with django_capture_on_commit_callbacks(execute=False):
        publish(resource)

    # when the sweep runs while the task could still be in the queue, it leaves it alone
    assert tasks.sweep() == 0

    # when it runs after the queue lease
    clock.advance(dispatch.QUEUE_LEASE_SECONDS + 1)
    assert tasks.sweep() == 1

    # then the event was delivered
    assert len(receiver.notifications) == 1
    assert EventDelivery.objects.get().state == DeliveryState.DELIVERED


def test_a_killed_workers_claim_is_taken_over_once_its_lease_ends(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a delivery claimed by a worker that died mid-request (lease still running)
    subscribe()
    with django_capture_on_commit_callbacks(execute=False):
        publish(resource)
    delivery = EventDelivery.objects.get()
    now = timezone.now()
    EventDelivery.objects.filter(pk=delivery.pk).update(
        lease_until=now + timedelta(seconds=30), queued_until=None
    )

    # when the sweep runs during the lease, or another worker gets the task, nothing is sent
    assert tasks.sweep() == 0
    assert dispatch.deliver(delivery.pk) is None
    assert receiver.notifications == []

    # when the lease has run out
    EventDelivery.objects.filter(pk=delivery.pk).update(lease_until=now - timedelta(seconds=1))
    assert tasks.sweep() == 1

    # then the sweep's task delivers it
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED and len(receiver.notifications) == 1


def test_a_rolled_back_transaction_publishes_nothing(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscribe()

    # when the caller's transaction fails after publishing
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            publish(resource)
            raise RuntimeError("the caller's change failed")

    # then nothing was stored, queued or sent
    assert not Event.objects.exists() and not EventDelivery.objects.exists()
    assert callbacks == [] and receiver.notifications == []


def test_a_test_event_goes_to_that_subscription_only(
    resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given two subscriptions
    chosen = subscribe("chosen", event_types=[REPORT], path="/chosen")
    subscribe("other", path="/other")

    # when one is test-fired
    with django_capture_on_commit_callbacks(execute=True):
        delivery = services.test_fire(chosen)

    # then only it got a sample of its first type, marked by its subject
    (request,) = receiver.notifications
    (body,) = request.json
    assert request.path == "/chosen" and body["eventType"] == REPORT
    assert body["subject"] == "/spool/test" and body["data"]["DeliveryStatus"] == "Delivered"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED

    # and a disabled subscription cannot be test-fired
    services.set_subscription_enabled(chosen, False)
    with pytest.raises(SubscriptionNotActive):
        services.test_fire(chosen)


def test_deliveries_of_a_disabled_subscription_wait_for_it(
    resource, receiver, subscribe, clock, django_capture_on_commit_callbacks
) -> None:
    # given a failed delivery, then the subscription is disabled
    subscription = subscribe()
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)
    services.set_subscription_enabled(subscription, False)

    # when its retry comes due, nothing is sent
    clock.advance(11)
    assert tasks.sweep() == 0

    # when the subscription is enabled again, the next sweep delivers it
    services.set_subscription_enabled(subscription, True)
    assert tasks.sweep() == 1
    assert EventDelivery.objects.get().state == DeliveryState.DELIVERED


def test_unknown_event_types_are_a_programming_error(resource) -> None:
    with pytest.raises(ValueError):
        services.publish_event(resource, "SMSReceived", subject="", data={})
    assert not Event.objects.exists()


def test_publishing_costs_three_queries(resource, subscribe, django_assert_num_queries) -> None:
    # given three subscriptions
    for name in ("one", "two", "three"):
        subscribe(name)

    # when / then: insert the event, read the subscriptions, insert the deliveries (+ savepoint)
    with django_assert_num_queries(5):
        publish(resource)
    assert EventDelivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_workers_given_one_delivery_send_it_once(
    resource, receiver, subscribe, monkeypatch
) -> None:
    # given a due delivery whose task was not run, and a slow receiver
    subscribe()
    monkeypatch.setattr(dispatch, "queue_tasks", lambda ids: None)
    publish(resource)
    delivery = EventDelivery.objects.get()
    receiver.delay = 0.3
    start = threading.Barrier(4)
    results: list[str | None] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(dispatch.deliver(delivery.pk))
        finally:
            connections.close_all()

    # when four workers try it at once
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then exactly one sent it
    assert len(receiver.notifications) == 1
    assert sorted(results, key=str) == [None, None, None, DeliveryState.DELIVERED]


def test_a_disabled_subscriptions_deliveries_end_with_their_time_to_live(
    resource, receiver, subscribe, clock, settings, django_capture_on_commit_callbacks
) -> None:
    # given a pending delivery of a subscription that is then disabled
    settings.EVENT_TTL_MINUTES = 1
    subscription = subscribe()
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)
    services.set_subscription_enabled(subscription, False)

    # when the sweep runs after the time to live
    clock.advance(61)
    tasks.sweep()

    # then the delivery is dead-lettered, with nothing more sent
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.DEAD_LETTERED and len(receiver.notifications) == 1
    assert "not active" in delivery.dead_letter_reason


def test_data_with_datetimes_is_stored_as_text(resource) -> None:
    # given a publisher that passes a datetime
    now = timezone.now()

    # when
    event = services.publish_event(resource, SMS, subject="", data={"ReceivedTimestamp": now})

    # then it is stored and sent as ISO 8601 text
    event.refresh_from_db()
    assert event.data["ReceivedTimestamp"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_slow_receiver_holds_a_worker_no_longer_than_the_deadline_and_never_twice(
    resource, receiver, subscribe, settings, django_capture_on_commit_callbacks
) -> None:
    # given a receiver that takes 30 s to answer, and a 1 s deadline
    settings.EVENT_DELIVERY_TIMEOUT_SECONDS = 1
    subscribe()
    receiver.delay = 30
    started = time.monotonic()

    # when an event is published (eager Celery: the attempt runs here)
    with django_capture_on_commit_callbacks(execute=True):
        publish(resource)

    # then the attempt ended at its deadline, well inside its claim, and the row is free
    assert time.monotonic() - started < 3
    delivery = EventDelivery.objects.get()
    assert delivery.attempts.get().error == outbound.NO_ANSWER
    assert delivery.lease_until is None and delivery.state == DeliveryState.PENDING
    assert dispatch.CLAIM_MARGIN_SECONDS > 0  # the claim outlives the deadline by this much


def test_one_subscription_gets_no_more_than_its_share_of_workers(
    resource, other_resource, receiver, subscribe, settings, clock
) -> None:
    # given two attempts of one subscription in flight (claimed by other workers)
    settings.EVENT_CONCURRENCY_PER_SUBSCRIPTION = 2
    slow = subscribe("slow")
    fast = subscribe("fast", on=other_resource)
    for n in range(3):
        services.publish_event(resource, SMS, subject=f"/n/{n}", data={})
    services.publish_event(other_resource, SMS, subject="/other", data={})
    held = list(EventDelivery.objects.filter(subscription=slow).order_by("created_at"))
    EventDelivery.objects.filter(pk__in=[d.pk for d in held[:2]]).update(
        lease_until=timezone.now() + timedelta(seconds=60)
    )

    # when a worker is given the third, then it leaves it for later (the sweep re-queues it)
    assert dispatch.deliver(held[2].pk) is None
    held[2].refresh_from_db()
    assert held[2].attempt_count == 0 and held[2].queued_until is None

    # and another subscription's delivery goes at once
    other = EventDelivery.objects.get(subscription=fast)
    assert dispatch.deliver(other.pk) == DeliveryState.DELIVERED

    # when the claims end, the third goes too
    EventDelivery.objects.filter(subscription=slow).update(lease_until=None)
    assert dispatch.deliver(held[2].pk) == DeliveryState.DELIVERED


def test_aeg_delivery_count_counts_every_request_of_the_event_to_that_subscription(
    resource, receiver, subscribe, clock, django_capture_on_commit_callbacks
) -> None:
    # given two subscriptions; the receiver fails the first request it gets (flaky's: the
    # deliveries go out in the order of the subscriptions' names)
    subscribe("flaky", path="/flaky")
    subscribe("steady", path="/steady")
    receiver.statuses = [503]

    def counts(path: str) -> list[str | None]:
        return [r.header("aeg-delivery-count") for r in receiver.notifications if r.path == path]

    # when an event is published, and flaky's delivery is retried by the sweep and refused
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(resource)
    flaky = EventDelivery.objects.get(event=event, subscription__name="flaky")
    receiver.statuses = [400]
    clock.advance(11)
    tasks.sweep()
    flaky.refresh_from_db()
    assert flaky.state == DeliveryState.DEAD_LETTERED

    # and then redelivered by hand, twice
    with django_capture_on_commit_callbacks(execute=True):
        services.redeliver(flaky)
    with django_capture_on_commit_callbacks(execute=True):
        services.redeliver(flaky)

    # then each request, as the endpoint received it, counted the ones before it: the retry
    # and both redeliveries; the other subscription's count is its own
    assert counts("/flaky") == ["0", "1", "2", "3"]
    assert counts("/steady") == ["0"]
    flaky.refresh_from_db()
    assert flaky.attempt_count == 1 and flaky.attempts.count() == 4
