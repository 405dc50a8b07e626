"""The SMS send route (apps/sms/send_route.py): send requests answered before Django.

It must answer exactly as the view does when it answers, store the same rows, and leave
everything else to Django (which tests/sms/test_send_api.py tests through the view): each
refusal below gets None from the route and Django's refusal. In tests the rows are stored in
the request's own transaction (GROUP_COMMIT off); tests/core/test_batching.py tests the
group commit's thread, tests/core/test_wsgi_bridge.py the deferred answer."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import pytest
from django.db import DatabaseError

from apps.accounts.models import Resource
from apps.core import quotas
from apps.core.models import RequestLog
from apps.core.request_log import writer
from apps.numbers.models import Capability
from apps.sms import optouts, send_route
from apps.sms.models import MessageStatus, OptOut, SmsMessage
from tests.conftest import AcsClient, django_answer, signed_scope

pytestmark = pytest.mark.django_db

V = "2021-03-07"


def body_of(sender: str, *to: str, **recipient: Any) -> bytes:
    return json.dumps(
        {
            "from": sender,
            "smsRecipients": [{"to": number, **recipient} for number in to],
            "message": "Your code is 1234",
            "smsSendOptions": {"enableDeliveryReport": False},
        }
    ).encode()


def send_request(
    resource: Resource, body: bytes, *, query: str = f"api-version={V}", **options: Any
) -> tuple[dict[str, Any], bytes]:
    return signed_scope(resource, "/sms", body, query=query, **options)


def answered(answer: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of the route's answer (waiting for a deferred one)."""
    assert answer is not None, "the route left the request to Django"
    if isinstance(answer, Future):
        answer = answer.result(5)
    if callable(answer):  # made once the batch is stored, as the event loop makes it
        answer = answer()
    status, headers, content = answer
    return status, {k.decode(): v.decode() for k, v in headers}, json.loads(content)


def left_to_django(answer: Any) -> bool:
    """Whether the route left the request to Django, at once or after its batch's checks."""
    if isinstance(answer, Future):
        answer = answer.result(5)
    if callable(answer):
        answer = answer()
    return answer is None


def django_status(scope: dict[str, Any], body: bytes) -> int:
    return int(django_answer(scope, body).status_code)


@pytest.mark.parametrize("paths", [False, True], ids=["own origin", "/r/<slug>"])
def test_the_route_accepts_as_the_view_does_and_stores_the_same_row(
    resource: Resource, sender: str, paths: bool
) -> None:
    # when the same request goes to the route and to the view
    status, headers, route_body = answered(
        send_route.answer(*send_request(resource, body_of(sender, "+447700900001"), paths=paths))
    )
    view = AcsClient(resource, resource.primary_key, paths=paths).call(
        "POST", "/sms", json.loads(body_of(sender, "+447700900002")), api_version=V
    )

    # then the answers match but for the message id
    assert status == view.status_code == 202
    assert set(headers) == {name.lower() for name in view.headers}
    (ours,), (theirs,) = route_body["value"], view.json()["value"]
    assert ours.pop("messageId").startswith("Outgoing_")
    theirs.pop("messageId")
    assert ours == {**theirs, "to": "+447700900001"}
    # and the rows match but for the recipient (and what differs per message)
    rows = {
        row.recipient: row
        for row in SmsMessage.objects.filter(resource=resource).order_by("created_at")
    }
    mine, views = rows["+447700900001"], rows["+447700900002"]
    for field in ("direction", "sender", "text", "encoding", "segments", "tag", "resource_id"):
        assert getattr(mine, field) == getattr(views, field), field
    assert mine.status == views.status  # both delivered by the loopback carrier (eager tasks)


def test_an_accepted_send_is_logged_and_delivered(
    resource: Resource, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    scope, body = send_request(
        resource, body_of(sender, "+447700900003"), headers={"x-ms-client-request-id": "c-1"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        _, headers, value = answered(send_route.answer(scope, body))
    writer.flush()

    assert headers["x-ms-client-request-id"] == "c-1"
    row = RequestLog.objects.get(request_id=headers["x-ms-request-id"])
    assert (row.route, row.status, row.caller, row.api_version) == ("sms", 202, "key:primary", V)
    message = SmsMessage.objects.get(pk=value["value"][0]["messageId"])
    assert message.status == MessageStatus.DELIVERED  # the drain ran after the commit


def test_opted_out_and_invalid_recipients_are_answered_per_recipient_as_the_view_does(
    resource: Resource, sender: str
) -> None:
    optouts.change(resource, sender, ["+447700900004"], opt_out=True)
    body = body_of(sender, "+447700900004", "not-a-number", "+447700900005")
    _, _, route_body = answered(send_route.answer(*send_request(resource, body)))
    view = AcsClient(resource, resource.primary_key).call(
        "POST", "/sms", json.loads(body), api_version=V
    )

    def without_ids(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "messageId"} for r in results]

    assert without_ids(route_body["value"]) == without_ids(view.json()["value"])
    assert [r["successful"] for r in route_body["value"]] == [False, False, True]


def test_only_opt_outs_of_this_sender_refuse_and_a_request_with_none_deliverable_is_answered(
    resource: Resource, sender: str
) -> None:
    # given two recipients opted out of this sender, and one opted out of another sender only
    optouts.change(resource, sender, ["+447700900004", "+447700900006"], opt_out=True)
    OptOut.objects.create(
        resource=resource, sender="+15550009999", recipient="+447700900005", source="keyword"
    )

    # when one request goes to all three, and another to no deliverable recipient
    body = body_of(sender, "+447700900004", "+447700900005", "+447700900006")
    _, _, sent = answered(send_route.answer(*send_request(resource, body)))
    _, _, none = answered(send_route.answer(*send_request(resource, body_of(sender, "nope"))))

    # then only this sender's opt-outs are refused, and the second is answered per recipient
    assert [r["successful"] for r in sent["value"]] == [False, True, False]
    assert "opted out" in sent["value"][0]["errorMessage"]
    assert [r["successful"] for r in none["value"]] == [False]


def test_a_repeated_repeatability_id_replays_the_first_result_and_stores_nothing_new(
    resource: Resource, sender: str
) -> None:
    body = body_of(
        sender,
        "+447700900006",
        repeatabilityRequestId="4e6a2c43-1f9b-4d3e-9c51-0f4b1b6c2a10",
        repeatabilityFirstSent="Sat, 05 Dec 2026 14:00:00 GMT",
    )
    _, _, first = answered(send_route.answer(*send_request(resource, body)))
    _, _, again = answered(send_route.answer(*send_request(resource, body)))

    assert again == first
    assert first["value"][0]["repeatabilityResult"] == "accepted"
    assert SmsMessage.objects.filter(recipient="+447700900006").count() == 1


# Each request the route leaves to Django, with what Django answers it.
REFUSALS: dict[str, tuple[dict[str, Any], int]] = {
    "a wrong key": ({"key": "c2VjcmV0" * 4}, 401),
    "another api-version": ({"query": "api-version=2020-01-01"}, 400),
    "a browser's request": ({"headers": {"Origin": "https://app.example"}}, 202),
    "a body that is not JSON": ({"body": b"{nope"}, 400),
    "no recipients": ({"body": b'{"from": "+14255550123", "message": "x"}'}, 400),
    "a body that is not an object": ({"body": b"[1]"}, 400),
    "another media type": ({"headers": {"content-type": "text/plain"}}, 415),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_route_leaves_anything_but_an_ordinary_acceptance_to_django(
    resource: Resource, sender: str, case: str
) -> None:
    change, expected = REFUSALS[case]
    body = change.pop("body", body_of(sender, "+447700900007"))
    scope, body = send_request(resource, body, **change)

    assert left_to_django(send_route.answer(scope, body))
    assert django_status(scope, body) == expected


@pytest.mark.parametrize("sms", [None, Capability.INBOUND], ids=["not owned", "inbound only"])
def test_a_sender_the_resource_cannot_send_from_is_left_to_django_which_says_why(
    resource: Resource, other_resource: Resource, own: Any, sms: str | None
) -> None:
    # given a number of another resource, or one of its own that only receives
    number = own(other_resource) if sms is None else own(resource, sms=sms)
    scope, body = send_request(resource, body_of(str(number.number), "+447700900008"))

    assert left_to_django(send_route.answer(scope, body))
    assert django_status(scope, body) == 400
    assert not SmsMessage.objects.filter(recipient="+447700900008").exists()


def test_another_resources_key_is_left_to_django(
    resource: Resource, other_resource: Resource, sender: str
) -> None:
    scope, body = send_request(
        resource, body_of(sender, "+447700900009"), key=other_resource.primary_key
    )
    assert left_to_django(send_route.answer(scope, body))
    assert django_status(scope, body) == 401


def test_a_database_error_leaves_the_request_to_django(
    resource: Resource, sender: str, monkeypatch: Any
) -> None:
    def broken(*args: Any) -> None:
        raise DatabaseError("the database is away")

    monkeypatch.setattr(send_route, "_resource_and_sender", broken)
    assert left_to_django(
        send_route.answer(*send_request(resource, body_of(sender, "+447700900010")))
    )


def test_the_route_refuses_past_the_quota_in_acs_shape_and_counts_once(
    resource: Resource, sender: str, settings: Any
) -> None:
    settings.QUOTAS = {**settings.QUOTAS, "sms": (2, 30)}
    answers = [
        answered(send_route.answer(*send_request(resource, body_of(sender, f"+4477009001{n}"))))
        for n in range(3)
    ]

    assert [status for status, _, _ in answers] == [202, 202, 429]
    _, headers, refused = answers[2]
    assert refused["error"]["code"] == "TooManyRequests"
    assert 1 <= int(headers["retry-after"]) <= 30
    assert SmsMessage.objects.filter(resource=resource).count() == 2  # nothing stored past it
    # The view shares the count.
    view = AcsClient(resource, resource.primary_key).call(
        "POST", "/sms", json.loads(body_of(sender, "+447700900019")), api_version=V
    )
    assert view.status_code == 429
    quotas.leases.forget()


def test_a_batch_is_checked_with_one_read_per_resource_and_sender_and_each_answered_alone(
    resource: Resource, other_resource: Resource, sender: str, monkeypatch: Any
) -> None:
    # given one batch: three sends of one resource and sender (one to a recipient who opted
    # out), and one signed with another resource's key
    OptOut.objects.create(resource=resource, sender=sender, recipient="+447700900032")
    bodies = [body_of(sender, f"+44770090003{n}") for n in range(3)]
    batch = [send_route.pending(*send_request(resource, body)) for body in bodies]
    batch.append(
        send_route.pending(
            *send_request(
                resource, body_of(sender, "+447700900039"), key=other_resource.primary_key
            )
        )
    )
    reads = []
    read = send_route._resource_and_sender
    monkeypatch.setattr(
        send_route, "_resource_and_sender", lambda *args: reads.append(args) or read(*args)
    )

    # when the batch is stored
    send_route._store([send for send in batch if send is not None])

    # then one read served all four, with every recipient
    assert len(reads) == 1 and sorted(reads[0][2]) == [f"+44770090003{n}" for n in (0, 1, 2, 9)]
    # and each send is answered as it would be alone: the opted-out recipient refused, the
    # wrong key left to Django, and nothing stored for it
    answers = [send.answer() for send in batch if send is not None]
    assert answers[3] is None
    values = [json.loads(content)["value"][0] for _, _, content in answers[:3]]
    assert [value["httpStatusCode"] for value in values] == [202, 202, 400]
    stored = set(SmsMessage.objects.filter(resource=resource).values_list("recipient", flat=True))
    assert stored == {"+447700900030", "+447700900031", "+447700900032"}


def test_a_batch_retried_send_by_send_is_checked_and_counted_once(
    resource: Resource, sender: str, settings: Any, monkeypatch: Any
) -> None:
    # given a batch whose first write fails (as a repeatability id stored meanwhile makes it)
    settings.QUOTAS = {**settings.QUOTAS, "sms": (2, 30)}
    batch = [
        send_route.pending(*send_request(resource, body_of(sender, f"+44770090004{n}")))
        for n in range(2)
    ]
    store = send_route.services.store_accepted
    failures = iter([DatabaseError("a repeatability id was stored meanwhile")])

    def store_once_failing(rows: Any) -> None:
        for failure in failures:
            raise failure
        store(rows)

    monkeypatch.setattr(send_route.services, "store_accepted", store_once_failing)

    # when the batch fails and each send is then stored alone (GroupCommit's retry)
    with pytest.raises(DatabaseError):
        send_route._store(batch)  # type: ignore[arg-type]
    for send in batch:
        send_route._store([send])  # type: ignore[list-item]

    # then both are accepted: the quota of 2 counted each send once
    assert [send.answer()[0] for send in batch] == [202, 202]  # type: ignore[union-attr,index]
    assert SmsMessage.objects.filter(resource=resource).count() == 2
    quotas.leases.forget()
