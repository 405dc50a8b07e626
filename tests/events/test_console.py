"""The console's Events page and delivery page."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.events import schemas, services
from apps.events.models import DeliveryState, EventDelivery, EventSubscription, SubscriptionState

pytestmark = pytest.mark.django_db

SMS = schemas.SMS_RECEIVED


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def test_create_a_subscription_from_the_page(
    browser, resource, receiver, django_capture_on_commit_callbacks
) -> None:
    # when the owner fills in the form (the worker's handshake runs on commit: eager Celery)
    with django_capture_on_commit_callbacks(execute=True):
        page = browser.post(
            f"/resources/{resource.slug}/events/",
            {
                "action": "create",
                "name": "sms-hook",
                "endpoint_url": receiver.url,
                "event_types": [SMS, schemas.SMS_DELIVERY_REPORT_RECEIVED],
                "schema": "EventGridSchema",
            },
            follow=True,
        )

    # then the page says it is being validated, and the worker made it active
    subscription = EventSubscription.objects.get()
    assert subscription.state == SubscriptionState.ACTIVE
    assert subscription.event_types == [SMS, schemas.SMS_DELIVERY_REPORT_RECEIVED]
    assert b"sms-hook is being validated" in page.content
    assert subscription.secret.encode() in page.content
    assert b'class="active">Events</a>' in page.content


def test_a_failed_validation_is_shown_with_its_reason_and_can_be_retried(
    browser, resource, receiver, django_capture_on_commit_callbacks
) -> None:
    # given an endpoint that fails the handshake
    receiver.validation = 500
    url = f"/resources/{resource.slug}/events/"
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(url, {"action": "create", "name": "sms-hook", "endpoint_url": receiver.url})

    # then the list shows why, with a button to try again
    page = browser.get(url).content
    assert b"Validation failed" in page and b"answered the validation request with HTTP 500" in page
    assert b'value="validate"' in page

    # when the endpoint is fixed and validation is asked again, then it is active
    receiver.validation = "echo"
    subscription = EventSubscription.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(url, {"action": "validate", "subscription": subscription.pk})
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE


def test_a_refused_url_is_reported_and_the_form_kept(browser, resource) -> None:
    # when
    page = browser.post(
        f"/resources/{resource.slug}/events/",
        {"action": "create", "name": "sms-hook", "endpoint_url": "http://x@127.0.0.1/hook"},
        follow=True,
    )

    # then nothing is saved, the reason is shown, and what was typed is still there
    assert not EventSubscription.objects.exists()
    assert b"credentials" in page.content
    assert b'value="http://x@127.0.0.1/hook"' in page.content


def test_the_validation_link_is_never_shown_to_the_subscriber(
    browser, resource, receiver, django_capture_on_commit_callbacks
) -> None:
    # given a subscription awaiting its manual validation
    receiver.validation = "accept"
    with django_capture_on_commit_callbacks(execute=True):
        page = browser.post(
            f"/resources/{resource.slug}/events/",
            {"action": "create", "name": "manual", "endpoint_url": receiver.url},
            follow=True,
        )
    page = browser.get(f"/resources/{resource.slug}/events/")

    # then the page says what the endpoint must do, but not the link (the endpoint got it)
    subscription = EventSubscription.objects.get()
    assert subscription.state == SubscriptionState.AWAITING_VALIDATION
    assert b"validationUrl it was sent" in page.content
    assert subscription.validation_code.encode() not in page.content


def test_test_fire_disable_enable_delete(
    browser, resource, subscribe, receiver, django_capture_on_commit_callbacks
) -> None:
    # given
    subscription = subscribe()
    url = f"/resources/{resource.slug}/events/"

    # when test-fired, then the delivery page shows it delivered
    with django_capture_on_commit_callbacks(execute=True):
        fired = browser.post(url, {"action": "test", "subscription": subscription.pk})
    delivery = EventDelivery.objects.get()
    assert fired["Location"] == f"{url}deliveries/{delivery.pk}/"
    detail = browser.get(fired["Location"])
    assert b'data-state="delivered"' in detail.content and b"HTTP 200" in detail.content
    assert b"/spool/test" in detail.content

    # when disabled and enabled again
    browser.post(url, {"action": "disable", "subscription": subscription.pk})
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.DISABLED
    browser.post(url, {"action": "enable", "subscription": subscription.pk})
    subscription.refresh_from_db()
    assert subscription.state == SubscriptionState.ACTIVE

    # when deleted
    page = browser.post(url, {"action": "delete", "subscription": subscription.pk}, follow=True)
    assert b"Subscription hook deleted." in page.content
    assert not EventSubscription.objects.exists()


def test_deliveries_table_filters_and_redelivers(
    browser, resource, subscribe, receiver, django_capture_on_commit_callbacks
) -> None:
    # given one delivered and one dead-lettered delivery
    subscribe()
    receiver.statuses = [200, 400]
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(resource, SMS, subject="/phonenumber/1", data={})
        services.publish_event(
            resource, schemas.SMS_DELIVERY_REPORT_RECEIVED, subject="/phonenumber/1", data={}
        )
    url = f"/resources/{resource.slug}/events/"

    # when the table is filtered by state
    everything = browser.get(url).content.split(b'id="deliveries"')[1]
    dead = browser.get(url, {"state": "deadLettered"}).content.split(b'id="deliveries"')[1]

    # then
    assert b">SMSReceived<" in everything and b">SMSDeliveryReportReceived<" in everything
    assert b">SMSDeliveryReportReceived<" in dead and b">SMSReceived<" not in dead

    # when the dead-lettered one is redelivered from its page
    delivery = EventDelivery.objects.get(state=DeliveryState.DEAD_LETTERED)
    detail_url = f"{url}deliveries/{delivery.pk}/"
    assert b"HTTP 400" in browser.get(detail_url).content
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(detail_url)

    # then it is delivered
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED


def test_readers_see_but_cannot_act(resource, subscribe, make_user) -> None:
    # given a reader and a subscription
    subscription = subscribe()
    reader = make_user("reader")
    accounts.add_member(resource, "reader", Role.READER)
    client = Client()
    client.force_login(reader)
    url = f"/resources/{resource.slug}/events/"

    # when they look, then they see it without its secret or the form
    page = client.get(url)
    assert page.status_code == 200 and b"hook" in page.content
    assert subscription.secret.encode() not in page.content
    assert b"create-subscription" not in page.content

    # when they try to delete, then it is refused
    refused = client.post(url, {"action": "delete", "subscription": subscription.pk}, follow=True)
    assert b"Your role cannot change event subscriptions." in refused.content
    assert EventSubscription.objects.exists()


def test_strangers_and_other_tenants_get_nothing(
    resource, other_resource, make_user, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a delivery of another resource
    subscribe(on=other_resource)
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(other_resource, SMS, subject="", data={})
    delivery = EventDelivery.objects.get()
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    owner = Client()
    owner.force_login(resource.memberships.get().user)

    # when / then
    assert stranger.get(f"/resources/{resource.slug}/events/").status_code == 404
    wrong_tenant = owner.get(f"/resources/{resource.slug}/events/deliveries/{delivery.pk}/")
    assert wrong_tenant.status_code == 302 and wrong_tenant["Location"].endswith("/events/")


def test_the_events_page_lists_recent_events(resource, owner) -> None:
    # given an event of the resource and one of another resource
    from django.test import Client

    from apps.accounts import services as accounts
    from apps.events import services as events

    events.publish_event(
        resource,
        "Microsoft.Communication.SMSReceived",
        subject="/phonenumber/1",
        data={"From": "+1555"},
    )
    stranger_resource = accounts.create_resource("Elsewhere", owner=owner)
    events.publish_event(
        stranger_resource, "Microsoft.Communication.SMSReceived", subject="/phonenumber/2", data={}
    )
    client = Client()
    client.force_login(owner)
    # when the owner opens the first resource's events page
    page = client.get(f"/resources/{resource.slug}/events/").content.decode()
    # then only its event is listed
    assert "/phonenumber/1" in page and "From: +1555" in page
    assert "/phonenumber/2" not in page
