"""The console's forms and pages refuse what no page takes (a NUL in a field, a control
character in the path or query string), and each form's own checks refuse control characters
in names and numbers: never a server error, never a write."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.numbers.models import AssignmentType, Capability, NumberStatus
from tests.core.test_input_edge import state

pytestmark = pytest.mark.django_db

NUL_VALUES = {"NUL": "x\x00y"}


@pytest.fixture
def console(resource: Resource, owner: Any, make_numbers: Any) -> dict[str, Any]:
    numbers = make_numbers(3)
    sender = numbers[0]
    sender.status = NumberStatus.OWNED
    sender.owner = resource
    sender.owned_sms = sender.owned_calling = Capability.BOTH
    sender.owned_assignment_type = AssignmentType.APPLICATION
    sender.purchased_at = timezone.now()
    sender.save()
    identity, _ = accounts.create_identity(resource)
    client = Client()
    client.force_login(owner)
    return {
        "client": client,
        "base": f"/resources/{resource.slug}/",
        "sender": sender.number,
        "identity": identity.raw_id,
    }


# (id, path under the resource, form fields)
FORMS: list[tuple[str, str, dict[str, Any]]] = [
    ("rename", "rename/", {"name": "Renamed"}),
    ("add member", "access/", {"action": "add", "user": "owner", "role": "reader"}),
    ("create identity", "identities/", {"action": "create", "scopes": "chat", "expires": "60"}),
    ("issue token", "identities/", {"token_for": "{identity}", "scopes": "chat", "expires": "60"}),
    ("search numbers", "numbers/", {"action": "search", "country": "US", "type": "geographic", "assignment": "application", "calling": "outbound", "sms": "none", "area_code": "425", "quantity": "1"}),
    ("set destination", "numbers/", {"action": "destination", "number": "{sender}", "destination": "https://example.com/in"}),
    ("release number", "numbers/", {"action": "release", "number": "{sender}"}),
    ("send SMS", "sms/", {"from": "{sender}", "to": "+14255550199", "message": "hi", "tag": "t"}),
    ("handset reply", "sms/handsets/?handset=%2B14255550199", {"to": "{sender}", "message": "hi"}),
    ("add opt-out", "sms/opt-outs/", {"from": "{sender}", "to": "+14255550199"}),
    ("subscribe", "events/", {"action": "create", "name": "hook", "endpoint_url": "https://example.com/hook", "event_types": "Microsoft.Communication.SMSReceived", "schema": "EventGrid"}),
]  # fmt: skip


def _fill(value: str, console: dict[str, Any]) -> str:
    return value.replace("{sender}", console["sender"]).replace("{identity}", console["identity"])


def _cases() -> list[Any]:
    return [
        pytest.param(path, fields, field, bad, id=f"{name}: {field}: {label}")
        for name, path, fields in FORMS
        for field in fields
        for label, bad in NUL_VALUES.items()
    ]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
@pytest.mark.parametrize(("path", "fields", "field", "bad"), _cases())
def test_a_nul_in_any_console_form_field_is_refused_before_the_page_runs(
    console: dict[str, Any], path: str, fields: dict[str, Any], field: str, bad: str,
    encoding: str,
) -> None:  # fmt: skip
    # given
    data = {name: _fill(value, console) for name, value in fields.items()}
    data[field] = bad
    before = state()

    # when
    url = console["base"] + path
    if encoding == "urlencoded":
        response = console["client"].post(
            url, urlencode(data), content_type="application/x-www-form-urlencoded"
        )
    else:
        response = console["client"].post(url, data)

    # then
    assert response.status_code == 400, response.content[:300]
    assert state() == before


# (id, path, fields, field, value): refused by the form's own checks, shown as a message
CONTROL_CHARACTERS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("rename", "rename/", {"name": "Renamed"}, "name", "Re\x07named"),
    ("add member", "access/", {"action": "add", "user": "owner", "role": "reader"}, "user", "ow\x1bner"),
    ("set destination", "numbers/", {"action": "destination", "number": "{sender}", "destination": "https://example.com/in"}, "destination", "https://example.com/\x01"),
    ("search numbers", "numbers/", {"action": "search", "country": "US", "type": "geographic", "assignment": "application", "calling": "outbound", "sms": "none", "area_code": "425", "quantity": "1"}, "area_code", "4\u00b25"),
    ("release number", "numbers/", {"action": "release", "number": "{sender}"}, "number", "{sender}\n"),
    ("send SMS", "sms/", {"from": "{sender}", "to": "+14255550199", "message": "hi", "tag": "t"}, "message", "hi\x07"),
    ("send SMS tag", "sms/", {"from": "{sender}", "to": "+14255550199", "message": "hi", "tag": "t"}, "tag", "t\x01"),
    ("handset reply", "sms/handsets/?handset=%2B14255550199", {"to": "{sender}", "message": "hi"}, "message", "\x1b[2J"),
    ("add opt-out", "sms/opt-outs/", {"from": "{sender}", "to": "+14255550199"}, "to", "+1425\x0755501"),
    ("subscribe", "events/", {"action": "create", "name": "hook", "endpoint_url": "https://example.com/hook", "event_types": "Microsoft.Communication.SMSReceived", "schema": "EventGrid"}, "name", "ho\nok"),
    ("subscribe url", "events/", {"action": "create", "name": "hook", "endpoint_url": "https://example.com/hook", "event_types": "Microsoft.Communication.SMSReceived", "schema": "EventGrid"}, "endpoint_url", "https://example.com/\x7f"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "fields", "field", "value"),
    [case[1:] for case in CONTROL_CHARACTERS],
    ids=[case[0] for case in CONTROL_CHARACTERS],
)
def test_a_control_character_in_a_console_name_or_number_is_refused_with_a_message(
    console: dict[str, Any], path: str, fields: dict[str, Any], field: str, value: str
) -> None:
    # given
    data = {name: _fill(v, console) for name, v in fields.items()}
    data[field] = _fill(value, console)
    before = state()

    # when
    response = console["client"].post(
        console["base"] + path, urlencode(data), content_type="application/x-www-form-urlencoded"
    )

    # then the page answers (a redirect with the error as a message), and nothing was written
    assert response.status_code in (200, 302), response.content[:300]
    assert state() == before


def test_a_new_resource_named_with_a_nul_or_control_character_is_refused(
    console: dict[str, Any],
) -> None:
    # given (not a resource's page: the name's own check refuses)
    before = state()

    # when
    responses = [
        console["client"].post(
            "/resources/",
            urlencode({"name": name}),
            content_type="application/x-www-form-urlencoded",
        )
        for name in ("New\x00one", "New\x07one", "\x1b")
    ]

    # then
    assert all(r.status_code in (200, 302, 400) for r in responses)
    assert state() == before


@pytest.mark.parametrize(
    "page",
    ["", "sms/messages/", "sms/handsets/", "events/", "calls/", "logs/", "numbers/", "chat/"],
)
@pytest.mark.parametrize("query", ["number=%00", "state=a%00b", "x=%ED%A0%80", "%00=1", "q=%01"])
def test_a_bad_query_string_on_a_console_page_is_a_400_page(
    console: dict[str, Any], page: str, query: str
) -> None:
    response = console["client"].get(f"{console['base']}{page}?{query}")
    assert response.status_code == 400, response.content[:300]


@pytest.mark.parametrize(
    "page",
    ["sms/messages/{bad}/", "calls/rooms/{bad}/", "calls/{bad}/", "numbers/searches/{bad}/",
     "numbers/operations/{bad}/", "events/deliveries/{bad}/"],
)  # fmt: skip
@pytest.mark.parametrize("bad", ["%00", "a%00b", "%01", "%ED%A0%80", "%FF"])
def test_a_bad_id_in_a_console_path_is_never_a_server_error(
    console: dict[str, Any], page: str, bad: str
) -> None:
    response = console["client"].get(console["base"] + page.replace("{bad}", bad))
    assert response.status_code in (302, 400, 404), response.content[:300]


@pytest.mark.parametrize(
    "body",
    [
        b'{"identity": "8:acs:\\ud800"}',
        b'{"identity": "\\u0000"}',
        b'{"create": true, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"identity": "\xed\xa0\x80"}',
        b'{"create": ' + b"9" * 5000 + b"}",
    ],
)
def test_the_try_pages_token_endpoint_reads_json_with_the_one_reader(
    console: dict[str, Any], body: bytes
) -> None:
    # given
    before = state()

    # when
    response = console["client"].post(
        console["base"] + "chat/try/token/", body, content_type="application/json"
    )

    # then
    assert response.status_code == 400, response.content[:300]
    assert set(response.json()["error"]) >= {"code", "message"}
    assert state() == before
