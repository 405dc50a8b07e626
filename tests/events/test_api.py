"""Events through the management API (/api/v1/): roles, tenants, bad input."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.events import schemas, services
from apps.events.models import DeliveryState, EventDelivery, EventSubscription

pytestmark = pytest.mark.django_db

SMS = schemas.SMS_RECEIVED


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def members(resource, make_user) -> dict:
    """A user of each role on `resource`, and a stranger."""
    users = {"owner": resource.memberships.get().user, "stranger": make_user("stranger")}
    for role in (Role.CONTRIBUTOR, Role.READER):
        users[role] = make_user(role)
        accounts.add_member(resource, role, role)
    return users


def test_create_list_update_test_and_delete(
    owner, resource, receiver, django_capture_on_commit_callbacks
) -> None:
    api = _client(owner)
    base = f"/api/v1/resources/{resource.slug}/event-subscriptions/"

    # when a subscription is created (the worker's handshake runs on commit: eager Celery)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            base,
            {"name": "sms-hook", "endpoint_url": receiver.url, "event_types": [SMS]},
            format="json",
        )

    # then it answered at once, validating; its owner sees its secret but no validation link
    # (that goes to the endpoint only)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["state"] == "validating" and body["schema"] == "EventGridSchema"
    assert body["event_types"] == [SMS] and body["secret"].startswith("whsec_")
    assert "validation_url" not in body and "validation_code" not in body
    # and the worker made it active
    listed = api.get(base).json()["results"][0]
    assert listed["name"] == "sms-hook" and listed["state"] == "active"

    # when it is test-fired, then the delivery is reported
    with django_capture_on_commit_callbacks(execute=True):
        fired = api.post(f"{base}{body['id']}/test/")
    assert fired.status_code == 202 and fired.json()["state"] == "pending"
    deliveries = f"/api/v1/resources/{resource.slug}/event-deliveries/"
    assert api.get(f"{deliveries}{fired.json()['id']}/").json()["state"] == "delivered"
    assert receiver.notifications[0].json[0]["subject"] == "/spool/test"

    # when it is disabled, then it says so
    patched = api.patch(f"{base}{body['id']}/", {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["state"] == "disabled"

    # when it is deleted, then it is gone
    assert api.delete(f"{base}{body['id']}/").status_code == 204
    assert api.get(f"{base}{body['id']}/").status_code == 404


def test_events_and_deliveries_are_listed_filtered_and_redelivered(
    owner, resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given one SMS event delivered and one report dead-lettered
    subscription = subscribe()
    receiver.statuses = [200, 400]
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(resource, SMS, subject="/phonenumber/1", data={"n": 1})
        services.publish_event(
            resource, schemas.SMS_DELIVERY_REPORT_RECEIVED, subject="/phonenumber/1", data={}
        )
    api = _client(owner)
    base = f"/api/v1/resources/{resource.slug}/"

    # then events list newest first, and filter by type
    events = api.get(f"{base}events/").json()
    assert [e["event_type"] for e in events["results"]] == [
        schemas.SMS_DELIVERY_REPORT_RECEIVED,
        SMS,
    ]
    only_sms = api.get(f"{base}events/", {"type": SMS}).json()
    assert only_sms["count"] == 1 and only_sms["results"][0]["data"] == {"n": 1}

    # and deliveries filter by state and subscription
    dead = api.get(f"{base}event-deliveries/", {"state": "deadLettered"}).json()
    assert dead["count"] == 1 and dead["results"][0]["last_status_code"] == 400
    mine = api.get(f"{base}event-deliveries/", {"subscription": str(subscription.pk)}).json()
    assert mine["count"] == 2
    assert api.get(f"{base}event-deliveries/", {"state": "lost"}).status_code == 400

    # and a delivery shows its attempts and the body it sends
    delivery_id = dead["results"][0]["id"]
    detail = api.get(f"{base}event-deliveries/{delivery_id}/").json()
    assert [a["status_code"] for a in detail["attempts"]] == [400]
    assert detail["document"][0]["eventType"] == schemas.SMS_DELIVERY_REPORT_RECEIVED

    # when it is redelivered, then it arrives
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(f"{base}event-deliveries/{delivery_id}/redeliver/")
    assert again.status_code == 202 and again.json()["state"] == "pending"
    assert api.get(f"{base}event-deliveries/{delivery_id}/").json()["state"] == "delivered"
    # and a second redelivery while pending is refused
    EventDelivery.objects.filter(pk=delivery_id).update(state=DeliveryState.PENDING)
    assert api.post(f"{base}event-deliveries/{delivery_id}/redeliver/").status_code == 409


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        ("owner", 200, 201),
        (Role.CONTRIBUTOR, 200, 201),
        (Role.READER, 200, 403),
        ("stranger", 404, 404),
    ],
)
def test_roles(resource, members, receiver, role, read, write) -> None:
    # given
    api = _client(members[role])
    base = f"/api/v1/resources/{resource.slug}/event-subscriptions/"

    # when / then
    assert api.get(base).status_code == read
    assert api.get(f"/api/v1/resources/{resource.slug}/event-deliveries/").status_code == read
    created = api.post(base, {"name": "hook", "endpoint_url": receiver.url}, format="json")
    assert created.status_code == write
    assert EventSubscription.objects.exists() == (write == 201)


def test_readers_see_subscriptions_but_not_their_secrets(resource, members, subscribe) -> None:
    # given
    subscription = subscribe()
    base = f"/api/v1/resources/{resource.slug}/event-subscriptions/"

    # when
    listed = _client(members[Role.READER]).get(base).json()["results"][0]
    detail = _client(members[Role.READER]).get(f"{base}{subscription.pk}/").json()
    managed = _client(members[Role.CONTRIBUTOR]).get(f"{base}{subscription.pk}/").json()

    # then
    assert listed["name"] == "hook" and listed["secret"] is None and detail["secret"] is None
    assert managed["secret"] == subscription.secret


def test_readers_cannot_change_anything(
    resource, members, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a delivered event
    subscription = subscribe()
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(resource, SMS, subject="", data={})
    delivery = EventDelivery.objects.get()
    api = _client(members[Role.READER])
    base = f"/api/v1/resources/{resource.slug}/"

    # when / then
    sub = f"{base}event-subscriptions/{subscription.pk}/"
    assert api.patch(sub, {"enabled": False}, format="json").status_code == 403
    assert api.delete(sub).status_code == 403
    assert api.post(f"{sub}test/").status_code == 403
    assert api.post(f"{base}event-deliveries/{delivery.pk}/redeliver/").status_code == 403
    subscription.refresh_from_db()
    assert subscription.state == "active" and EventDelivery.objects.count() == 1


def test_another_resources_subscriptions_and_deliveries_are_not_found(
    owner, resource, other_resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given a subscription and a delivery of another tenant
    theirs = subscribe("theirs", on=other_resource)
    with django_capture_on_commit_callbacks(execute=True):
        services.publish_event(other_resource, SMS, subject="", data={})
    delivery = EventDelivery.objects.get()
    api = _client(owner)
    mine = f"/api/v1/resources/{resource.slug}/"

    # when the owner of `resource` names them under their own resource, then nothing is found
    assert api.get(f"{mine}event-subscriptions/{theirs.pk}/").status_code == 404
    assert api.delete(f"{mine}event-subscriptions/{theirs.pk}/").status_code == 404
    assert api.post(f"{mine}event-subscriptions/{theirs.pk}/test/").status_code == 404
    assert api.get(f"{mine}event-deliveries/{delivery.pk}/").status_code == 404
    assert api.post(f"{mine}event-deliveries/{delivery.pk}/redeliver/").status_code == 404
    listed = api.get(f"{mine}event-deliveries/", {"subscription": str(theirs.pk)})
    assert listed.status_code == 404
    assert api.get(f"{mine}events/").json()["count"] == 0
    # and under theirs, it is a stranger
    other = f"/api/v1/resources/{other_resource.slug}/event-subscriptions/"
    assert api.get(other).status_code == 404
    assert EventSubscription.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "hook", "endpoint_url": "x", "event_types": ["SMSReceived"]}, "InvalidRequest"),
        ({"name": "hook", "endpoint_url": "mailto:a@example.com"}, "InvalidRequest"),
        ({"name": "hook", "endpoint_url": 5}, "InvalidRequest"),
        ({"name": "hook"}, "InvalidRequest"),
        ({"name": "hook", "endpoint_url": "http://127.0.0.1:1/", "schema": "x"}, "InvalidRequest"),
    ],
)
def test_bad_input_is_refused_in_the_acs_shape(owner, resource, body, code) -> None:
    # when
    answer = _client(owner).post(
        f"/api/v1/resources/{resource.slug}/event-subscriptions/", body, format="json"
    )

    # then
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code
    assert not EventSubscription.objects.exists()


def test_a_duplicate_name_saves_nothing_and_a_refusing_endpoint_fails_validation(
    owner, resource, receiver, subscribe, django_capture_on_commit_callbacks
) -> None:
    # given
    subscribe("hook")
    api = _client(owner)
    base = f"/api/v1/resources/{resource.slug}/event-subscriptions/"

    # when / then
    duplicate = api.post(base, {"name": "hook", "endpoint_url": receiver.url}, format="json")
    assert duplicate.status_code == 409
    assert list(EventSubscription.objects.values_list("name", flat=True)) == ["hook"]
    receiver.validation = 500
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(base, {"name": "other", "endpoint_url": receiver.url}, format="json")
    failed = api.get(f"{base}{created.json()['id']}/").json()
    assert failed["state"] == "validationFailed" and "HTTP 500" in failed["validation_error"]

    # when the endpoint is fixed and validation is asked again, then it is active
    receiver.validation = "echo"
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(f"{base}{created.json()['id']}/validate/")
    assert again.status_code == 202 and again.json()["state"] == "validating"
    assert api.get(f"{base}{created.json()['id']}/").json()["state"] == "active"
    # and an active one is not validated again
    assert api.post(f"{base}{created.json()['id']}/validate/").status_code == 409


def test_the_validation_link_needs_no_login_but_the_api_does(resource, receiver) -> None:
    # given a subscription awaiting validation
    receiver.validation = "accept"
    subscription = services.create_subscription(resource, name="manual", endpoint_url=receiver.url)
    services.validate_subscription(subscription.pk)
    anonymous = APIClient()

    # when / then
    assert (
        anonymous.get(f"/api/v1/resources/{resource.slug}/event-subscriptions/").status_code == 401
    )
    answer = anonymous.get(
        f"/api/v1/events/validate/{subscription.pk}", {"code": subscription.validation_code}
    )
    assert answer.status_code == 200 and answer.json()["state"] == "active"


def test_test_fire_a_chosen_type_and_change_the_types(
    owner, resource, subscribe, receiver, django_capture_on_commit_callbacks
) -> None:
    # given a subscription to SMS
    subscription = subscribe(event_types=[SMS])
    api = _client(owner)
    url = f"/api/v1/resources/{resource.slug}/event-subscriptions/{subscription.pk}/"

    # when a type it does not take is test-fired, then it is refused and nothing is sent
    refused = api.post(f"{url}test/", {"event_type": schemas.PREFIX + "CallEnded"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["target"] == "event_type"
    assert not EventDelivery.objects.exists()

    # when its types are changed to calls, with an unknown one among them, nothing changes
    bad = api.patch(url, {"event_types": [schemas.PREFIX + "CallEnded", "Nope"]}, format="json")
    assert bad.status_code == 400
    subscription.refresh_from_db()
    assert subscription.event_types == [SMS]
    assert api.patch(url, {}, format="json").status_code == 400

    # when they are changed to CallEnded alone, then a CallEnded test event goes out
    changed = api.patch(url, {"event_types": [schemas.PREFIX + "CallEnded"]}, format="json")
    assert changed.status_code == 200 and changed.json()["event_types"] == [
        schemas.PREFIX + "CallEnded"
    ]
    with django_capture_on_commit_callbacks(execute=True):
        fired = api.post(f"{url}test/", {"event_type": schemas.PREFIX + "CallEnded"}, format="json")
    assert fired.status_code == 202 and fired.json()["event_type"] == schemas.PREFIX + "CallEnded"
    (body,) = receiver.notifications[-1].json
    assert body["data"]["reason"]["code"] == 0 and "callDurationInSeconds" in body["data"]
