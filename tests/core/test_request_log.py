"""The request log: one row and one structured line per ACS or management API request, the
ACS response headers, retention, and the console's Logs page."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts import services
from apps.core import services as core
from apps.core.models import RequestLog
from apps.core.request_log import writer
from tests.conftest import AcsClient, origin_host

pytestmark = pytest.mark.django_db

WRONG_KEY = base64.b64encode(b"not the key".ljust(32)).decode()


def _rows() -> list[RequestLog]:
    writer.flush()
    return list(RequestLog.objects.order_by("at", "pk"))


def test_an_acs_request_is_logged_with_the_headers_acs_sends(acs: AcsClient, caplog) -> None:
    # when an SDK-style call carries its client request id
    caplog.set_level("INFO", logger="spool.requests")
    response = acs.call("POST", "/identities", {}, headers={"x-ms-client-request-id": "client-123"})

    # then the answer names the request and echoes the client's id
    assert response.status_code == 201
    assert response["x-ms-client-request-id"] == "client-123"
    assert response["MS-CV"].endswith(".0")
    [row] = _rows()
    assert row.request_id == response["x-ms-request-id"]
    assert (row.kind, row.resource_slug, row.method, row.route, row.path) == (
        "acs",
        acs.resource.slug,
        "POST",
        "identities",
        "/identities",
    )
    assert (row.status, row.caller, row.client_request_id, row.api_version) == (
        201,
        "key:primary",
        "client-123",
        "2023-10-01",
    )
    # and one structured line says the same
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "spool.requests"]
    assert line["requestId"] == row.request_id and line["status"] == 201
    assert line["resource"] == acs.resource.slug and line["caller"] == "key:primary"


def test_callers_are_named_by_key_token_or_user(acs: AcsClient, owner) -> None:
    # given
    identity, token = services.create_identity(acs.resource, scopes=["chat"])
    assert token is not None

    # when: the secondary key, a user token, a console user, and a wrong key
    acs.call("POST", "/identities", {}, sign_key=acs.resource.secondary_key)
    Client().get(
        "/chat/threads?api-version=2024-03-07",
        HTTP_HOST=origin_host(acs.resource),
        HTTP_AUTHORIZATION=f"Bearer {token.token}",
    )
    client = Client()
    client.force_login(owner)
    client.get(f"/api/v1/resources/{acs.resource.slug}/identities/")
    acs.call("POST", "/identities", {}, sign_key=WRONG_KEY)

    # then
    rows = _rows()
    assert [(r.kind, r.route, r.status, r.caller) for r in rows] == [
        ("acs", "identities", 201, "key:secondary"),
        ("acs", "chat/threads", 200, identity.raw_id),
        ("management", "resources/<slug:slug>/identities/", 200, "owner"),
        ("acs", "identities", 401, ""),
    ]
    assert {r.resource_slug for r in rows} == {acs.resource.slug}
    # a refused request keeps its ACS error for the operator
    assert (rows[-1].error_code, rows[0].error_code) == ("Unauthorized", "")
    assert "signature" in rows[-1].error_message


def test_console_pages_are_not_logged(owner) -> None:
    client = Client()
    client.force_login(owner)
    client.get("/resources/")
    assert _rows() == []


def test_old_requests_are_pruned_and_a_deleted_resources_are_forgotten(
    acs: AcsClient, other_acs: AcsClient, settings
) -> None:
    # given requests of two resources, one of them older than the retention
    settings.REQUEST_LOG_DAYS = 7
    acs.call("POST", "/identities", {})
    acs.call("POST", "/identities", {})
    other_acs.call("POST", "/identities", {})
    _rows()
    old = RequestLog.objects.filter(resource_slug=acs.resource.slug).first()
    assert old is not None
    RequestLog.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=8))

    # when / then
    assert core.prune_request_log() == 1
    assert RequestLog.objects.filter(resource_slug=acs.resource.slug).count() == 1
    services.delete_resource(acs.resource)
    assert list(RequestLog.objects.values_list("resource_slug", flat=True)) == [
        other_acs.resource.slug
    ]


def test_filters_by_status_class_code_route_and_time(acs: AcsClient) -> None:
    acs.call("POST", "/identities", {})
    acs.call("POST", "/identities", {}, sign_key=WRONG_KEY)
    acs.call("GET", "/rooms", api_version="2025-03-13")
    _rows()
    slug = acs.resource.slug
    assert core.list_requests(slug, status="2xx").count() == 2
    assert core.list_requests(slug, status="4xx").count() == 1
    assert core.list_requests(slug, status="401").count() == 1
    assert core.list_requests(slug, route="rooms").count() == 1
    assert core.list_requests(slug, since=timezone.now() + timedelta(seconds=1)).count() == 0
    assert core.list_requests(slug, until=timezone.now() + timedelta(seconds=1)).count() == 3
    assert core.request_routes(slug) == ["identities", "rooms"]


def test_the_console_shows_a_resources_own_log_filtered(
    acs: AcsClient, other_acs: AcsClient, owner, make_user
) -> None:
    # given requests of two resources
    acs.call("POST", "/identities", {}, headers={"x-ms-client-request-id": "mine-1"})
    acs.call("POST", "/identities", {}, sign_key=WRONG_KEY)
    other_acs.call("POST", "/identities", {}, headers={"x-ms-client-request-id": "theirs-1"})
    _rows()
    client = Client()
    client.force_login(owner)
    url = f"/resources/{acs.resource.slug}/logs/"

    # when / then: only its own requests, newest first, and the filter applies
    page = client.get(url).content.decode()
    assert "mine-1" in page and "theirs-1" not in page
    assert page.index("401") < page.index("mine-1")
    refused = client.get(url, {"status": "4xx"}).content.decode()
    assert "mine-1" not in refused and ">401<" in refused and "Unauthorized" in refused
    # nonsense filters are ignored rather than failing
    assert client.get(url, {"status": "abc", "since": "yesterday", "route": "x"}).status_code == 200

    # and someone without a role on the resource cannot see it
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert stranger.get(url).status_code == 404


def test_the_client_s_address_is_logged_and_shown(owner) -> None:
    # given a request from a client (behind a load balancer, the web server has put the
    # address the balancer forwarded in REMOTE_ADDR: apps/core/management/commands/runweb.py)
    resource = services.create_resource("Addressed", owner=owner)
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.force_login(owner)
    client.get(f"/api/v1/resources/{resource.slug}/")

    # then its row names the address, and the console's Logs page shows it
    [row] = _rows()
    assert row.client_address == "203.0.113.7"
    page = client.get(f"/resources/{resource.slug}/logs/").content.decode()
    assert "<code>203.0.113.7</code>" in page


def test_whatever_characters_a_client_sends_are_logged_and_the_batch_is_kept(
    acs: AcsClient,
) -> None:
    # given a request whose path and client request id hold what the database's bulk formats
    # escape (tab, newline, backslash, COPY's \N), a NUL and non-ASCII text, among others
    odd = acs.call(
        "GET",
        "/identities/a%09b%5CN%0Ac%00d%C3%A9",
        headers={"x-ms-client-request-id": 'quote" back\\N slash\\ \u00e9'},
    )
    plain = acs.call("POST", "/identities", {})

    # then both are logged, each as it came (a NUL, which no text column holds, as U+FFFD)
    rows = _rows()
    assert [r.request_id for r in rows] == [odd["x-ms-request-id"], plain["x-ms-request-id"]]
    assert rows[0].path == "/identities/a\tb\\N\nc\ufffdd\u00e9"
    assert rows[0].client_request_id == 'quote" back\\N slash\\ \u00e9'
