"""The console's Events page (tabs: subscriptions, recent events, deliveries, dead letters)
and delivery page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.events import samples, schemas, services
from apps.events.models import DeliveryState, EventDelivery, EventSubscription, SubscriptionState

pytestmark = pytest.mark.django_db

SMS = schemas.SMS_RECEIVED
P = schemas.PREFIX


def checked(page: bytes) -> set[str]:
    """The event types ticked in the page's form."""
    boxes = re.findall(
        rb'<input type="checkbox" name="event_types" value="([^"]+)"( checked)?', page
    )
    return {value.decode() for value, tick in boxes if tick}


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
    everything = browser.get(url, {"tab": "deliveries"}).content.split(b'id="deliveries"')[1]
    dead = browser.get(url, {"tab": "deliveries", "state": "deadLettered"}).content
    dead = dead.split(b'id="deliveries"')[1]

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
    assert wrong_tenant.status_code == 404 and b"was not found" in wrong_tenant.content
    redeliver = owner.post(f"/resources/{resource.slug}/events/deliveries/{delivery.pk}/")
    assert redeliver.status_code == 404
    delivery.refresh_from_db()
    assert delivery.attempts.count() == 1


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
    page = client.get(f"/resources/{resource.slug}/events/?tab=events").content.decode()
    # then only its event is listed
    assert "/phonenumber/1" in page and "From: +1555" in page
    assert "/phonenumber/2" not in page


# --- Event types as checkboxes by service -------------------------------------------------------
def test_the_form_offers_every_event_type_as_a_checkbox_grouped_by_service(
    browser, resource
) -> None:
    # when the owner opens the Events page
    page = browser.get(f"/resources/{resource.slug}/events/").content.decode()

    # then each service has its group of checkboxes, and every type is there once
    form = page.split('id="create-subscription"')[1]
    services_shown = re.findall(r'<fieldset class="service" data-service="([^"]+)"', form)
    assert services_shown == ["sms", "chat", "calling", "call-recording"]
    values = re.findall(r'name="event_types" value="([^"]+)"', form)
    assert sorted(values) == sorted(schemas.EVENT_TYPES)
    assert '<select name="event_types"' not in form and "multiple" not in form
    chat = form.split('data-service="chat"')[1].split("</fieldset>")[0]
    assert f'value="{P}ChatMessageReceivedInThread"' in chat and "SMSReceived" not in chat
    # and the name's pattern is one a browser's regular expressions (v flag) accept
    pattern = re.search(r'name="name"[^>]* pattern="([^"]+)"', form)
    assert pattern is not None and pattern.group(1) == r"[A-Za-z0-9\-]{3,64}"
    assert re.fullmatch(pattern.group(1), "sms-hook") and not re.fullmatch(pattern.group(1), "a b")


def test_a_subscription_is_created_with_the_types_ticked(
    browser, resource, receiver, django_capture_on_commit_callbacks
) -> None:
    # when the owner ticks an SMS type and a calling type
    with django_capture_on_commit_callbacks(execute=True):
        page = browser.post(
            f"/resources/{resource.slug}/events/",
            {
                "action": "create",
                "name": "mixed",
                "endpoint_url": receiver.url,
                "event_types": [SMS, P + "CallEnded"],
            },
            follow=True,
        ).content.decode()

    # then the subscription takes those two, and the list names them
    subscription = EventSubscription.objects.get()
    assert subscription.event_types == [SMS, P + "CallEnded"]
    row = page.split('data-subscription="mixed"')[1].split("</tr>")[0]
    assert "SMSReceived" in row and "CallEnded" in row


def test_an_unknown_type_is_refused_with_the_ticks_kept(browser, resource, receiver) -> None:
    # when the form is posted with a type that does not exist
    page = browser.post(
        f"/resources/{resource.slug}/events/",
        {
            "action": "create",
            "name": "typo",
            "endpoint_url": receiver.url,
            "event_types": [SMS, P + "SmsRecieved"],
        },
        follow=True,
    )

    # then nothing is created, the page says why, and the valid tick is still there
    assert not EventSubscription.objects.exists()
    assert b"Unknown event type" in page.content
    assert checked(page.content) == {SMS}
    assert b'value="typo"' in page.content


def test_the_event_types_of_a_subscription_can_be_edited(browser, resource, subscribe) -> None:
    # given a subscription to SMS
    subscription = subscribe(event_types=[SMS])
    url = f"/resources/{resource.slug}/events/"

    # when the owner opens its edit form
    page = browser.get(url, {"edit": subscription.pk})

    # then its types are ticked
    assert b"Event types of hook" in page.content
    assert checked(page.content) == {SMS}

    # when every chat type is ticked instead
    chat = [t for service, types in schemas.EVENT_GROUPS if service == "Chat" for t in types]
    saved = browser.post(
        url,
        {"action": "types", "subscription": subscription.pk, "event_types": chat},
        follow=True,
    )

    # then it takes those, and the list sums them up by service
    subscription.refresh_from_db()
    assert subscription.event_types == chat
    assert b"hook takes all Chat events now." in saved.content
    assert b"<small>all Chat</small>" in saved.content


def test_a_refused_edit_changes_nothing(browser, resource, other_resource, subscribe) -> None:
    # given a subscription to SMS, and one of another resource
    mine = subscribe(event_types=[SMS])
    theirs = subscribe("theirs", on=other_resource, event_types=[SMS])
    url = f"/resources/{resource.slug}/events/"

    # when an unknown type is posted, then the form comes back with the reason
    page = browser.post(
        url,
        {"action": "types", "subscription": mine.pk, "event_types": [SMS, "nope"]},
        follow=True,
    )
    assert b"Unknown event type" in page.content and b"Event types of hook" in page.content
    mine.refresh_from_db()
    assert mine.event_types == [SMS]

    # when another resource's subscription is asked for or posted to, then it is not found
    assert browser.get(url, {"edit": theirs.pk}).status_code == 404
    posted = browser.post(
        url, {"action": "types", "subscription": theirs.pk, "event_types": [P + "CallEnded"]}
    )
    assert posted.status_code == 404
    theirs.refresh_from_db()
    assert theirs.event_types == [SMS]


# --- Test-fire any type the subscription takes --------------------------------------------------
def test_the_test_picker_lists_the_types_the_subscription_takes(
    browser, resource, subscribe
) -> None:
    # given a subscription to two types
    subscribe(event_types=[SMS, P + "IncomingCall"])

    # when the page is opened
    page = browser.get(f"/resources/{resource.slug}/events/").content.decode()

    # then its test picker offers those two, grouped by service
    picker = page.split('name="event_type"')[1].split("</select>")[0]
    assert re.findall(r'<option value="([^"]+)"', picker) == [SMS, P + "IncomingCall"]
    assert '<optgroup label="SMS">' in picker and '<optgroup label="Calling">' in picker


def test_a_test_event_of_the_chosen_type_arrives_with_that_types_data(
    browser, resource, subscribe, receiver, django_capture_on_commit_callbacks
) -> None:
    # given a subscription to every type
    subscription = subscribe()
    url = f"/resources/{resource.slug}/events/"

    # when a chat message event is chosen and sent
    with django_capture_on_commit_callbacks(execute=True):
        fired = browser.post(
            url,
            {
                "action": "test",
                "subscription": subscription.pk,
                "event_type": P + "ChatMessageReceivedInThread",
            },
            follow=True,
        )

    # then the endpoint got that type, with the data a real one carries
    (request,) = receiver.notifications
    (body,) = request.json
    assert body["eventType"] == P + "ChatMessageReceivedInThread"
    assert body["subject"] == "/spool/test"
    assert {"messageId", "messageBody", "senderCommunicationIdentifier", "threadId"} <= set(
        body["data"]
    )
    assert b"A test ChatMessageReceivedInThread event was sent to hook." in fired.content
    assert b'data-state="delivered"' in browser.get(fired.request["PATH_INFO"]).content


def test_a_type_the_subscription_does_not_take_cannot_be_test_fired(
    browser, resource, subscribe, receiver
) -> None:
    # given a subscription to SMS only
    subscription = subscribe(event_types=[SMS])
    url = f"/resources/{resource.slug}/events/"

    # when a calling type or a made-up one is asked for
    refused = browser.post(
        url,
        {"action": "test", "subscription": subscription.pk, "event_type": P + "CallStarted"},
        follow=True,
    )
    unknown = browser.post(
        url,
        {"action": "test", "subscription": subscription.pk, "event_type": "Nope"},
        follow=True,
    )

    # then each is refused with the reason, and nothing is stored or sent
    assert b"hook does not take CallStarted events" in refused.content
    assert b"Unknown event type" in unknown.content
    assert not EventDelivery.objects.exists() and receiver.notifications == []


# --- Recent events with their data --------------------------------------------------------------
def test_recent_events_show_the_data_of_every_type(browser, resource, other_resource) -> None:
    # given a chat event, a call event, an event of no usual fields, and another tenant's
    now = timezone.now()
    for name in ("ChatMessageReceivedInThread", "CallEnded", "RecordingFileStatusUpdated"):
        services.publish_event(
            resource,
            P + name,
            subject=f"/subject/{name}",
            data=samples.sample_data(P + name, resource, now),
        )
    services.publish_event(resource, P + "CallStarted", subject="/odd", data={"odd": [1, 2]})
    services.publish_event(
        other_resource, SMS, subject="/phonenumber/elsewhere", data={"From": "+1999"}
    )

    # when the owner opens the recent events tab
    page = browser.get(f"/resources/{resource.slug}/events/", {"tab": "events"})
    html = page.content.decode()

    # then every row shows key fields and the whole data, and nothing of the other resource
    chat = html.split(f'data-event-type="{P}ChatMessageReceivedInThread"')[1].split("</tr>")[0]
    assert "senderDisplayName: Alice" in chat
    assert "messageBody: A test message from Spool" in chat and "&quot;threadId&quot;" in chat
    call = html.split(f'data-event-type="{P}CallEnded"')[1].split("</tr>")[0]
    assert "endedBy: 8:acs:" in call and "reason: The call ended normally." in call
    assert "callDurationInSeconds: 42.0" in call
    recording = html.split(f'data-event-type="{P}RecordingFileStatusUpdated"')[1]
    assert "recordingDurationMs: 42000" in recording.split("</tr>")[0]
    odd = html.split(f'data-event-type="{P}CallStarted"')[1].split("</tr>")[0]
    assert "odd: 2 items" in odd
    assert "elsewhere" not in html and "+1999" not in html
    assert "<title>Events · Recent events · Contoso · Spool</title>" in html


def test_recent_events_filter_by_type_and_refuse_an_unknown_one(browser, resource) -> None:
    # given an SMS event and a call event
    services.publish_event(resource, SMS, subject="/phonenumber/1", data={"From": "+1555"})
    services.publish_event(resource, P + "CallStarted", subject="/call/1", data={})
    url = f"/resources/{resource.slug}/events/"

    # when filtered to calls, then only the call shows
    calls = browser.get(url, {"tab": "events", "type": P + "CallStarted"}).content.decode()
    assert f'data-event-type="{P}CallStarted"' in calls and "/phonenumber/1" not in calls

    # when the type is unknown, then the page says so
    page = browser.get(url, {"tab": "events", "type": "Nope"}, follow=True)
    assert b"Unknown event type" in page.content


# --- Dead letters --------------------------------------------------------------------------------
@pytest.fixture
def dead_letter(resource, subscribe, receiver, django_capture_on_commit_callbacks):
    """A delivery the endpoint refused with 400: dead-lettered at once."""
    subscribe()
    receiver.statuses = [400]
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(resource, SMS, subject="/phonenumber/1", data={"From": "+1555"})
    delivery = EventDelivery.objects.get()
    assert delivery.state == DeliveryState.DEAD_LETTERED
    return delivery


def test_dead_letters_list_their_reason_attempts_and_last_status(
    browser, resource, dead_letter
) -> None:
    # when the owner opens the dead letters tab
    page = browser.get(f"/resources/{resource.slug}/events/", {"tab": "dead-letters"})
    html = page.content.decode()

    # then the delivery is listed with why, how often, what came back, and a Redeliver button
    row = html.split(f'data-delivery="{dead_letter.pk}"')[1].split("</tr>")[0]
    assert "The endpoint answered HTTP 400, which is not retried." in row
    assert '<td data-label="Attempts">1</td>' in row and "HTTP 400" in row
    assert 'value="redeliver"' in row
    # and the tab counts them wherever the page is
    overview = browser.get(f"/resources/{resource.slug}/events/").content.decode()
    assert 'title="1 dead-lettered">1</span>' in overview


def test_a_dead_letter_is_redelivered_from_the_list(
    browser, resource, dead_letter, receiver, django_capture_on_commit_callbacks
) -> None:
    # when the owner presses Redeliver
    url = f"/resources/{resource.slug}/events/"
    with django_capture_on_commit_callbacks(execute=True):
        page = browser.post(url, {"action": "redeliver", "delivery": dead_letter.pk})

    # then it is sent again (the receiver answers 200 now), counted as the second delivery,
    # and the list is empty
    assert page.status_code == 302 and page["Location"].endswith("?tab=dead-letters")
    dead_letter.refresh_from_db()
    assert dead_letter.state == DeliveryState.DELIVERED
    assert [r.header("aeg-delivery-count") for r in receiver.notifications] == ["0", "1"]
    after = browser.get(page["Location"]).content
    assert b"is being sent to hook again" in after and b"No dead letters" in after

    # when Redeliver is pressed again on a delivery still on its way, then the page says so
    EventDelivery.objects.filter(pk=dead_letter.pk).update(state=DeliveryState.PENDING)
    again = browser.post(url, {"action": "redeliver", "delivery": dead_letter.pk}, follow=True)
    assert b"still pending" in again.content
    assert len(receiver.notifications) == 2


def test_another_resources_dead_letter_cannot_be_redelivered_or_seen(
    resource, other_resource, make_user, subscribe, receiver, django_capture_on_commit_callbacks
) -> None:
    # given a dead letter of another resource
    subscribe(on=other_resource)
    receiver.statuses = [400]
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(other_resource, SMS, subject="/phonenumber/2", data={})
    delivery = EventDelivery.objects.get()
    owner = Client()
    owner.force_login(resource.memberships.get().user)
    url = f"/resources/{resource.slug}/events/"

    # when this resource's owner lists dead letters or posts its id, then nothing shows or
    # happens
    listed = owner.get(url, {"tab": "dead-letters"}).content
    assert str(delivery.pk).encode() not in listed and b"No dead letters" in listed
    with django_capture_on_commit_callbacks(execute=True):
        refused = owner.post(url, {"action": "redeliver", "delivery": delivery.pk})
    assert refused.status_code == 404
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DEAD_LETTERED and len(receiver.notifications) == 1


def test_readers_see_dead_letters_but_cannot_redeliver(
    resource, dead_letter, make_user, receiver
) -> None:
    # given a reader
    reader = make_user("reader")
    accounts.add_member(resource, reader.username, Role.READER)
    client = Client()
    client.force_login(reader)
    url = f"/resources/{resource.slug}/events/"

    # when they look, then the dead letter is listed without a button
    page = client.get(url, {"tab": "dead-letters"}).content
    assert str(dead_letter.pk).encode() in page and b'value="redeliver"' not in page

    # when they post a redelivery anyway, then it is refused and nothing is sent
    refused = client.post(url, {"action": "redeliver", "delivery": dead_letter.pk}, follow=True)
    assert b"Your role cannot change event subscriptions." in refused.content
    dead_letter.refresh_from_db()
    assert dead_letter.state == DeliveryState.DEAD_LETTERED and len(receiver.notifications) == 1


# --- Tabs and the rest of the page -------------------------------------------------------------
@pytest.mark.parametrize(
    ("tab", "section", "title"),
    [
        ("", "subscriptions", "Events"),
        ("events", "recent-events", "Events · Recent events"),
        ("deliveries", "deliveries", "Events · Deliveries"),
        ("dead-letters", "dead-letters", "Events · Dead letters"),
        ("nonsense", "subscriptions", "Events"),
    ],
)
def test_each_tab_shows_its_own_section(browser, resource, tab, section, title) -> None:
    # when a tab is opened
    html = browser.get(f"/resources/{resource.slug}/events/", {"tab": tab}).content.decode()

    # then it shows its section only, names itself, and marks itself in the tab bar
    sections = re.findall(r'<section class="card" id="([^"]+)"', html)
    assert sections[0] == section
    assert {"subscriptions", "recent-events", "deliveries", "dead-letters"} & set(sections) == {
        section
    }
    assert f"<title>{title} · Contoso · Spool</title>" in html
    assert html.count('aria-current="page"') == 1


def test_forms_say_they_are_busy_and_a_validating_subscription_is_checked_back(
    browser, resource, receiver
) -> None:
    # given a subscription whose handshake has not run yet (no worker in this test)
    services.create_subscription(resource, name="slow", endpoint_url=receiver.url)

    # when the page is opened
    html = browser.get(f"/resources/{resource.slug}/events/").content.decode()

    # then its forms carry a busy label, the page's script is loaded, and the list asks to be
    # fetched again while the handshake runs
    assert 'data-busy="Creating…"' in html and "console/events.js" in html
    assert re.search(r'<section class="card" id="subscriptions" data-refresh="[^"]+"', html)
    assert "this page checks back until it answers" in html


def test_a_delivery_not_yet_tried_reloads_itself_by_its_own_path(
    browser, resource, subscribe
) -> None:
    # given a delivery queued but not attempted yet (no worker in this test)
    subscribe()
    services.publish_event(resource, SMS, subject="/phonenumber/1", data={})
    delivery = EventDelivery.objects.get()
    path = f"/resources/{resource.slug}/events/deliveries/{delivery.pk}/"

    # when its page is opened, then it reloads itself in 2 s by its path (a bare refresh would
    # go to the URL with the #fragment a redirect carried over: no reload at all)
    page = browser.get(path).content.decode()
    assert f'<meta http-equiv="refresh" content="2; url={path}">' in page
