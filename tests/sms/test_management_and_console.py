"""SMS through the management API (/api/v1/); the console pages are test_console_pages.py."""

from __future__ import annotations

from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.sms.models import OptOut, SmsMessage

PERSON = "+447700900123"


def api_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def console_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_send_list_and_read_messages_through_the_api(
    owner: Any, resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    api = api_for(owner)
    base = f"/api/v1/resources/{resource.slug}/sms/"
    # when a message is sent through the management API
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(
            f"{base}messages/",
            {"sender": sender, "to": [PERSON], "message": "Hi", "enable_delivery_report": True},
            format="json",
        )
    assert sent.status_code == 202
    message_id = sent.json()["value"][0]["messageId"]
    # then it is in the log, delivered, and readable alone
    log = api.get(f"{base}messages/?direction=outbound").json()
    assert [m["id"] for m in log["results"]] == [message_id]
    detail = api.get(f"{base}messages/{message_id}/").json()
    assert detail["status"] == "delivered" and detail["segments"] == 1
    # and the handset got it; its reply comes back through the API
    assert api.get(f"{base}handsets/").json()[0]["handset"] == PERSON
    with django_capture_on_commit_callbacks(execute=True):
        reply = api.post(
            f"{base}handsets/{PERSON}/messages/", {"to": sender, "message": "Thanks"}, format="json"
        )
    assert reply.status_code == 201
    assert api.get(f"{base}messages/?direction=inbound").json()["results"][0]["text"] == "Thanks"


def test_readers_read_but_cannot_send_and_strangers_see_nothing(
    resource: Any, sender: str, make_user: Any
) -> None:
    reader = make_user("reader")
    accounts.add_member(resource, "reader", Role.READER)
    stranger = make_user("stranger")
    base = f"/api/v1/resources/{resource.slug}/sms/"
    body = {"sender": sender, "to": [PERSON], "message": "Hi"}
    assert api_for(reader).get(f"{base}messages/").status_code == 200
    assert api_for(reader).post(f"{base}messages/", body, format="json").status_code == 403
    assert api_for(stranger).get(f"{base}messages/").status_code == 404
    assert (
        api_for(stranger)
        .post(f"{base}opt-outs/", {"sender": sender, "recipient": PERSON}, format="json")
        .status_code
        == 404
    )
    assert not SmsMessage.objects.exists() and not OptOut.objects.exists()


def test_messages_of_another_resource_are_not_found(
    owner: Any,
    resource: Any,
    other_resource: Any,
    own: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    theirs = own(other_resource).number
    from apps.sms import services

    with django_capture_on_commit_callbacks(execute=True):
        result = services.send(
            other_resource, services.SendRequest(theirs, [services.Recipient(PERSON)], "x")
        )
    response = api_for(owner).get(
        f"/api/v1/resources/{resource.slug}/sms/messages/{result[0]['messageId']}/"
    )
    assert response.status_code == 404
    assert (
        api_for(owner).get(f"/api/v1/resources/{resource.slug}/sms/messages/").json()["count"] == 0
    )


def test_opt_outs_through_the_api(owner: Any, resource: Any, sender: str) -> None:
    api = api_for(owner)
    base = f"/api/v1/resources/{resource.slug}/sms/opt-outs/"
    created = api.post(base, {"sender": sender, "recipient": PERSON}, format="json")
    assert created.status_code == 201
    assert api.get(base).json()["results"][0]["recipient"] == PERSON
    bad = api.post(base, {"sender": sender, "recipient": "nope"}, format="json")
    assert bad.status_code == 400
    assert api.delete(f"{base}{created.json()['id']}/").status_code == 204
    assert not OptOut.objects.exists()
